"""Enrollment profile operations: create, edit, delete, Configure profile. Views call these, then commit
(except start_configure, which must commit before it enqueues)."""
from __future__ import annotations

from sqlalchemy import func, select, update

from ..activity.record import record_activity
from ..assignments.services import close_unsent_for_profile
from ..device_locks import lock_default_profiles, lock_device_writes
from ..url_checks import canonical_url
from ..extensions import db
from ..models import ActivityEntry, Device, EnrollmentProfile, ManagedServer
from ..models.profile import (CHANGED, CONFIGURED, CONFIGURING, DEVICE_FAMILIES, FAILED, NOT_CONFIGURED,
                              family_words)
from ..names import taken_name
from ..queue import enqueue, fetch_job, job_alive, new_job_id
from ..servers.services import FieldErrors
from .payload import FORM_FIELD_FOR_APPLE, apple_snapshot

EDITABLE = ("name", "organization", "department", "support_email", "support_phone", "is_mdm_removable",
            "is_supervised", "is_mandatory", "await_device_configured", "allow_pairing", "auto_advance_setup",
            "is_multi_user", "language", "region", "skip_setup_items", "configuration_web_url", "is_default",
            "default_families")
CONFIGURE_FAILED = "profile.configure_failed"
EDITED = "its settings were edited after it was last configured"  # shown as "Changed because …"
NO_CONFIGURATION = "This managed server has no MDM server configuration: assign one and configure again."


def _clean(data: dict) -> dict:
    """Form data as stored: empty strings become NULL, booleans stay booleans."""
    values = {}
    for name in EDITABLE:
        value = data.get(name)
        if isinstance(value, str):
            value = value.strip() or None
        if name == "skip_setup_items":
            value = sorted(value or []) or None
        elif name == "default_families":  # in the order the form lists them: "iPhone and iPad", "Mac and Apple TV"
            value = [family for family in DEVICE_FAMILIES if family in (value or [])] or None
        values[name] = value
    if not values.get("is_default"):
        values["default_families"] = None  # families only mean something for a default profile
    return values


def name_clash(server: ManagedServer, name: str, profile_id: int | None = None) -> str | None:
    """Why `name` cannot be used for a profile of `server` (naming the profile that has it), or None."""
    others = [EnrollmentProfile.id != profile_id] if profile_id is not None else []
    taken = taken_name(EnrollmentProfile.name, name, EnrollmentProfile.server_id == server.id, *others)
    if taken is None:
        return None
    return (f"{server.name} already has a profile named “{taken}”. Profile names are unique per managed server: "
            "choose another name.")


def _check_name(server: ManagedServer, name: str, profile_id: int | None = None) -> None:
    clash = name_clash(server, name, profile_id)
    if clash:
        raise FieldErrors({"name": clash})


def _make_default(profile: EnrollmentProfile) -> list[str]:
    """At most one default per device family and server: the other defaults of the server lose what this one takes.

    A profile for every family (no families) replaces the server's other profile for every family; one for some
    families takes those from the others, and a profile left with none of its families is no longer a default.
    Each profile that lost something is said in the activity log; returns those sentences ("“Staff” is no longer
    the default profile for new devices"), for the confirmation.
    """
    lock_default_profiles(profile.server_id)  # another save at the same moment: its defaults are seen, not missed
    others = db.session.execute(select(EnrollmentProfile).where(
        EnrollmentProfile.server_id == profile.server_id, EnrollmentProfile.id != profile.id,
        EnrollmentProfile.is_default.is_(True))).scalars().all()
    taken = set(profile.default_families or [])
    said = []
    for other in others:
        if not taken:
            if other.default_families:
                continue  # its families stay its own: this profile takes the rest
            other.is_default = False
            lost = "is no longer the default profile for new devices"
        elif not other.default_families or not taken & set(other.default_families):
            continue  # for every family: it keeps the families this profile does not name
        else:
            lost_families = [family for family in other.default_families if family in taken]
            left = [family for family in other.default_families if family not in taken]
            other.default_families, other.is_default = left or None, bool(left)
            lost = (f"is no longer the default profile for new {family_words(lost_families)} devices"
                    + (f" (it stays the default for {family_words(left)})" if left else ""))
        record_activity("profile.updated", other, summary=f"Enrollment profile {other.name} {lost}: "
                                                          f"{profile.name} is the default now")
        said.append(f"“{other.name}” {lost}.")
    return said


