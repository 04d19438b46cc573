"""Configure profile: define an enrollment profile at Apple with the server configuration's URL and
certificates. Every outcome lands on the profile row (status, plain-words reason) and in the activity log."""
from __future__ import annotations

from datetime import datetime, timezone

from rq import get_current_job

from portal.activity.record import record_activity
from portal.assignments.retries import release_profile_holds
from portal.apple import errors as apple_errors
from portal.apple_link import client_for, note_apple_error, note_apple_success, status_of
from portal.extensions import db
from portal.models import Admin, EnrollmentProfile
from portal.models.profile import CONFIGURED, FAILED
from portal.profiles.payload import define_body
from portal.profiles.services import (CONFIGURE_FAILED, NO_CONFIGURATION, certificate_fingerprints,
                                     note_configuration_changes)


def configure_profile(profile_id: int, reassign: bool = False, admin_id: int | None = None) -> dict:
    """Send the profile to Apple (POST /profile); on success store the new UUID and, if asked,
    re-assign the devices associated with the previous UUID."""
    profile = db.session.get(EnrollmentProfile, profile_id)
    if profile is None:
        return {"skipped": "profile deleted"}
    job = get_current_job()
    if job is not None and profile.job_id and job.id != profile.job_id:
        return {"skipped": "superseded by a newer Configure profile"}
    server = profile.server
    token = status_of(server)
    if not token.can_sync:
        return _fail(profile, f"{server.name}'s token status is {token.label}: {token.remedy}", code=token.key)
    configuration = server.configuration
    if configuration is None:
        return _fail(profile, NO_CONFIGURATION, code="no_configuration")
    body = define_body(profile, configuration)
    sent = (configuration.url, certificate_fingerprints(configuration))
    try:
        answer = client_for(server).define_profile(body)
    except apple_errors.ProfileInvalid as exc:
        message = f"Apple refused the profile: {exc.message}"
        if exc.field == "url":
            message += (f" The URL comes from the server configuration “{configuration.name}” "
                        f"({configuration.url}): fix it there, or assign another one, then configure again.")
        return _fail(profile, message, code=exc.code, field=exc.field, status=exc.status)
    except (apple_errors.Throttled, apple_errors.TransientError) as exc:
        return _fail(profile, f"Apple could not take the profile right now: {exc.message} Then use Configure "
                              "profile again.", code=exc.code, status=exc.status)
    except apple_errors.AppleError as exc:
        if note_apple_error(server, exc):
            token = status_of(server)
            message = f"Apple refused the token of {server.name} ({token.label}): {token.remedy}"
        else:
            message = f"Apple refused the profile: {exc.message}"
        return _fail(profile, message, code=exc.code, status=exc.status)
    except Exception as exc:  # unexpected: recorded for the admin, then re-raised for RQ's failed registry
        _fail(profile, "The portal hit an unexpected error while configuring the profile: try again; if it "
                       "persists, the background job log has the details.", code=type(exc).__name__)
        raise
    return _succeed(profile, configuration, sent, answer, reassign, admin_id)


def _succeed(profile: EnrollmentProfile, configuration, sent: tuple[str, str], answer: dict, reassign: bool,
             admin_id: int | None) -> dict:
    previous = profile.apple_profile_uuid
    note_apple_success(profile.server)
    profile.status, profile.status_detail = CONFIGURED, None
    profile.apple_profile_uuid = str(answer.get("profile_uuid") or "") or None
    profile.configured_at = datetime.now(timezone.utc)
    profile.configured_url, profile.configured_certificates = sent
    record_activity("profile.configured", profile, actor="system",
                    summary=f"Apple accepted enrollment profile {profile.name}: UUID {profile.apple_profile_uuid}"
                            + (f" (replaces {previous})" if previous else ""),
                    details={"apple_profile_uuid": profile.apple_profile_uuid, "previous_uuid": previous,
                             "url": configuration.url, "configuration": configuration.name,
                             "anchor_certs": len(configuration.certificates)})
    db.session.commit()
    # The server configuration may have changed while Apple answered (its own check saw Configuring):
    # compared again in a new transaction, which sees what was committed meanwhile (its other profiles too).
    note_configuration_changes([profile.server_id])
    db.session.commit()
    result = {"ok": True, "profile_uuid": profile.apple_profile_uuid}
    if profile.status == CONFIGURED:  # (Changed again meanwhile: its devices would only be held again)
        # Its devices held for it are sent now, not when their few minutes' wait is over.
        result["released"] = release_profile_holds(profile)
    if reassign and previous and previous != profile.apple_profile_uuid:
        result["reassign"] = _reassign(profile, admin_id)
    return result


def _reassign(profile: EnrollmentProfile, admin_id: int | None) -> str:
    """Hand the devices associated with the old UUID to the assignments area (helper C's service)."""
    admin = db.session.get(Admin, admin_id) if admin_id else None
    actor = admin.username if admin else "system"
    try:
        from portal.assignments.services import reassign_profile_devices
    except ImportError:
        record_activity("profile.reassign_unavailable", profile, level="warning", actor=actor,
                        summary=f"The devices of {profile.name} could not be re-assigned automatically: "
                                "use Add Devices on the profile page.")
        db.session.commit()
        return "unavailable"
    try:
        batch = reassign_profile_devices(profile, actor)
    except ValueError as exc:
        record_activity("profile.reassign_failed", profile, level="warning", actor=actor,
                        summary=f"Re-assigning the devices of {profile.name} did not start: {exc}")
        db.session.commit()
        return "refused"
    return "started" if batch is not None else "nothing to do"


def _fail(profile: EnrollmentProfile, message: str, **details) -> dict:
    """Failed, with the reason in plain words; details (Apple code, field) go to the activity log."""
    profile.status, profile.status_detail = FAILED, message
    record_activity(CONFIGURE_FAILED, profile, level="error", actor="system",
                    summary=f"Configuring {profile.name} failed: {message}",
                    details={k: v for k, v in details.items() if v is not None})
    db.session.commit()
    return {"ok": False, "reason": message, **{k: v for k, v in details.items() if v is not None}}
