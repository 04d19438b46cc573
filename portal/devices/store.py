"""Writing pages of Apple device records into the database with bulk statements."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import text, update

from ..device_locks import lock_device_writes
from ..extensions import db
from ..models import Device
from .counts import add_to_count, recount

# Apple fields with a column of their own; anything else goes to Device.extra.
TEXT_FIELDS = ("model", "description", "color", "asset_tag", "os", "device_family", "profile_status",
               "profile_uuid", "device_assigned_by")
TIME_FIELDS = ("profile_assign_time", "profile_push_time", "device_assigned_date")
NOT_EXTRA = {"serial_number", "op_type", "op_date", *TEXT_FIELDS, *TIME_FIELDS}
# Apple's texts are cut to their column's size: PostgreSQL refuses a longer value (the whole page,
# and so every later sync, would fail on one odd record) where SQLite would keep it.
TEXT_LIMITS = {name: Device.__table__.c[name].type.length for name in (*TEXT_FIELDS, "last_op_type")}
SERIAL_LIMIT = Device.__table__.c.serial_number.type.length


@dataclass
class PageCounts:
    """What one page changed."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    new_serials: list[str] | None = None  # serials new to the server or back after removal (default profile)


def parse_time(value) -> datetime | None:
    """Apple's RFC 3339 timestamps ('2025-05-04T09:12:00Z'), liberally: None for anything else."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def latest_per_serial(records: list[dict]) -> list[dict]:
    """Sync may repeat a serial: keep each serial's record with the latest op_date."""
    best: dict[str, dict] = {}
    for record in records:
        serial = record.get("serial_number")
        if not serial or not isinstance(serial, str) or len(serial) > SERIAL_LIMIT:
            continue  # not a serial number (cut, it could name another device)
        kept = best.get(serial)
        if kept is None or (record.get("op_date") or "") >= (kept.get("op_date") or ""):
            best[serial] = record
    return list(best.values())


@dataclass
class PreparedPage:
    """A page converted to the database's row format, ready for write_page (no database needed)."""

    server_id: int
    now: datetime
    present: list[str]      # serials added or modified, in page order
    rows: object            # SQLite: a list of row tuples; PostgreSQL: the rows as one JSON text
    deleted: list[str]
    deleted_on: dict[str, datetime] | None = None  # serial → Apple's op_date of its "deleted" event, when it gave one


def _is_deleted(record: dict) -> bool:
    """Apple writes "deleted"; any case or spacing is read the same (as nanodep does)."""
    op_type = record.get("op_type")
    return isinstance(op_type, str) and op_type.strip().lower() == "deleted"


def prepare_page(server_id: int, records: list[dict], generation: int, now: datetime, dialect: str) -> PreparedPage:
    """Convert one page of fetch or sync records; pure Python, so the sync runs it in the thread
    that fetches pages while the previous page is being written."""
    records = latest_per_serial(records)
    deleted = [r["serial_number"] for r in records if _is_deleted(r)]
    deleted_on = {r["serial_number"]: parse_time(r.get("op_date")) for r in records if _is_deleted(r)}
    present = [r for r in records if not _is_deleted(r)]
    stamp = _stored_time(now, dialect)
    rows = [_row(server_id, record, generation, stamp, dialect) for record in present]
    return PreparedPage(server_id, now, [r["serial_number"] for r in present],
                        json.dumps(rows) if dialect == "postgresql" else rows, deleted,
                        {serial: when for serial, when in deleted_on.items() if when is not None})


def write_page(page: PreparedPage) -> PageCounts:
    """Apply a prepared page (added/modified upserted, deleted marked removed)."""
    counts = PageCounts(new_serials=[])
    lock_device_writes(page.server_id)
    if page.present:
        known = _upsert(page)
        for serial in page.present:
            if serial not in known:
                counts.added += 1
                counts.new_serials.append(serial)
            elif known[serial] is not None:
                counts.added += 1  # back after removal
                counts.new_serials.append(serial)
            else:
                counts.updated += 1
    if page.deleted:
        result = db.session.execute(
            update(Device)
            .where(Device.server_id == page.server_id, Device.serial_number.in_(page.deleted),
                   Device.removed_at.is_(None))
            .values(removed_at=page.now, last_op_type="deleted", updated_at=page.now))
        counts.removed = result.rowcount or 0
        _date_deletions(page)
    add_to_count(page.server_id, counts.added - counts.removed)
    return counts


