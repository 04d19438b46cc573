"""Content-Disposition for downloads named after what an admin typed (server, key pair, configuration names).

Header values travel as Latin-1: a name like "東京 MDM" put there as is makes the HTTP server fail with no
answer at all. RFC 6266 gives the full name in `filename*` (UTF-8, percent-encoded, RFC 5987) and an ASCII
`filename` for clients that ignore it.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable
from urllib.parse import quote

# Letters and digits of any script, dot, dash, underscore: no path separators or characters Windows refuses.
_NOT_FILE_CHARACTER = re.compile(r"[^\w.-]+")
_NOT_ASCII_FILE_CHARACTER = re.compile(r"[^A-Za-z0-9._-]+")


def download(view: Callable) -> Callable:
    """Marks a view that answers with a file. Its links carry no `download` attribute: a browser saves whatever answers
    such a link, and with the session ended that was the sign-in page, as "login.html". Signing in from there goes back
    to the page the link was on (security.sign_in_first), not to the file, which would leave the sign-in page shown."""
    view.answers_with_a_file = True
    return view


def file_stem(name: str, default: str) -> str:
    """A file name (without extension) from a free-text name; keeps non-Latin letters, never empty."""
    # NFC first, so a decomposed "é" (e + combining accent) stays one letter instead of becoming a dash.
    return _clean(_NOT_FILE_CHARACTER, unicodedata.normalize("NFC", name)) or default


def attachment(filename: str, default_stem: str = "download") -> str:
    """Content-Disposition for `filename`: pure ASCII, with `filename*` when the name is not plain ASCII."""
    fallback = _ascii_fallback(filename, default_stem)
    if fallback == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _ascii_fallback(filename: str, default_stem: str) -> str:
    """The same file name in safe ASCII, keeping the extension so it still opens with the right program."""
    stem, dot, extension = filename.rpartition(".")
    if not dot:
        stem, extension = filename, ""
    # Accented Latin letters lose only their accents ("Café" -> "Cafe"); other scripts become dashes.
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    extension = _clean(_NOT_ASCII_FILE_CHARACTER, extension)
    return (_clean(_NOT_ASCII_FILE_CHARACTER, stem) or default_stem) + dot + extension


def _clean(unsafe: re.Pattern, text: str) -> str:
    """Replace runs of unsafe characters by one dash; no dash or dot at either end (no hidden files)."""
    return re.sub(r"-{2,}", "-", unsafe.sub("-", text)).strip("-.")
