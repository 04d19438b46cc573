"""Writing pages of Apple device records into the database with bulk statements."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import any_, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ..extensions import db
from ..models import Device

# Apple fields with a column of their own; anything else goes to Device.extra.
TEXT_FIELDS = ("model", "description", "color", "asset_tag", "os", "device_family", "profile_status",
               "profile_uuid", "device_assigned_by")
TIME_FIELDS = ("profile_assign_time", "profile_push_time", "device_assigned_date")
NOT_EXTRA = {"serial_number", "op_type", "op_date", *TEXT_FIELDS, *TIME_FIELDS}


@dataclass
class PageCounts:
    """What one page changed."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    new_serials: list[str] | None = None  # serials seen for the first time (for automatic assignment)


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
        if not serial or not isinstance(serial, str):
            continue
        kept = best.get(serial)
        if kept is None or (record.get("op_date") or "") >= (kept.get("op_date") or ""):
            best[serial] = record
    return list(best.values())


def store_page(server_id: int, records: list[dict], generation: int, now: datetime) -> PageCounts:
    """Apply one page of fetch or sync records (added/modified upserted, deleted marked removed)."""
    records = latest_per_serial(records)
    deleted = [r["serial_number"] for r in records if r.get("op_type") == "deleted"]
    present = [r for r in records if r.get("op_type") != "deleted"]
    counts = PageCounts(new_serials=[])
    if present:
        serials = [r["serial_number"] for r in present]
        known = _known(server_id, serials)
        for serial in serials:
            if serial not in known:
                counts.added += 1
                counts.new_serials.append(serial)
            elif known[serial] is not None:
                counts.added += 1  # back after removal
            else:
                counts.updated += 1
        _upsert([_row(server_id, r, generation, now) for r in present])
    if deleted:
        result = db.session.execute(
            update(Device)
            .where(Device.server_id == server_id, Device.serial_number.in_(deleted), Device.removed_at.is_(None))
            .values(removed_at=now, last_op_type="deleted", updated_at=now))
        counts.removed = result.rowcount or 0
    return counts


def _known(server_id: int, serials: list[str]) -> dict[str, datetime | None]:
    """{serial: removed_at} of the serials the server already has a row for.

    Looked up by serial alone (ix_device_serial), the server filtered here: given `server_id = ?`
    too, SQLite, and PostgreSQL before its first ANALYZE of a freshly filled table, scan all the
    server's rows for every page, which makes a large first fetch quadratic. On PostgreSQL the
    serials go as one array: psycopg prepares a statement after 5 runs, and the generic plan of a
    1000-parameter IN list compares every row with every parameter (seconds a page at 100,000).
    """
    if db.session.get_bind().dialect.name == "postgresql":
        array = bindparam("serials", serials, type_=postgresql.ARRAY(Device.serial_number.type))
        wanted = Device.serial_number == any_(array)
    else:
        wanted = Device.serial_number.in_(serials)
    rows = db.session.execute(select(Device.serial_number, Device.removed_at, Device.server_id).where(wanted))
    return {serial: removed_at for serial, removed_at, holder in rows if holder == server_id}


def mark_missing_removed(server_id: int, generation: int, now: datetime) -> int:
    """After a complete fetch, devices it did not return are no longer assigned to the server."""
    result = db.session.execute(
        update(Device)
        .where(Device.server_id == server_id, Device.fetch_generation < generation, Device.removed_at.is_(None))
        .values(removed_at=now, updated_at=now))
    return result.rowcount or 0


def _row(server_id: int, record: dict, generation: int, now: datetime) -> dict:
    row = {"server_id": server_id, "serial_number": record["serial_number"], "fetch_generation": generation,
           "first_seen_at": now, "updated_at": now, "removed_at": None,
           "last_op_type": record.get("op_type"), "last_op_date": parse_time(record.get("op_date"))}
    for name in TEXT_FIELDS:
        value = record.get(name)
        row[name] = str(value)[:255] if value is not None else None
    for name in TIME_FIELDS:
        row[name] = parse_time(record.get(name))
    extra = {k: v for k, v in record.items() if k not in NOT_EXTRA}
    row["extra"] = extra or None
    return row


def _upsert(rows: list[dict]) -> None:
    """INSERT … ON CONFLICT (server_id, serial_number) DO UPDATE, on SQLite and PostgreSQL alike."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Device.__table__)
    table = Device.__table__
    # A field missing from a record keeps its stored value (sync records can be partial).
    keep_if_missing = {name: func.coalesce(stmt.excluded[name], table.c[name])
                       for name in (*TEXT_FIELDS, *TIME_FIELDS, "extra")}
    stmt = stmt.on_conflict_do_update(
        index_elements=["server_id", "serial_number"],
        set_={**keep_if_missing,
              "fetch_generation": stmt.excluded.fetch_generation,
              "updated_at": stmt.excluded.updated_at,
              "removed_at": None,
              "last_op_type": stmt.excluded.last_op_type,
              "last_op_date": stmt.excluded.last_op_date},
    )
    db.session.execute(stmt, rows)