def _date_deletions(page: PreparedPage) -> None:
    """The device page's "Last change date" is the deleted event's, not the change before it: one UPDATE per date
    (deletions are few, and a page's come with a handful of op_dates)."""
    by_date: dict[datetime, list[str]] = {}
    for serial, when in (page.deleted_on or {}).items():
        by_date.setdefault(when, []).append(serial)
    for when, serials in by_date.items():
        db.session.execute(update(Device).where(
            Device.server_id == page.server_id, Device.serial_number.in_(serials), Device.removed_at == page.now,
            Device.last_op_type == "deleted").values(last_op_date=when))


def store_page(server_id: int, records: list[dict], generation: int, now: datetime) -> PageCounts:
    """Apply one page of fetch or sync records (prepare_page, then write_page)."""
    dialect = db.session.get_bind().dialect.name
    return write_page(prepare_page(server_id, records, generation, now, dialect))


def _known(server_id: int, serials: list[str]) -> dict[str, object]:
    """{serial: removed_at} of the serials the server already has a row for (SQLite; PostgreSQL
    asks the same inside the upsert statement, see upsert_sql).

    Looked up by serial alone (ix_device_serial), the server filtered here: given `server_id = ?`
    too, SQLite (and PostgreSQL before its first ANALYZE of a freshly filled table) scans all the
    server's rows for every page, which makes a large first fetch quadratic. On PostgreSQL the
    serials go as one array: the generic plan of a 1000-parameter IN list, which psycopg prepares
    after 5 runs, compares every row with every parameter (seconds a page at 100,000).
    """
    # Through the driver, like the upsert: an ORM query would also flush the session's pending
    # changes (the server's cursor) on every page, and convert every removed_at, of which only
    # NULL or not matters here.
    rows = db.session.connection().exec_driver_sql(
        f"SELECT serial_number, removed_at, server_id FROM device WHERE serial_number IN ({', '.join('?' * len(serials))})",
        tuple(serials))
    return {serial: removed_at for serial, removed_at, holder in rows if holder == server_id}


def mark_missing_removed(server_id: int, generation: int, now: datetime) -> int:
    """After a complete fetch, devices it did not return are no longer assigned to the server."""
    lock_device_writes(server_id)
    # A full fetch can change the table's size by orders of magnitude: without fresh statistics
    # PostgreSQL plans this UPDATE (and the device lists) as for the empty table and scans it all,
    # and SQLite, which never gathers them by itself, picks poor indexes for the filtered lists.
    db.session.execute(text("ANALYZE device"))
    result = db.session.execute(
        update(Device)
        .where(Device.server_id == server_id, Device.fetch_generation < generation, Device.removed_at.is_(None))
        .values(removed_at=now, updated_at=now))
    recount(server_id)
    return result.rowcount or 0


# The upsert runs through the driver with SQL built once and rows as plain tuples: SQLAlchemy's
# per-row bind processing (eight timestamp conversions and a JSON dump per device) cost more than
# the database's own work. Column values are converted here exactly as the model types would:
# timestamps as UTC (SQLite: naive text in SQLAlchemy's storage format), `extra` as JSON text.
# PostgreSQL gets the whole page as one statement reading one JSON document (`extra` inside it
# as the JSON text the ORM would store):
# a thousand single-row statements, even pipelined, spent most of their time in per-statement
# overhead, and psycopg's array adaptation (one regular expression per value) was slower still.
UPSERT_COLUMNS = ("server_id", "serial_number", "fetch_generation", "first_seen_at", "updated_at", "removed_at",
                  "last_op_type", "last_op_date", *TEXT_FIELDS, *TIME_FIELDS, "extra")
