"""The choices of the device list's filters, read from the data without scanning the device table."""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import EnrollmentProfile, ManagedServer
from .search import distinct_values


def filter_choices(server: ManagedServer | None) -> dict:
    """Servers (global list only), profiles (of the server, or all), device families and OS values."""
    profiles = select(EnrollmentProfile.id, EnrollmentProfile.name, ManagedServer.name.label("server_name")) \
        .join(ManagedServer, ManagedServer.id == EnrollmentProfile.server_id)
    if server is not None:
        profiles = profiles.where(EnrollmentProfile.server_id == server.id)
    profile_rows = db.session.execute(profiles.order_by(ManagedServer.name, EnrollmentProfile.name)).all()
    return {
        "servers": [] if server is not None else db.session.execute(
            select(ManagedServer.id, ManagedServer.name).order_by(ManagedServer.name)).all(),
        "profiles": [(str(r.id), r.name if server is not None else f"{r.server_name} · {r.name}")
                     for r in profile_rows],
        # Loose index scans (ix_device_family, ix_device_os): a handful of index probes.
        "families": distinct_values("device_family", 200),
        "os_values": distinct_values("os", 200),
    }
