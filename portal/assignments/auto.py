"""Default profiles: devices new to a managed server get the configured default profile of their family.

A server has at most one default profile per device family (profiles/services._make_default): one for some
families (say iPhone and iPad) takes those, and one for every family takes the devices no other default names.

Called by the sync engine after each committed page with that page's new serials; it only queues batches
(origin "default profile", actor "system"), Apple is called by the batch jobs.
"""
from __future__ import annotations

from sqlalchemy import or_, select

from ..activity.record import record_activity
from ..extensions import db
from ..devices.pending import pending_devices
from ..models import AssignmentBatch, AssignmentTask, Device, EnrollmentProfile, ManagedServer
from ..models.assignment import DONE, REMOVE
from ..models.profile import CHANGED, CONFIGURED, CONFIGURING, FAILED, family_words
from .services import ID_CHUNK, count_devices, request_matching


def default_profiles(server_id: int) -> list[EnrollmentProfile]:
    """The server's default profiles, configured or not, in id order."""
    return list(db.session.execute(select(EnrollmentProfile).where(
        EnrollmentProfile.server_id == server_id, EnrollmentProfile.is_default.is_(True))
        .order_by(EnrollmentProfile.id)).scalars())


def applies_at_apple(profile: EnrollmentProfile) -> bool:
    """Whether a default profile is given to new devices: Apple must hold it as set up here (Configured, with its
    UUID). The others are skipped by the sync (and said: _report_unconfigured_default, the server page)."""
    return profile.status == CONFIGURED and bool(profile.apple_profile_uuid)


def unapplied_defaults(server_id: int) -> list[EnrollmentProfile]:
    """The server's default profiles that new devices do not get until they are configured at Apple."""
    return [profile for profile in default_profiles(server_id) if not applies_at_apple(profile)]


def assign_to_default_profile(server_id: int, serials: list[str]) -> list[AssignmentBatch]:
    """Queue each default profile for these serials' current devices of its families: the batches queued."""
    serials = list(dict.fromkeys(s for s in serials if s))
    server = db.session.get(ManagedServer, server_id) if serials else None
    if server is None:
        return []
    chunks = [serials[i:i + ID_CHUNK] for i in range(0, len(serials), ID_CHUNK)]
    these = or_(*(Device.serial_number.in_(chunk) for chunk in chunks))
    defaults = default_profiles(server_id)
    batches = []
    for profile in defaults:
        conditions = [these, *_families_of(profile, defaults)]
        if not applies_at_apple(profile):
            _report_unconfigured_default(server, profile, conditions)
        elif count_devices(server_id, conditions):  # checked first, so the sync's session is left alone
            batches.append(request_matching(server, profile, conditions, origin="default profile", actor="system"))
    return batches


def _families_of(profile: EnrollmentProfile, defaults: list[EnrollmentProfile]) -> list:
    """The device conditions of a default profile's families: those it names, or every family no other default
    names (a device Apple gave no family included)."""
    if profile.default_families:
        return [Device.device_family.in_(profile.default_families)]
    named = sorted({family for other in defaults for family in other.default_families or []})
    if named:
        return [or_(Device.device_family.is_(None), Device.device_family.not_in(named))]
    return []


def without_profile_for_default(profile: EnrollmentProfile) -> int:
    """Current devices of a default profile's families with no profile and no request for one: new devices that
    came while it was not configured at Apple (skipped, assignment.default_skipped), or before it was the default.
    Its page offers Add Devices for them.

    Not counted: a device with a request waiting to reach Apple (the device row keeps no trace of it, see
    devices/pending.py), such as the Add Devices just sent from this very warning; nor one whose profile an admin
    took off with Remove Devices, which is no oversight to point out."""
    if not profile.is_default:
        return 0
    removed_here = select(AssignmentTask.device_id).join(AssignmentBatch).where(
        AssignmentBatch.server_id == profile.server_id, AssignmentBatch.action == REMOVE, AssignmentTask.state == DONE)
    return count_devices(profile.server_id, [*_families_of(profile, default_profiles(profile.server_id)),
                                             Device.profile_id.is_(None), Device.assignment_state.is_(None),
                                             Device.id.not_in(pending_devices()), Device.id.not_in(removed_here)])


# Why a default profile was skipped, as the server page says it (templates/servers/detail.html), and what to do.
SKIP_REASONS = {
    CONFIGURING: "it was still being configured at Apple. Add Devices gives it to them once it is configured.",
    CHANGED: "it changed since it was configured, and Apple still has the previous version. Use Configure profile "
             "again, then Add Devices.",
    FAILED: "it could not be configured at Apple. Fix the cause on its page, use Configure profile again, then "
            "Add Devices.",
    "": "it is not configured at Apple. Use Configure profile, then Add Devices.",
}


def _report_unconfigured_default(server: ManagedServer, profile: EnrollmentProfile, conditions: list) -> None:
    """A default profile Apple does not know (yet, or any more) is said so, not skipped silently. Its devices do
    not fall back to another default: the admin chose this profile for them."""
    count = count_devices(server.id, conditions)
    if not count:
        return
    which = f"{family_words(profile.default_families)} " if profile.default_families else ""
    record_activity("assignment.default_skipped", profile, level="warning", actor="system",
                    summary=f"{count:,} new {which}device{'s' if count != 1 else ''} of {server.name} did not get the "
                            f"default profile “{profile.name}”: {SKIP_REASONS.get(profile.status, SKIP_REASONS[''])}")
    db.session.commit()