def create_profile(server: ManagedServer, data: dict) -> EnrollmentProfile:
    """A new profile, Not configured: nothing goes to Apple until Configure profile."""
    values = _clean(data)
    _check_name(server, values["name"])
    profile = EnrollmentProfile(server_id=server.id, status=NOT_CONFIGURED, **values)
    db.session.add(profile)
    db.session.flush()
    profile.displaced_defaults = _make_default(profile) if profile.is_default else []  # (not stored: the message)
    record_activity("profile.created", profile, summary=f"Created enrollment profile {profile.name} on {server.name}"
                    + (f" ({_lower_first(profile.default_label)})" if profile.is_default else ""))
    return profile


def _lower_first(label: str) -> str:
    """"Default for new iPhone devices" inside a sentence: only its first letter lowered (iPhone, Apple TV stay)."""
    return label[:1].lower() + label[1:]


def edited_fields(profile: EnrollmentProfile, data: dict) -> list[str]:
    """The fields an edit form changes (names already normalised by the form, lists in any order)."""
    return [name for name, value in _clean(data).items()
            if _comparable({name: value}) != _comparable({name: getattr(profile, name)})]


def update_profile(profile: EnrollmentProfile, data: dict) -> bool:
    """Apply an edit; returns True when Apple's copy is now out of date (status Changed).

    The caller first checks edited_fields(): a save that changes nothing records nothing.
    """
    values = _clean(data)
    _check_name(profile.server, values["name"], profile.id)
    before = _comparable(apple_snapshot(profile))
    for name, value in values.items():
        setattr(profile, name, value)
    changed_for_apple = _comparable(apple_snapshot(profile)) != before
    if changed_for_apple and profile.status == CONFIGURED:
        profile.status, profile.status_detail = CHANGED, EDITED
    elif changed_for_apple and profile.status == CHANGED and _own_reason(profile) is None:
        # Changed for its server configuration only: the edit is said too, so that assigning back the
        # configuration Apple has does not make it Configured with these settings unsent.
        profile.status_detail = _changed_reason(EDITED, profile.status_detail)
    elif changed_for_apple and profile.status == FAILED:
        # The admin fixed something: the old failure no longer describes this version.
        profile.status = CHANGED if profile.apple_profile_uuid else NOT_CONFIGURED
        profile.status_detail = None
    profile.displaced_defaults = _make_default(profile) if profile.is_default else []  # (not stored: the message)
    record_activity("profile.updated", profile, summary=f"Edited enrollment profile {profile.name}"
                    + (": Apple still has the previous version until it is configured again"
                       if profile.status == CHANGED and changed_for_apple else ""))
    return changed_for_apple


def certificate_fingerprints(configuration) -> str:
    """The configuration's anchor certificates as stored in EnrollmentProfile.configured_certificates."""
    return ",".join(sorted(c.sha256 for c in configuration.certificates))


# The reasons out_of_date_reason gives: they name the server's configuration of the moment.
_CONFIGURATION_REASONS = ("Apple sends its devices to ", "the trusted certificates of the server configuration ")
_NO_CONFIGURATION_REASON = "its server has no server configuration any more"
# Said by earlier versions once a configuration was assigned again after an unassign (a reason about the
# configuration too: worked out again like the others).
_REASSIGNED_REASON = "its server configuration was unassigned, then "
_AND = ", and "  # joins the edit to a configuration reason: "its settings were edited …, and Apple sends …"


def out_of_date_reason(profile: EnrollmentProfile, configuration) -> str | None:
    """Why Apple's copy of the profile no longer matches its server's configuration, or None.

    Nothing is compared without a configuration: as in BMC, unassigning one leaves the existing
    profiles as they are (configuring them again needs a configuration first). Profiles configured
    before certificates were recorded are compared by URL only.
    """
    if configuration is None or not profile.apple_profile_uuid or profile.configured_url is None:
        return None
    if canonical_url(profile.configured_url) != canonical_url(configuration.url):
        return (f"Apple sends its devices to {profile.configured_url}, while the server configuration "
                f"{configuration.name} now says {configuration.url}.")
    if profile.configured_certificates is not None \
            and profile.configured_certificates != certificate_fingerprints(configuration):
        return (f"the trusted certificates of the server configuration {configuration.name} changed since "
                "Apple received the profile.")
    return None