TIME_COLUMNS = {"first_seen_at", "updated_at", "removed_at", "last_op_date", *TIME_FIELDS}
# A field missing from a record keeps its stored value (sync records can be partial).
KEEP_IF_MISSING = (*TEXT_FIELDS, *TIME_FIELDS, "extra")
REPLACED = ("fetch_generation", "updated_at", "last_op_type", "last_op_date")


@functools.cache
def upsert_sql(dialect: str) -> str:
    """INSERT … ON CONFLICT (server_id, serial_number) DO UPDATE for SQLite or PostgreSQL."""
    updates = [f"{name} = COALESCE(excluded.{name}, device.{name})" for name in KEEP_IF_MISSING]
    updates += [f"{name} = excluded.{name}" for name in REPLACED]
    updates.append("removed_at = NULL")
    conflict = f"ON CONFLICT (server_id, serial_number) DO UPDATE SET {', '.join(updates)}"
    if dialect != "postgresql":
        return (f"INSERT INTO device ({', '.join(UPSERT_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in UPSERT_COLUMNS)}) {conflict}")
    # The page's rows as one JSON array of arrays (jsonb: parsed once). Every part of a statement
    # sees the same snapshot, so `known` reads the rows as they were before the upsert: what
    # _known() asks in a separate round trip on SQLite. Looked up by serial alone, as there.
    types = {"server_id": "integer", "fetch_generation": "integer", "extra": "json",
             **{name: "timestamptz" for name in TIME_COLUMNS}}
    typed = ", ".join(f"(r->>{i})::{types.get(name, 'text')} AS {name}" for i, name in enumerate(UPSERT_COLUMNS))
    return (f"WITH page AS MATERIALIZED (SELECT {typed} FROM jsonb_array_elements(%s::jsonb) AS rows(r)), "
            "known AS (SELECT serial_number, removed_at, server_id FROM device "
            "WHERE serial_number = ANY (ARRAY(SELECT serial_number FROM page))), "
            f"upserted AS (INSERT INTO device ({', '.join(UPSERT_COLUMNS)}) SELECT * FROM page {conflict} RETURNING 1) "
            "SELECT serial_number, removed_at, server_id FROM known")


@functools.lru_cache(maxsize=4096)  # devices enrolled together share timestamps: convert each once
def _apple_time(value: str, dialect: str) -> str | None:
    """An Apple timestamp as the database stores it (None if it does not parse)."""
    return _stored_time(parse_time(value), dialect)


def _stored_time(value: datetime | None, dialect: str) -> str | None:
    """A datetime as UTCDateTime stores it: ISO 8601 for PostgreSQL, SQLAlchemy's naive UTC text for SQLite."""
    if value is None:
        return None
    if dialect == "postgresql":
        return value.isoformat()
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def _row(server_id: int, record: dict, generation: int, now: str, dialect: str) -> tuple:
    get = record.get
    times = [get(name) for name in ("op_date", *TIME_FIELDS)]
    op_date, *apple_times = [_apple_time(t, dialect) if t and isinstance(t, str) else None for t in times]
    extra = {k: v for k, v in record.items() if k not in NOT_EXTRA}
    return (server_id, record["serial_number"], generation, now, now, None,
            _text(get("op_type"), TEXT_LIMITS["last_op_type"]), op_date,
            *[_text(get(name), TEXT_LIMITS[name]) for name in TEXT_FIELDS], *apple_times,
            json.dumps(extra) if extra else None)


def _text(value, limit: int) -> str | None:
    if value is None:
        return None
    return value if type(value) is str and len(value) <= limit else str(value)[:limit]


def _upsert(page: PreparedPage) -> dict[str, object]:
    """Insert or update the page's devices; returns {serial: removed_at} of those the server had before."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":  # lookup and upsert in one round trip (see upsert_sql)
        found = connection.exec_driver_sql(upsert_sql("postgresql"), (page.rows,))
        return {serial: removed_at for serial, removed_at, holder in found if holder == page.server_id}
    known = _known(page.server_id, page.present)
    connection.exec_driver_sql(upsert_sql("sqlite"), page.rows)
    return known
