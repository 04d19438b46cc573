"""Will a device enroll automatically? (Apple hands it our profile, the profile points at our MDM.)

A current device enrolls automatically during Setup Assistant only if Apple accepted an enrollment
profile of ours for it (Device.profile_id), that profile is configured at Apple as it is here, its
server has a server configuration (the MDM the profile's URL sends the device to), and Apple still
holds that profile's current UUID for the device (profile_uuid and profile_status as last
synchronized): a profile removed or replaced outside this portal, or a profile re-configured since
Apple assigned it, is drift that the association alone would hide.
`will_enroll` explains one device in plain words; `not_ready_conditions` is the same rule in SQL,
for counts and the `enroll` filter. Keep the two in step (tests check they agree).

A device that is not ready may still get a profile from Apple: the one Apple holds for it (profile
status assigned or pushed), kept when its profile here was deleted, changed since it was configured,
or its server lost its server configuration. It then enrolls, but with settings that are not the
ones set up here: its outlook is "outdated", flagged apart from "no" (it will fail to enroll).
"""
from __future__ import annotations

from sqlalchemy import and_, exists, func, not_, or_, select

from ..extensions import db
from ..models import AssignmentBatch, AssignmentTask, Device, EnrollmentProfile, ManagedServer
from ..models.assignment import ASSIGN, DONE, FAILED, QUEUED, RELEASE, SENDING, THROTTLED
from ..models.profile import CONFIGURED
from .pending import shown_state

HELD_STATUSES = ("assigned", "pushed")  # Apple's profile status while it hands the device a profile
YES, OUTDATED, NO = "yes", "outdated", "no"
STATUS_WORDS = {"not_configured": "not configured yet", "configuring": "being configured",
                "failed": "failed to configure", "changed": "changed since it was last configured"}


def not_ready_conditions(device=Device) -> list:
    """Conditions on Device (AND-ed) matching current devices that will fail to enroll automatically.

    `device`: Device, or the columns (`.c`) of a selectable holding Device's server_id, removed_at,
    profile_id, profile_status and profile_uuid under those names (not_ready_counts' groups).
    """
    profile_configured = exists(select(EnrollmentProfile.id).where(
        EnrollmentProfile.id == device.profile_id, EnrollmentProfile.status == CONFIGURED,
        func.upper(EnrollmentProfile.apple_profile_uuid) == func.upper(device.profile_uuid),
        device.profile_status.in_(HELD_STATUSES)))
    server_configured = exists(select(ManagedServer.id).where(
        ManagedServer.id == device.server_id, ManagedServer.configuration_id.is_not(None)))
    return [device.removed_at.is_(None),
            or_(device.profile_id.is_(None), not_(profile_configured), not_(server_configured))]


def apple_holds_profile(device: Device) -> bool:
    """Whether Apple hands the device a profile at its next setup, whatever this portal associates."""
    return bool(device.profile_uuid) and device.profile_status in HELD_STATUSES


def apple_holds_current(device: Device, profile_uuid: str | None) -> bool:
    """Whether Apple hands the device the profile with this (current) UUID; UUIDs read in any case."""
    return (apple_holds_profile(device) and bool(profile_uuid)
            and device.profile_uuid.upper() == profile_uuid.upper())


def apple_holds_condition(device=Device):
    """apple_holds_profile() in SQL (`device` as in not_ready_conditions)."""
    return and_(device.profile_uuid.is_not(None), device.profile_status.in_(HELD_STATUSES))


def outlook(device: Device, ready: bool) -> str:
    """YES (ready), OUTDATED (not ready, but Apple still hands it a profile) or NO."""
    if ready:
        return YES
    return OUTDATED if device.removed_at is None and apple_holds_profile(device) else NO


def outlook_conditions(value: str) -> list:
    """Conditions on Device (AND-ed) for the `enroll` filter: YES, OUTDATED or NO (see outlook())."""
    not_ready = and_(*not_ready_conditions())
    if value == YES:
        return [Device.removed_at.is_(None), not_(not_ready)]
    held = apple_holds_condition()
    return [not_ready, held if value == OUTDATED else not_(held)]


