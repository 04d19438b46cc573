"""Will a device enroll automatically? (Apple hands it our profile, the profile points at our MDM.)

A current device enrolls automatically during Setup Assistant only if Apple accepted an enrollment
profile of ours for it (Device.profile_id), that profile is configured at Apple as it is here, and
its server has a server configuration (the MDM the profile's URL sends the device to).
`will_enroll` explains one device in plain words; `not_ready_conditions` is the same rule in SQL,
for counts and the `enroll=no` filter. Keep the two in step (tests check they agree).
"""
from __future__ import annotations

from sqlalchemy import exists, func, not_, or_, select

from ..extensions import db
from ..models import Device, EnrollmentProfile, ManagedServer
from ..models.profile import CONFIGURED
from .pending import shown_state

STATUS_WORDS = {"not_configured": "not configured yet", "configuring": "being configured",
                "failed": "failed to configure", "changed": "changed since it was last configured"}


def not_ready_conditions() -> list:
    """Conditions on Device (AND-ed) matching current devices that will fail to enroll automatically."""
    profile_configured = exists(select(EnrollmentProfile.id).where(
        EnrollmentProfile.id == Device.profile_id, EnrollmentProfile.status == CONFIGURED))
    server_configured = exists(select(ManagedServer.id).where(
        ManagedServer.id == Device.server_id, ManagedServer.configuration_id.is_not(None)))
    return [Device.removed_at.is_(None),
            or_(Device.profile_id.is_(None), not_(profile_configured), not_(server_configured))]


def will_enroll(device: Device) -> tuple[bool, str]:
    """(True, why) if the device will enroll automatically, else (False, what is missing)."""
    if device.removed_at is not None:
        return False, ("The device is no longer assigned to this server in Apple Business Manager "
                       f"(removed {device.removed_at:%Y-%m-%d}).")
    server = db.session.get(ManagedServer, device.server_id)
    profile = db.session.get(EnrollmentProfile, device.profile_id) if device.profile_id else None
    if profile is None:
        pending = {"queued": " A request is waiting to be sent to Apple.",
                   "throttled": " Apple throttled the last request; it will be retried.",
                   "failed": " Apple's last answer was a failure; it will be retried.",
                   "not_accessible": " Apple answered that the device is not accessible to this server."}
        return False, ("No enrollment profile is associated with the device: Add Devices to a profile."
                       + pending.get(shown_state(device), ""))
    if profile.status != CONFIGURED:
        words = STATUS_WORDS.get(profile.status, profile.status)
        return False, f"Its profile “{profile.name}” is {words}: Configure profile."
    if server is None or server.configuration_id is None:
        return False, "Its server has no server configuration: Assign Server Configuration."
    return True, (f"Apple hands it the profile “{profile.name}”, which sends it to the server configuration "
                  f"“{server.configuration_name}”.")


def not_ready_count(server_id: int | None = None) -> int:
    """How many current devices (of one server) will fail to enroll automatically."""
    conditions = not_ready_conditions()
    if server_id is not None:
        conditions.append(Device.server_id == server_id)
    return db.session.execute(select(func.count()).select_from(Device).where(*conditions)).scalar_one()
