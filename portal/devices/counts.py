"""How many devices each managed server currently has, kept on managed_server.device_count.

Counting 100,000 device rows costs 15-25 ms on PostgreSQL, on every view of an unfiltered device
list, of the Servers page and of a server row polled during a sync. So the writers keep the count
instead, in the same transaction as the devices they add or remove (a sync page, the removals
after a full fetch), and every synchronization ends with an exact recount (one count per run, not
per view), which repairs any drift: devices written by an older worker during an upgrade, say.
"""
from __future__ import annotations

from sqlalchemy import func, select, update

from ..extensions import db
from ..models import Device, ManagedServer

_server = ManagedServer.__table__
# A plain Core UPDATE: the model's onupdate would otherwise stamp updated_at on every page.
_KEEP = {"updated_at": _server.c.updated_at}


def add_to_count(server_id: int, delta: int) -> None:
    """Devices were added (delta > 0) to or removed from the server's current devices."""
    if delta:
        db.session.execute(update(_server).where(_server.c.id == server_id)
                           .values(device_count=_server.c.device_count + delta, **_KEEP))


def recount(server_id: int) -> None:
    """Count the server's current devices exactly (after a full fetch, at the end of every sync)."""
    current = select(func.count()).select_from(Device).where(
        Device.server_id == server_id, Device.removed_at.is_(None)).scalar_subquery()
    db.session.execute(update(_server).where(_server.c.id == server_id).values(device_count=current, **_KEEP))


def current_counts(server_id: int | None = None) -> dict[int, int]:
    """{server id: current devices}, of every server or one."""
    query = select(ManagedServer.id, ManagedServer.device_count)
    if server_id is not None:
        query = query.where(ManagedServer.id == server_id)
    return dict(db.session.execute(query).all())