def _about_configuration(reason: str) -> bool:
    return reason.startswith(_CONFIGURATION_REASONS + (_NO_CONFIGURATION_REASON, _REASSIGNED_REASON))


def _own_reason(profile: EnrollmentProfile) -> str | None:
    """The part of a Changed profile's reason that no server configuration undoes (its settings were edited,
    Apple no longer knows it…), or None when it is Changed only because of its server configuration.

    Only an edit leaves a Changed profile without a reason (update_profile, after a failure): it counts as one.
    """
    reason = profile.status_detail or EDITED
    if reason.startswith(EDITED):
        return EDITED
    return None if _about_configuration(reason) else reason


def _configuration_part(profile: EnrollmentProfile) -> str | None:
    """The configuration reason a Changed profile states now, alone or after its edit ("…, and Apple sends…")."""
    reason = profile.status_detail or ""
    if reason.startswith(EDITED + _AND):
        return reason[len(EDITED + _AND):]
    return reason if _about_configuration(reason) else None


def _changed_reason(own: str | None, configuration_reason: str | None) -> str | None:
    """A Changed profile's reason from both sides, or None when neither remains (Apple has what it should).

    An edit is said with the configuration reason; any other reason of its own (Apple no longer knows it, its
    Apple MDM server was replaced) is said alone: Configure profile defines it anew whatever Apple had.
    """
    if own == EDITED and configuration_reason:
        return f"{EDITED}{_AND}{configuration_reason}"
    return own or configuration_reason


def note_configuration_changes(server_ids: list[int], into: list | None = None,
                               restored: list | None = None, still: list | None = None) -> int:
    """After a server configuration was assigned or edited: the configured profiles of these servers
    that Apple has with another URL or other certificates become Changed, with the reason (Apple keeps
    sending their devices to what it was given). A Changed profile's reason is worked out again so that it
    stays true: one Changed only because of the configuration is Configured again once the configuration
    matches what Apple has (appended to ``restored`` when given); an edit is never forgotten.
    Returns how many became Changed or got a new configuration reason (the caller commits); each of them
    is appended to ``into`` when given, except that a profile already Changed goes to ``still`` when that is
    given (it did not become Changed: its reason changed)."""
    profiles = db.session.execute(select(EnrollmentProfile).where(
        EnrollmentProfile.server_id.in_(server_ids), EnrollmentProfile.status.in_((CONFIGURED, CHANGED)))).scalars()
    changed = 0
    for profile in profiles:
        configuration = profile.server.configuration
        if configuration is None:
            continue  # unassigned: profiles are left as they are (note_configuration_unassigned)
        reason = out_of_date_reason(profile, configuration)
        if profile.status == CHANGED and reason is None:
            _settle_without_configuration_reason(profile, configuration, restored)
            continue
        own = _own_reason(profile) if profile.status == CHANGED else None
        detail = _changed_reason(own, reason)
        if reason is None or (profile.status == CHANGED and profile.status_detail == detail):
            continue  # (a reason of its own other than an edit stays as it is: see _changed_reason)
        was_changed = profile.status == CHANGED
        profile.status, profile.status_detail = CHANGED, detail
        changed += 1
        if was_changed and still is not None:
            still.append(profile)
        elif into is not None:
            into.append(profile)
        record_activity("profile.configuration_changed", profile, level="warning",
                        summary=f"Enrollment profile {profile.name} is out of date at Apple: {reason} "
                                "Configure profile again to send it.")
    return changed


def _settle_without_configuration_reason(profile: EnrollmentProfile, configuration, restored: list | None) -> None:
    """A Changed profile whose server configuration is the one Apple has: its own reason stays, alone; without
    one it is Configured again, as Apple holds its settings with this configuration's URL and certificates."""
    if _configuration_part(profile) is None and profile.status_detail:
        return  # Changed for another reason only (edited, unknown at Apple): nothing to work out again
    own = _own_reason(profile)
    if own is not None:
        profile.status_detail = own
        return
    profile.status, profile.status_detail = CONFIGURED, None
    if restored is not None:
        restored.append(profile)
    record_activity("profile.configuration_matches", profile,
                    summary=f"Enrollment profile {profile.name} is Configured again: Apple has it with the URL and "
                            f"certificates of its server configuration {configuration.name}, so nothing is left "
                            "to send.")


