"""Token status of a managed server: Valid, About to Expire, Expired, or what Apple reported.

Computed from the token expiry and the last Apple-reported state every time it is shown, so a
badge is never stale; jobs also store it to notice transitions (see jobs/servers.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .apple import errors as apple_errors

VALID, ABOUT_TO_EXPIRE, EXPIRED = "valid", "about_to_expire", "expired"
TERMS_NOT_SIGNED, TOKEN_REJECTED, ACCESS_DENIED, SERVER_MISMATCH, SERVER_TAKEN = (
    "terms_not_signed", "token_rejected", "access_denied", "server_mismatch", "server_taken")
# States the portal found itself (not Apple refusing the token): a later Apple success keeps them.
PORTAL_STATES = (SERVER_MISMATCH, SERVER_TAKEN)


@dataclass(frozen=True)
class Status:
    """A status with the words and remedy an admin sees."""

    key: str
    label: str
    badge: str  # ok | warning | error
    remedy: str

    @property
    def can_sync(self) -> bool:
        """Synchronization (manual or automatic) is possible only with a working token."""
        return self.key in (VALID, ABOUT_TO_EXPIRE)

    @property
    def sync_off(self) -> str:
        """Why Synchronize is disabled, in words (a disabled button's tooltip reaches neither keyboard nor touch)."""
        if self.can_sync:
            return ""
        if self.needs_renewal:
            return "Synchronize is off until the server is renewed."
        return "Synchronize is off until Apple's new terms are accepted (then Check now)."

    @property
    def needs_renewal(self) -> bool:
        """Renew a server is the fix (not accepting Apple's terms, which Check now clears afterwards)."""
        return not self.can_sync and self.key != TERMS_NOT_SIGNED


STATUSES = {s.key: s for s in [
    Status(VALID, "Valid", "ok", "The token is valid. Nothing to do."),
    Status(ABOUT_TO_EXPIRE, "About to Expire", "warning",
           "The token expires soon. Download a new token for this MDM server in Apple Business Manager, "
           "then use Renew a server. Downloading it voids the current token, so renew right away."),
    Status(EXPIRED, "Expired", "error",
           "The token has expired and automatic synchronization is disabled. Download a new token for this "
           "MDM server in Apple Business Manager and use Renew a server."),
    Status(TERMS_NOT_SIGNED, "Terms Not Accepted", "error",
           "Apple has published new terms and conditions. An administrator of the organization must sign in to "
           "Apple Business Manager (business.apple.com; Apple School Manager: school.apple.com) and accept them; "
           "then use Check now."),
    Status(TOKEN_REJECTED, "Token Revoked", "error",
           "Apple no longer accepts this token: it was revoked, or someone downloaded a newer token for this "
           "MDM server in Apple Business Manager. Renew the server with the newest token."),
    Status(ACCESS_DENIED, "Access Denied", "error",
           "Apple refuses access for this token (the Apple Business Manager account that downloaded it may "
           "have lost its rights or been deleted). Download a new token in Apple Business Manager and renew."),
    Status(SERVER_MISMATCH, "Different Apple Server", "error",
           "The renewed token belongs to a different MDM server in Apple Business Manager. Renew with the "
           "token of the right server, or confirm the replacement on the Renew a server page."),
    Status(SERVER_TAKEN, "Already Connected", "error",
           "The renewed token's MDM server in Apple Business Manager is already connected to another managed "
           "server here, which synchronizes its devices (the server's token card names it). Renew with the token "
           "of this server's own MDM server."),
]}


def compute_status(expiry: datetime, apple_state: str | None, warning_days: int,
                   now: datetime | None = None) -> Status:
    """The status a token has now. Expiry wins: renewing fixes every other problem too."""
    now = now or datetime.now(timezone.utc)
    if expiry <= now:
        return STATUSES[EXPIRED]
    if apple_state in STATUSES:
        return STATUSES[apple_state]
    if expiry - now <= timedelta(days=warning_days):
        return STATUSES[ABOUT_TO_EXPIRE]
    return STATUSES[VALID]


def apple_state_for(error: Exception) -> str | None:
    """The lasting server state an Apple error means, or None for errors that pass."""
    if isinstance(error, apple_errors.TermsNotSigned):
        return TERMS_NOT_SIGNED
    if isinstance(error, apple_errors.AccessDenied):
        return ACCESS_DENIED
    if isinstance(error, apple_errors.TokenRejected):
        return TOKEN_REJECTED
    return None
