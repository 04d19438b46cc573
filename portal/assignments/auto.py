"""Default profile: devices new to a managed server get its configured default profile.

Called by the sync engine after each committed page with that page's new serials; it only
queues a batch (origin "default profile", actor "system"), Apple is called by the batch job.
"""
from __future__ import annotations

from sqlalchemy import or_, select

from ..activity.record import record_activity
from ..extensions import db
from ..models import Device, EnrollmentProfile, ManagedServer
from ..models.profile import CONFIGURED
from .services import ID_CHUNK, count_devices, request_matching


def default_profile(server_id: int) -> EnrollmentProfile | None:
    """The server's configured default profile, if it has one."""
    return db.session.execute(select(EnrollmentProfile).where(
        EnrollmentProfile.server_id == server_id, EnrollmentProfile.is_default.is_(True),
        EnrollmentProfile.status == CONFIGURED, EnrollmentProfile.apple_profile_uuid.is_not(None))
        .order_by(EnrollmentProfile.id).limit(1)).scalar_one_or_none()


def assign_to_default_profile(server_id: int, serials: list[str]):
    """Queue the default profile for these serials' current devices; nothing without a default."""
    serials = list(dict.fromkeys(s for s in serials if s))
    if not serials:
        return None
    server = db.session.get(ManagedServer, server_id)
    if server is None:
        return None
    chunks = [serials[i:i + ID_CHUNK] for i in range(0, len(serials), ID_CHUNK)]
    conditions = [or_(*(Device.serial_number.in_(chunk) for chunk in chunks))]
    profile = default_profile(server_id)
    if profile is None:
        _report_unconfigured_default(server, conditions)
        return None
    if not count_devices(server_id, conditions):
        return None  # none is a current device: checked first, so the sync's session is left alone
    return request_matching(server, profile, conditions, origin="default profile", actor="system")


def _report_unconfigured_default(server: ManagedServer, conditions: list) -> None:
    """A default profile Apple does not know (yet, or any more) is said so, not skipped silently."""
    chosen = db.session.execute(select(EnrollmentProfile).where(
        EnrollmentProfile.server_id == server.id, EnrollmentProfile.is_default.is_(True))
        .order_by(EnrollmentProfile.id).limit(1)).scalar_one_or_none()
    count = count_devices(server.id, conditions) if chosen else 0
    if not count:
        return
    record_activity("assignment.default_skipped", chosen, level="warning", actor="system",
                    summary=f"{count:,} new device{'s' if count != 1 else ''} of {server.name} did not get the "
                            f"default profile “{chosen.name}”: it is not configured at Apple. Use Configure "
                            "profile, then Add Devices.")
    db.session.commit()
