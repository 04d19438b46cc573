"""Keyset paging over devices for every sort: page 1,000 costs what page 1 costs.

The order of a list is (sort value, id) in the chosen direction, with devices that have no value
(no model, no assigned date) after all the others, by id. Each part ("segment") is read with a
plain index range on (column, id), so neither database has to sort, and NULLs never meet a
comparison (SQLite and PostgreSQL disagree on where NULLs sort, and a NULL compares as unknown).

A cursor names the last row seen: segment, sort value and id, in a URL-safe token. Garbage
cursors decode to None: the list then starts from the beginning instead of failing.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import tuple_
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler

from ..extensions import db
from ..models import Device

# sort name -> (column, may it be NULL?, its (column, id) index)
SORT_COLUMNS = {
    "serial": (Device.serial_number, False, "ix_device_serial"),
    "model": (Device.model, True, "ix_device_model"),
    "assigned": (Device.device_assigned_date, True, "ix_device_assigned_date"),
}
VALUES, NULLS = "v", "n"


def _sqlite_from_hint(compiler, table, text):
    """Render `with_hint(..., "INDEXED BY ix", "sqlite")` after the table name.

    SQLAlchemy's SQLite compiler drops table hints (it renders them for MySQL, Oracle, SQL
    Server only), although SQLite has one: INDEXED BY. Hints aimed at SQLite come only from here.
    """
    return text


SQLiteCompiler.get_from_hint_text = _sqlite_from_hint


@dataclass(frozen=True)
class Cursor:
    """The last row of a page: its segment, its sort value and its id."""

    segment: str
    value: object
    ident: int

    def encode(self) -> str:
        value = self.value.isoformat() if isinstance(self.value, datetime) else self.value
        raw = json.dumps([self.segment, value, self.ident], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str | None, sort: str) -> Cursor | None:
    """The cursor in a URL, or None when it is missing or not one of ours."""
    if not token or len(token) > 800:
        return None
    try:
        segment, value, ident = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if segment not in (VALUES, NULLS) or not isinstance(ident, int) or isinstance(ident, bool) \
                or not 0 <= ident < 2**31:  # an id column's range: PostgreSQL refuses larger numbers
            return None
        if segment == NULLS:
            return Cursor(NULLS, None, ident) if SORT_COLUMNS[sort][1] else None
        if not isinstance(value, str) or "\x00" in value:  # PostgreSQL text cannot hold NUL
            return None
        if sort == "assigned":
            value = datetime.fromisoformat(value)
            if value.tzinfo is None:
                return None
        return Cursor(VALUES, value, ident)
    except (ValueError, TypeError, KeyError):
        return None


def cursor_of(device: Device, sort: str) -> Cursor:
    column = SORT_COLUMNS[sort][0]
    value = getattr(device, column.key)
    return Cursor(NULLS, None, device.id) if value is None else Cursor(VALUES, value, device.id)


def fetch(conditions: list, sort: str, descending: bool, limit: int, after: Cursor | None = None,
          backwards: bool = False, walk_sort_index: bool = False) -> list[Device]:
    """Up to `limit` devices following `after` in the list's order (preceding it if `backwards`).

    Backwards reads walk the reversed order (segments reversed, directions flipped); the rows
    come back in reading order, i.e. nearest to the cursor first.

    `walk_sort_index`: the caller knows many rows match, so reading the sort index in order and
    filtering stops after about a page of rows. SQLite, without statistics, otherwise prefers an
    index on a filtered column (server, profile) and then sorts every match: tens of thousands of
    rows for each page. PostgreSQL's planner has statistics and needs no hint.
    """
    column, nullable, index = SORT_COLUMNS[sort]
    segments = [VALUES, NULLS] if nullable else [VALUES]
    desc = descending != backwards  # direction of the reads
    if backwards:
        segments.reverse()
    if after is not None and after.segment in segments:
        segments = segments[segments.index(after.segment):]
    rows: list[Device] = []
    for segment in segments:
        start = after if after is not None and after.segment == segment else None
        rows += _read_segment(conditions, column, nullable, segment, desc, limit - len(rows), start,
                              index if walk_sort_index else None)
        if len(rows) >= limit:
            break
    return rows


def _read_segment(conditions, column, nullable, segment, desc, limit, start: Cursor | None,
                  index: str | None) -> list[Device]:
    query = db.select(Device).where(*conditions)
    if index:
        query = query.with_hint(Device, f"INDEXED BY {index}", "sqlite")
    if segment == VALUES:
        if nullable:
            query = query.where(column.is_not(None))
        if start is not None:
            key, here = tuple_(column, Device.id), (start.value, start.ident)
            query = query.where(key < here if desc else key > here)
        order = (column.desc(), Device.id.desc()) if desc else (column, Device.id)
    else:
        query = query.where(column.is_(None))
        if start is not None:
            query = query.where(Device.id < start.ident if desc else Device.id > start.ident)
        order = (Device.id.desc(),) if desc else (Device.id,)
    return list(db.session.execute(query.order_by(*order).limit(limit)).scalars())