def will_enroll(device: Device) -> tuple[bool, str]:
    """(True, why) if the device will enroll automatically, else (False, what is missing, and what
    Apple will hand it meanwhile if it still holds a profile for it)."""
    ready, reason = _readiness(device)
    if not ready and device.removed_at is None and apple_holds_profile(device):
        reason += " " + _held_words(device)
    return ready, reason


def _held_words(device: Device) -> str:
    """What Apple hands a device that is not ready here, when it still holds a profile for it."""
    status = "pushed to the device" if device.profile_status == "pushed" else "assigned"
    same = db.session.execute(select(EnrollmentProfile).where(
        EnrollmentProfile.server_id == device.server_id,
        EnrollmentProfile.apple_profile_uuid == device.profile_uuid).limit(1)).scalar_one_or_none()
    if same is not None:
        held = f"the version of the profile “{same.name}” it was last configured with"
    else:
        held = f"a profile this portal no longer has (UUID {device.profile_uuid}; deleted here, or assigned elsewhere)"
    return (f"Meanwhile Apple still hands the device {held} ({status}): it enrolls with those settings, "
            "not the ones set up here.")


def _readiness(device: Device) -> tuple[bool, str]:
    """(True, why) if the device will enroll automatically, else (False, what is missing)."""
    if device.removed_at is not None:
        release = db.session.execute(select(AssignmentBatch.id).join(AssignmentTask).where(
            AssignmentTask.device_id == device.id, AssignmentTask.state == DONE, AssignmentBatch.action == RELEASE)
            .order_by(AssignmentBatch.id.desc()).limit(1)).scalar()
        if release is not None:  # not "no longer assigned to this server": it left the organization
            return False, (f"The device was released from Apple Business Manager by Release Devices #{release} "
                           f"({device.removed_at:%Y-%m-%d}): it is no longer in your organization.")
        return False, ("The device is no longer assigned to this server in Apple Business Manager "
                       f"(removed {device.removed_at:%Y-%m-%d}).")
    server = db.session.get(ManagedServer, device.server_id)
    profile = db.session.get(EnrollmentProfile, device.profile_id) if device.profile_id else None
    if profile is None:
        release = _release_under_way(device)
        if release is not None:  # not "Add Devices to a profile": the admin is taking it out of the organization
            return False, release
        waiting = _assignment_under_way(device)
        if waiting is not None:  # not "Add Devices to a profile": that would only make a second request
            return False, waiting
        state = shown_state(device)
        pending = {"queued": " A request is waiting to be sent to Apple.",
                   "throttled": " Apple throttled the last request; it will be retried.",
                   "failed": " Apple's last answer was a failure; it will be retried.",
                   "not_accessible": " Apple answered that the device is not accessible to this server."}
        if state in (FAILED, THROTTLED) and not _in_retry_queue(device):
            pending[state] = (f" Apple {'throttled the last request' if state == THROTTLED else 'answered the last request FAILED'}"
                              "; it is not retried any more (its retries were stopped, or its profile deleted).")
        return False, ("No enrollment profile is associated with the device: Add Devices to a profile."
                       + pending.get(state, ""))
    if profile.status != CONFIGURED:
        words = STATUS_WORDS.get(profile.status, profile.status)
        return False, f"Its profile “{profile.name}” is {words}: Configure profile."
    if server is None or server.configuration_id is None:
        return False, "Its server has no server configuration: Assign Server Configuration."
    if not apple_holds_current(device, profile.apple_profile_uuid):
        again = f"Use Add Devices on “{profile.name}” to assign it again."
        if apple_holds_profile(device):
            return False, (f"Apple holds another enrollment profile for it than the current “{profile.name}” "
                           f"(UUID {device.profile_uuid}): the profile was re-configured since Apple assigned it, "
                           f"or the device got another profile outside this portal. {again}")
        return False, (f"Apple holds no enrollment profile for it (profile status: {device.profile_status or 'empty'}), "
                       f"although it is associated with “{profile.name}” here: the profile was removed outside this "
                       f"portal. {again}")
    return True, (f"Apple hands it the profile “{profile.name}”, which sends it to the server configuration "
                  f"“{server.configuration_name}”.")


