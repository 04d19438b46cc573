"""Add Devices by serial number: a list pasted into Select the Managed Devices (a spreadsheet column,
an e-mail from the reseller…) becomes the devices of the managed server it names.

Nothing is guessed: a serial number that is not a current device of the server stops the request
with the list of those, so the admin fixes the list (or synchronizes first) and sends it again.
"""
from __future__ import annotations

import csv
import re
import unicodedata

from sqlalchemy import func, select

from ..extensions import db
from ..models import AssignmentBatch, AssignmentTask, Device
from ..models.assignment import DONE, RELEASE
from ..typed_text import control_characters, controls_message

MAX_SERIALS = 10_000
SEPARATORS = re.compile(r"[\s,;]+")
SERIAL_CHARACTERS = re.compile(r"[A-Za-z0-9]+")  # what a piece between separators may hold (Apple: letters, digits)
QUOTES = "\"'“”‘’"  # around a value of a pasted CSV column (the portal's own export quotes none, others do)
HEADER_WORDS = {"serial", "serialnumber", "serialnumbers", "serialno"}  # a pasted column's heading
SERIAL_LENGTHS = range(8, 15)  # Apple's serial numbers have 10 to 12; a little room either side, for any older or newer
SHOWN_UNKNOWN = 20
ID_CHUNK = 500  # serials per IN (...) list: far below every database's bound-parameter limit


class SerialsError(ValueError):
    """The pasted list cannot be used as it is; the message says why, for the field."""


def parse_serials(text: str | None, done: str = "added", server=None) -> list[str]:
    """The serial numbers in `text`, upper-cased, duplicates dropped, in the order given. `done` says what the
    request does to them ("added", "removed", "released"), for the message when there are too many. With `server`,
    a list refused for its format also names its well-formed serial numbers that are not current devices of the
    server: the admin corrects the list once, not once for its format and again for what it names."""
    found = control_characters(text or "")
    if found:  # a NUL would also be refused by PostgreSQL in the query
        raise SerialsError(controls_message(found, "The list"))
    # Invisible characters a web page, an e-mail or a spreadsheet carries along (a zero-width space, a byte order
    # mark, a direction mark, a soft hyphen) are dropped: named, they would read as a serial number that is fine.
    text = "".join(ch for ch in (text or "") if unicodedata.category(ch) != "Cf")
    lines = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    if lines and _heading(lines[0][1]) in HEADER_WORDS:
        lines = lines[1:]
    elif lines:
        lines = _serial_column(lines)
    # Every fault of the list at once: odd lines, then pieces of a wrong length among the other lines (one message
    # at a time sent the admin back to the list once per kind of fault).
    odd = _odd_lines(lines)
    odd_numbers = {number for number, _ in odd}
    serials = list(dict.fromkeys(token.upper() for number, line in lines if number not in odd_numbers
                                 for token in _pieces(line)))
    odd_lengths = [serial for serial in serials if len(serial) not in SERIAL_LENGTHS]
    if odd or odd_lengths:  # a piece cut off or two run together: named as such, not as "not a device of the server"
        faults = ([_odd_lines_message(odd)] if odd else []) + ([_wrong_length_message(odd_lengths)] if odd_lengths else [])
        well_formed = [serial for serial in serials if len(serial) in SERIAL_LENGTHS]
        if server is not None and well_formed and len(well_formed) <= MAX_SERIALS:
            faults += [part for part in [_not_current_part(server, well_formed)] if part]
        raise SerialsError(" ".join(faults) + " Nothing was sent.")
    if len(serials) > MAX_SERIALS:
        other = ", or use a filter and “Select all”" if done == "added" else ""  # Release has neither
        raise SerialsError(f"{len(serials):,} serial numbers were pasted; at most {MAX_SERIALS:,} can be {done} at "
                           f"once. Split the list{other}.")
    return serials


