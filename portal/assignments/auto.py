"""Default profile: devices new to a managed server get its configured default profile.

Called by the sync engine after each committed page with that page's new serials; it only
queues a batch (origin "default profile", actor "system"), Apple is called by the batch job.
"""
from __future__ import annotations

from sqlalchemy import or_, select

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
    profile = default_profile(server_id)
    server = db.session.get(ManagedServer, server_id)
    if profile is None or server is None:
        return None
    chunks = [serials[i:i + ID_CHUNK] for i in range(0, len(serials), ID_CHUNK)]
    conditions = [or_(*(Device.serial_number.in_(chunk) for chunk in chunks))]
    if not count_devices(server_id, conditions):
        return None  # none is a current device: checked first, so the sync's session is left alone
    return request_matching(server, profile, conditions, origin="default profile", actor="system")
