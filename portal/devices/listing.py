"""Device list queries: keyset pages, so page 1,000 costs what page 1 costs."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from ..extensions import db
from ..models import Device, ManagedServer

PAGE_SIZE = 100


@dataclass
class DevicePage:
    """One page of devices and where the next one starts."""

    rows: list
    total: int
    next_after: str | None


def list_devices(server_id: int | None, search: str = "", after: str | None = None,
                 page_size: int = PAGE_SIZE) -> DevicePage:
    """Devices currently assigned (optionally of one server, optionally by serial prefix), by serial."""
    conditions = [Device.removed_at.is_(None)]
    if server_id is not None:
        conditions.append(Device.server_id == server_id)
    search = search.strip().upper()
    if search:
        conditions.append(Device.serial_number.like(_escape(search) + "%", escape="\\"))
    start_serial, start_id = _parse_after(after)
    query = (select(Device, ManagedServer.name).join(ManagedServer, ManagedServer.id == Device.server_id)
             .where(*conditions))
    if start_serial is not None:
        query = query.where(Device.serial_number >= start_serial)
    rows = db.session.execute(query.order_by(Device.serial_number, Device.id).limit(page_size + 5)).all()
    if start_serial is not None:  # ties on the serial: skip what the previous page showed
        rows = [r for r in rows if (r[0].serial_number, r[0].id) > (start_serial, start_id)]
    more = len(rows) > page_size
    rows = rows[:page_size]
    total = db.session.execute(select(func.count()).select_from(Device).where(*conditions)).scalar_one()
    next_after = f"{rows[-1][0].serial_number}|{rows[-1][0].id}" if more and rows else None
    return DevicePage(rows=rows, total=total, next_after=next_after)


def _parse_after(after: str | None) -> tuple[str | None, int]:
    if not after or "|" not in after:
        return None, 0
    serial, _, ident = after.rpartition("|")
    try:
        return serial, int(ident)
    except ValueError:
        return None, 0


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
