"""Profile status words and badges, as the lists and the profile page show them."""
from __future__ import annotations

from dataclasses import dataclass

from ..models.profile import CHANGED, CONFIGURED, CONFIGURING, FAILED, NOT_CONFIGURED


@dataclass(frozen=True)
class ProfileStatus:
    key: str
    label: str
    badge: str  # CSS badge-<badge>
    hint: str


STATUSES = {s.key: s for s in [
    ProfileStatus(NOT_CONFIGURED, "Not configured", "neutral",
                  "Apple does not know this profile yet: use Configure profile to send it."),
    ProfileStatus(CONFIGURING, "Configuring", "info", "The profile is being sent to Apple."),
    ProfileStatus(CONFIGURED, "Configured", "ok", "Apple has this profile; devices can be associated with it."),
    ProfileStatus(FAILED, "Failed", "error", "Configuring did not succeed: fix the cause below and configure again."),
    ProfileStatus(CHANGED, "Changed — configure again", "warning",
                  "The profile, or its server configuration, changed after it was configured: Apple still has the "
                  "previous version until you use Configure profile again."),
]}


def status_of(profile) -> ProfileStatus:
    """The status of a profile (unknown keys show as Not configured)."""
    return STATUSES.get(profile.status, STATUSES[NOT_CONFIGURED])