def no_configuration_reason(profile: EnrollmentProfile, previous_name: str) -> str:
    """Why a Changed profile is out of date once its server has no configuration (shown as "Changed because …")."""
    return (f"{_NO_CONFIGURATION_REASON} ({previous_name} was unassigned), while Apple still "
            f"sends its devices to {profile.configured_url}: assign a server configuration, then configure again.")


def note_configuration_unassigned(server_id: int, previous_name: str) -> int:
    """After Unassign Server Configuration: Changed profiles whose reason named that configuration say instead
    that the server has none any more (Configured ones stay as they are, as in BMC). Returns how many."""
    profiles = db.session.execute(select(EnrollmentProfile).where(
        EnrollmentProfile.server_id == server_id, EnrollmentProfile.status == CHANGED)).scalars().all()
    changed = 0
    for profile in profiles:
        if (_configuration_part(profile) or "").startswith(_CONFIGURATION_REASONS):
            reason = no_configuration_reason(profile, previous_name)
            profile.status_detail = _changed_reason(_own_reason(profile), reason)
            changed += 1
    return changed


def note_profile_unknown_at_apple(profile: EnrollmentProfile) -> None:
    """Apple answered "profile not found" for the profile's current UUID (deleted at Apple, say): it becomes
    Changed until configured again, so that its devices wait for that rather than being sent hourly in vain."""
    reason = "Apple no longer knows this profile (it answered “profile not found” when devices were assigned to it)."
    if profile.status == CHANGED and profile.status_detail == reason:
        return
    profile.status, profile.status_detail = CHANGED, reason
    record_activity("profile.unknown_at_apple", profile, level="warning",
                    summary=f"Enrollment profile {profile.name} is unknown at Apple: {reason} "
                            "Configure profile again to define it there; its devices are sent then.")


def note_apple_server_replaced(server_id: int) -> int:
    """The managed server now uses another Apple MDM server's token: its profiles Apple knew are
    unknown there, so they become Changed until configured again. Returns how many (caller commits)."""
    profiles = db.session.execute(select(EnrollmentProfile).where(
        EnrollmentProfile.server_id == server_id, EnrollmentProfile.apple_profile_uuid.is_not(None),
        EnrollmentProfile.status.in_((CONFIGURED, CHANGED)))).scalars().all()
    reason = ("the managed server now uses another Apple MDM server, which does not know this profile "
              "(Apple answers “profile not found” for its devices).")
    for profile in profiles:
        profile.status, profile.status_detail = CHANGED, reason
        record_activity("profile.server_replaced", profile, level="warning",
                        summary=f"Enrollment profile {profile.name} is out of date at Apple: {reason} "
                                "Configure profile again to define it there.")
    return len(profiles)


def _comparable(snapshot: dict) -> dict:
    return {k: (sorted(v) if isinstance(v, list) else (v or None if not isinstance(v, bool) else v))
            for k, v in snapshot.items()}


def after_default_deleted(profile: EnrollmentProfile) -> str | None:
    """What new devices of the server get once this default profile is deleted, as "new iPhone devices get …"
    (None when it is no default).

    A default for some families leaves them to the server's default for every family, if there is one; the default
    for every family leaves the families no other default names (or the devices Apple gives no family) without one.
    """
    if not profile.is_default:
        return None
    if profile.default_families:
        which = f"new {family_words(profile.default_families)} devices"
        others = db.session.execute(select(EnrollmentProfile).where(
            EnrollmentProfile.server_id == profile.server_id, EnrollmentProfile.id != profile.id,
            EnrollmentProfile.is_default.is_(True)).order_by(EnrollmentProfile.id)).scalars()
        fallback = next((other for other in others if not other.default_families), None)
        if fallback is not None:
            return (f"{which} get {fallback.name} instead, the server's default profile for every other device family"
                    + ("" if fallback.status == CONFIGURED else
                       " (once it is configured: a default profile is not applied until then)") + ".")
    elif profile.others_take_every_family:
        which = "new devices Apple reports without a device family"
    elif others := profile.families_of_other_defaults:
        kept = "keeps its default profile" if len(others) == 1 else "keep their default profile"
        which = f"new devices other than {family_words(others)} ({family_words(others)} {kept})"
    else:
        which = "new devices"
    return (f"{which} get no profile automatically: use Add Devices for them, or make another "
            "profile the default.")