def _in_retry_queue(device: Device) -> bool:
    """Whether a request of the device waits in the retry queue (Apple answered FAILED or THROTTLED and it is sent
    again): Stop retrying, or deleting the profile it was for, closes it, while the device keeps Apple's answer."""
    return db.session.execute(select(AssignmentTask.id).where(
        AssignmentTask.device_id == device.id, AssignmentTask.state.in_((FAILED, THROTTLED))).limit(1)).first() is not None


ASSIGNMENT_WAITS = {QUEUED: "waits to be sent to Apple", SENDING: "is being sent to Apple",
                    FAILED: "was answered FAILED by Apple and is sent again after 24 hours",
                    THROTTLED: "was throttled by Apple and is sent again after Apple's wait"}


def _assignment_under_way(device: Device) -> str | None:
    """Why a device without a profile is not ready yet, when an Add Devices of it has not been answered for good."""
    row = db.session.execute(select(AssignmentBatch.id, AssignmentTask.state, EnrollmentProfile.name)
                             .join(AssignmentTask).join(EnrollmentProfile, EnrollmentProfile.id == AssignmentBatch.profile_id)
                             .where(AssignmentTask.device_id == device.id, AssignmentBatch.action == ASSIGN,
                                    AssignmentTask.state.in_(tuple(ASSIGNMENT_WAITS)))
                             .order_by(AssignmentBatch.id.desc()).limit(1)).first()
    if row is None:
        return None
    after = (" Retry now on the request's page sends it before then; Stop retrying in the retry queue gives it up."
             if row.state in (FAILED, THROTTLED) else "")
    return (f"No enrollment profile is associated with the device yet: its Add Devices to “{row.name}” (request "
            f"#{row.id}) {ASSIGNMENT_WAITS[row.state]}, and it enrolls automatically once Apple accepts it.{after}")


RELEASE_WAITS = {QUEUED: "waits to be sent to Apple", SENDING: "is being sent to Apple",
                 FAILED: "was answered FAILED by Apple and is sent again after 24 hours",
                 THROTTLED: "was throttled by Apple and is sent again after Apple's wait"}


def _release_under_way(device: Device) -> str | None:
    """Why a device without a profile is not ready, when a Release Devices of it has not been answered for good."""
    row = db.session.execute(select(AssignmentBatch.id, AssignmentTask.state).join(AssignmentTask).where(
        AssignmentTask.device_id == device.id, AssignmentBatch.action == RELEASE,
        AssignmentTask.state.in_(tuple(RELEASE_WAITS))).order_by(AssignmentBatch.id.desc()).limit(1)).first()
    if row is None:
        return None
    return (f"Its release from Apple Business Manager (Release Devices #{row.id}) {RELEASE_WAITS[row.state]}: "
            "once Apple releases it, the device leaves your organization and never enrolls automatically again.")


def not_ready_counts(server_id: int) -> dict[str, int]:
    """How many current devices of the server will fail to enroll automatically (NO), and how many
    will enroll with a profile Apple holds that is not as set up here (OUTDATED).

    The rule reads five columns of a device, and a server's devices share a few combinations of
    them (its profiles × Apple's profile statuses × the UUIDs Apple holds): the devices are counted
    per combination from ix_device_enroll alone (no row lookups, no sort), then the rule, unchanged,
    picks the combinations that are not ready, so it runs a few times instead of once per device.
    """
    keys = (Device.server_id, Device.removed_at, Device.profile_id, Device.profile_status, Device.profile_uuid)
    groups = (select(*keys, func.count().label("devices")).where(Device.server_id == server_id,
                                                                  Device.removed_at.is_(None))
              .group_by(*keys).subquery("groups"))
    devices = func.sum(groups.c.devices)
    row = db.session.execute(select(func.coalesce(devices, 0),
                                    func.coalesce(devices.filter(apple_holds_condition(groups.c)), 0))
                             .where(*not_ready_conditions(groups.c))).one()
    return {NO: int(row[0]) - int(row[1]), OUTDATED: int(row[1])}