def _heading(cell: str) -> str:
    return re.sub(r"[\s_#.\"'“”‘’-]", "", cell).lower()


def _serial_column(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Rows pasted from a CSV file or a spreadsheet with several columns (the portal's own export among them) whose
    heading names a serial number column: that column of each row. Anything else is returned as it is."""
    delimiter = next((d for d in ("\t", ",", ";") if d in lines[0][1]), None)
    if delimiter is None:
        return lines
    heading = [_heading(cell) for cell in next(csv.reader([lines[0][1]], delimiter=delimiter))]
    column = next((i for i, cell in enumerate(heading) if cell in HEADER_WORDS), None)
    if column is None:
        return lines
    rows = []
    for number, line in lines[1:]:
        cells = next(csv.reader([line], delimiter=delimiter), [])
        rows.append((number, cells[column] if column < len(cells) else ""))
    return [(number, cell) for number, cell in rows if cell.strip()]


def _odd_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """(number, text) of each pasted line with something that cannot be part of a serial number ("bad serial!",
    "C02X (broken screen)"): split into pieces it would be named as pieces the admin never typed ("BAD",
    "SERIAL!"), and looked up as serial numbers it would only be "not a device"."""
    return [(number, line.strip()) for number, line in lines
            if any(not SERIAL_CHARACTERS.fullmatch(token) for token in _pieces(line))]


def _odd_lines_message(odd: list[tuple[int, str]]) -> str:
    shown = ", ".join(f"line {number} “{_clipped(line)}”" for number, line in odd[:SHOWN_UNKNOWN])
    more = f" and {len(odd) - SHOWN_UNKNOWN:,} more" if len(odd) > SHOWN_UNKNOWN else ""
    which = "This line has" if len(odd) == 1 else f"These {len(odd):,} lines have"
    return (f"{which} something other than serial numbers: {shown}{more}. A serial number has only letters and "
            "digits (8 to 14 of them); paste one per line, or separate them with commas, semicolons, tabs or spaces.")


def _wrong_length_message(pieces: list[str]) -> str:
    lengths = "fewer than 8 or more than 14 letters and digits (Apple's serial numbers have 10 to 12)"
    if len(pieces) == 1:
        return f"“{_clipped(pieces[0])}” is not a serial number: it has {lengths}. Correct it or remove it from the list."
    shown = ", ".join(_clipped(piece) for piece in pieces[:SHOWN_UNKNOWN])
    more = f" and {len(pieces) - SHOWN_UNKNOWN:,} more" if len(pieces) > SHOWN_UNKNOWN else ""
    return (f"These {len(pieces):,} pieces are not serial numbers, having {lengths}: {shown}{more}. Correct them or "
            "remove them from the list.")


def _pieces(line: str) -> list[str]:
    """The pieces of a pasted line between separators, each without the quotes a CSV column puts around it."""
    return [piece for piece in (token.strip(QUOTES) for token in SEPARATORS.split(line)) if piece]


def _clipped(line: str, limit: int = 60) -> str:
    return line if len(line) <= limit else line[:limit - 1] + "…"


def devices_for_serials(server, serials: list[str]) -> list[int]:
    """The ids of the server's current devices with these serial numbers; SerialsError names the others."""
    found: dict[str, int] = {}
    for i in range(0, len(serials), ID_CHUNK):
        chunk = serials[i:i + ID_CHUNK]
        found.update(db.session.execute(select(Device.serial_number, Device.id).where(
            Device.server_id == server.id, Device.removed_at.is_(None), Device.serial_number.in_(chunk))).all())
    unknown = [serial for serial in serials if serial not in found]
    if unknown:
        raise SerialsError(_not_current_message(server, unknown) + " Nothing was sent.")
    return [found[serial] for serial in serials]  # in the order given


def _not_current_part(server, serials: list[str]) -> str:
    """What _not_current_message says of those of `serials` that are not current devices of the server ("" if none)."""
    current: set[str] = set()
    for i in range(0, len(serials), ID_CHUNK):
        current.update(db.session.execute(select(Device.serial_number).where(
            Device.server_id == server.id, Device.removed_at.is_(None),
            Device.serial_number.in_(serials[i:i + ID_CHUNK]))).scalars())
    unknown = [serial for serial in serials if serial not in current]
    return _not_current_message(server, unknown) if unknown else ""


def _not_current_message(server, serials: list[str]) -> str:
    """Why these serial numbers are not current devices of the server, by what the portal knows of them: released
    by Release Devices, gone from the server (Apple no longer lists them), or never seen (perhaps not synchronized
    yet)."""
    released = released_already(server, serials)
    removed: dict[str, object] = {}
    for i in range(0, len(serials), ID_CHUNK):
        chunk = [s for s in serials[i:i + ID_CHUNK] if s not in released]
        removed.update(db.session.execute(select(Device.serial_number, Device.removed_at).where(
            Device.server_id == server.id, Device.removed_at.is_not(None), Device.serial_number.in_(chunk))).all())
    unknown = [s for s in serials if s not in released and s not in removed]
    parts = []
    if released:
        parts.append(released_message(released, closing=False))
    if removed:
        gone = list(removed)
        when = max(removed.values())
        parts.append(_listed(gone, f"no longer a device of {server.name}") + (
            f" Apple stopped listing {_it(gone)} (noticed on {when:%Y-%m-%d}): moved to another MDM server in "
            "Apple Business Manager, or released there."))
    if unknown:
        parts.append(_listed(unknown, f"not a device of {server.name}") + (
            f" Check {_it(unknown)}, or synchronize {server.name} first if Apple Business Manager assigned "
            f"{_it(unknown)} a moment ago."))
    every = list(released) + list(removed) + unknown
    return " ".join(parts) + f" Remove {_it(every)} from the list."


def released_already(server, serials: list[str]) -> dict[str, int]:
    """The serial numbers that Release Devices already took out of the organization (a device of the server,
    removed since, whose release Apple answered SUCCESS), each with that request's id."""
    found: dict[str, int] = {}
    for i in range(0, len(serials), ID_CHUNK):
        chunk = serials[i:i + ID_CHUNK]
        found.update(db.session.execute(
            select(Device.serial_number, func.max(AssignmentBatch.id))
            .join(AssignmentTask, AssignmentTask.device_id == Device.id)
            .join(AssignmentBatch, AssignmentBatch.id == AssignmentTask.batch_id)
            .where(Device.server_id == server.id, Device.removed_at.is_not(None), Device.serial_number.in_(chunk),
                   AssignmentBatch.action == RELEASE, AssignmentTask.state == DONE)
            .group_by(Device.serial_number)).all())
    return found


def released_message(released: dict[str, int], *, closing: bool = True) -> str:
    serials = list(released)
    batches = sorted(set(released.values()))
    which = ", ".join(f"#{b}" for b in batches[:SHOWN_UNKNOWN])
    return _listed(serials, f"released from Apple Business Manager already (Release Devices {which})") + (
        f" Remove {_it(serials)} from the list. Nothing was sent." if closing else "")


def not_associated_message(serials: list[str], profile_name: str) -> str:
    return _listed(serials, f"not associated with “{profile_name}”") + (
        f" Remove {_it(serials)} from the list. Nothing was sent.")


def _listed(serials: list[str], what: str) -> str:
    shown = ", ".join(serials[:SHOWN_UNKNOWN])
    more = f" and {len(serials) - SHOWN_UNKNOWN:,} more" if len(serials) > SHOWN_UNKNOWN else ""
    which = "This serial number is" if len(serials) == 1 else f"These {len(serials):,} serial numbers are"
    return f"{which} {what}: {shown}{more}."


def _it(serials: list[str]) -> str:
    return "it" if len(serials) == 1 else "them"
