"""Streamed CSV downloads (device lists, the activity log): cells a spreadsheet opens as text, and
the text handed out a chunk at a time, so memory stays flat whatever the number of rows."""
from __future__ import annotations

import csv
import io
from datetime import datetime

# A spreadsheet treats a cell starting with one of these as a formula (CSV injection, OWASP).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    """A cell as text, with a leading quote if a spreadsheet would run it as a formula."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = value if isinstance(value, str) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class CsvChunks:
    """A CSV writer whose lines are taken out as text after each chunk of rows."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer)

    def row(self, cells) -> None:
        self._writer.writerow(cells)

    def take(self) -> str:
        """The lines written since the last take."""
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text
