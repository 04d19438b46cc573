"""What each action code of the activity log reads as on the pages, in the portal's own words (Add Server,
Renew a server, Configure profile, Add Devices…). The code itself stays in the database, the CSV export and the
webhooks (machine consumers); the pages show it small beside its label, for admins who know it.

Every code recorded anywhere (record_activity's first argument) has its label here: a test scans portal/ and
jobs/ for them. A code without one (an old entry, a new feature) reads as its humanised form, never an error.
"""
from __future__ import annotations

from ..models.assignment import ACTION_WORDS

ACTION_LABELS: dict[str, str] = {
    # Admins
    "admin.login": "Signed in",
    "admin.logout": "Signed out",
    "admin.login_locked": "Sign-in locked",
    "admin.password_changed": "Password changed",
    # Managed servers
    "server.added": "Add Server",
    "server.renewed": "Renew a server",
    "server.deleted": "Server deleted",
    "server.check_requested": "Token check requested",
    "server.token_status": "Token status changed",
    "server.token_reminder": "Token expiry reminder",
    "server.account_fetched": "Apple account details read",
    "server.account_failed": "Apple account details not read",
    "server.account_taken": "Token of another server",
    "server.sync_requested": "Synchronization requested",
    "server.synchronized": "Synchronized",
    "server.sync_failed": "Synchronization failed",
    "server.sync_retry": "Synchronization retried",
    "server.default_profile_failed": "Default profile not queued",
    "server.configuration_assigned": "Assign Server Configuration",
    "server.configuration_unassigned": "Unassign Server Configuration",
    "keypair.generated": "Key pair generated",
    "keypair.deleted": "Key pair deleted",
    # Enrollment profiles
    "profile.created": "Create Profile",
    "profile.updated": "Profile edited",
    "profile.deleted": "Profile deleted",
    "profile.configure_requested": "Configure profile requested",
    "profile.configured": "Profile configured at Apple",
    "profile.configure_failed": "Configure profile failed",
    "profile.configuration_changed": "Profile out of date at Apple",
    "profile.configuration_matches": "Profile matches Apple again",
    "profile.unknown_at_apple": "Profile unknown at Apple",
    "profile.server_replaced": "Profile's server replaced",
    "profile.reassign_unavailable": "Devices not re-assigned",
    "profile.reassign_failed": "Re-assigning devices failed",
    # Add Devices / Remove Devices / Release Devices ("assignment.<action>_requested" and "_finished")
    **{f"assignment.{action}_requested": f"{words} requested" for action, words in ACTION_WORDS.items()},
    **{f"assignment.{action}_finished": f"{words} finished" for action, words in ACTION_WORDS.items()},
    **{f"assignment.{action}_held": f"{words} held" for action, words in ACTION_WORDS.items()},
    "assignment.retry_now": "Retry now",
    "assignment.retries_stopped": "Retries stopped",
    "assignment.closed_for_removed": "Retries closed: devices removed",
    "assignment.default_skipped": "Default profile not assigned",
    # Server configurations
    "configuration.created": "Server configuration created",
    "configuration.updated": "Server configuration edited",
    "configuration.deleted": "Server configuration deleted",
    # Configuration › Apple, notifications, background jobs
    "settings.apple": "Configuration › Apple saved",
    "notification.delivered": "Notification delivered",
    "notification.partly_delivered": "Notification partly delivered",
    "notification.failed": "Notification not delivered",
    "notification.retrying": "Notification to be tried again",
    "system.test_job": "Test job queued",
    "system.heartbeat": "Background worker answered",
}


def action_label(code) -> str:
    """The words of an action code; an unknown one humanised ("thing.went_wrong" → "Thing: went wrong")."""
    code = code if isinstance(code, str) else ("" if code is None else str(code))
    if code in ACTION_LABELS:
        return ACTION_LABELS[code]
    words = [" ".join(part.replace("_", " ").split()) for part in code.split(".")]
    words = [w for w in words if w]
    if not words:
        return "—"
    text = ": ".join(words)
    return text[:1].upper() + text[1:]