def delete_profile(profile: EnrollmentProfile, device_count: int) -> None:
    """Delete a profile; its devices' profile_id becomes NULL through the foreign key (caller commits)."""
    note = (f"; {device_count:,} associated device{'s keep' if device_count != 1 else ' keeps'} Apple's profile "
            "until it is removed from them"
            if device_count else "")
    lock_device_writes(profile.server_id)  # its devices' profile_id becomes NULL: a device write
    unsent = close_unsent_for_profile(profile.id)
    if unsent:
        note += (f"; {unsent:,} device{'s' if unsent != 1 else ''} of the retry queue "
                 f"{'were' if unsent != 1 else 'was'} closed, not sent")
    record_activity("profile.deleted", profile, level="warning" if device_count or unsent else "info",
                    summary=f"Deleted enrollment profile {profile.name} of {profile.server.name}{note}",
                    details={"apple_profile_uuid": profile.apple_profile_uuid, "devices": device_count,
                             "not_sent": unsent})
    db.session.delete(profile)


def device_counts(profile_ids: list[int]) -> dict[int, int]:
    """Current devices associated with each profile (Device.profile_id), in one grouped query: as
    the profile's device list shows them, without the devices Apple no longer assigns to the server."""
    if not profile_ids:
        return {}
    rows = db.session.execute(select(Device.profile_id, func.count()).where(
        Device.profile_id.in_(profile_ids), Device.removed_at.is_(None)).group_by(Device.profile_id)).all()
    return dict(rows)


def configure_running(profile: EnrollmentProfile) -> bool:
    """True while a Configure profile job is queued or running for this profile."""
    if profile.status != CONFIGURING:
        return False
    return job_alive(fetch_job(profile.job_id))


def settle_stale(profile: EnrollmentProfile) -> bool:
    """A profile left Configuring by a worker that died: mark it Failed so it can be configured again."""
    if profile.status != CONFIGURING or configure_running(profile):
        return False
    profile.status = FAILED
    profile.status_detail = "The background job stopped before Apple answered: use Configure profile again."
    record_activity(CONFIGURE_FAILED, profile, level="error", actor="system",
                    summary=f"Configuring {profile.name} was interrupted", details={"job_id": profile.job_id})
    return True


def start_configure(profile: EnrollmentProfile, *, reassign: bool, admin_id: int | None) -> bool:
    """Commit the Configuring state, then enqueue the job; False when one is already running."""
    if configure_running(profile):
        return False
    profile.status, profile.status_detail = CONFIGURING, None
    profile.job_id = new_job_id()
    record_activity("profile.configure_requested", profile,
                    summary=f"Configure profile {profile.name} requested"
                    + (" (associated devices will be re-assigned)" if reassign else ""))
    db.session.commit()
    enqueue("jobs.profiles.configure_profile", profile.id, bool(reassign), admin_id, job_id=profile.job_id,
            job_timeout=600)
    return True


def failure_field(profile: EnrollmentProfile) -> tuple[str, str] | None:
    """(form field, message) of the Apple refusal behind a Failed status, read from the activity log."""
    if profile.status != FAILED or not profile.status_detail:
        return None
    entry = db.session.execute(
        select(ActivityEntry).where(ActivityEntry.object_type == EnrollmentProfile.__tablename__,
                                    ActivityEntry.object_id == profile.id, ActivityEntry.action == CONFIGURE_FAILED)
        .order_by(ActivityEntry.id.desc()).limit(1)).scalar_one_or_none()
    apple_field = (entry.details or {}).get("field") if entry else None
    form_field = FORM_FIELD_FOR_APPLE.get(apple_field or "")
    return (form_field, profile.status_detail) if form_field else None


def profiles_of(server_id: int | None) -> list[EnrollmentProfile]:
    """Profiles of one server, or of every server (by server name, then profile name)."""
    query = select(EnrollmentProfile).join(ManagedServer)
    if server_id is not None:
        query = query.where(EnrollmentProfile.server_id == server_id)
    return list(db.session.execute(query.order_by(ManagedServer.name, EnrollmentProfile.name)).scalars())

