"""Exceptions of portal.apple: token files, private keys and Apple's device enrollment service."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs

# ===== Token file and private key errors (owned by helper "tokens") =====
# Messages are sentences an administrator can act on; they never quote secret values.


def format_serial(serial: int) -> str:
    """A certificate serial number as uppercase hex, the way openssl and Keychain show it."""
    digits = f"{abs(serial):X}"
    digits = digits.zfill(len(digits) + len(digits) % 2)  # whole bytes: 0A1B, not A1B
    return ("-" if serial < 0 else "") + digits


class TokenFileError(ValueError):
    """An uploaded server token file cannot be used."""


class NotATokenFile(TokenFileError):
    """The file is not an Apple server token (``*_smime.p7m``) at all."""


class WrongRecipient(TokenFileError):
    """The token was encrypted for another certificate than the one whose private key was given."""

    def __init__(self, issuer: str, serial: int, message: str | None = None) -> None:
        self.issuer = issuer
        self.serial = serial
        super().__init__(message or (
            "This server token cannot be decrypted with the private key provided: it was encrypted "
            f"for the certificate issued by \"{issuer}\" with serial number {format_serial(serial)}. "
            "Upload the private key that belongs to that certificate, or download a new token from "
            "Apple Business Manager after uploading this portal's certificate."))

    def __reduce__(self):  # keep issuer and serial through pickling (e.g. job results)
        return type(self), (self.issuer, self.serial, str(self))


class CorruptToken(TokenFileError):
    """The file looks like a server token but is damaged or truncated."""


class UnexpectedContent(TokenFileError):
    """The token decrypted (or parsed) but does not hold what Apple puts in a server token."""


class PrivateKeyError(ValueError):
    """An uploaded private key cannot be used."""


class PasswordRequired(PrivateKeyError):
    """The private key is encrypted and no password was given."""


class WrongPassword(PrivateKeyError):
    """The password does not decrypt the private key."""


class NotAPrivateKey(PrivateKeyError):
    """The file does not hold a private key (often a certificate or the token itself)."""


class UnsupportedKey(PrivateKeyError):
    """The private key is not an RSA key (Apple only encrypts tokens for RSA certificates)."""


class CertificateError(ValueError):
    """The data is not an X.509 certificate."""


# ===== end of "tokens" section =====


# ===== Apple DEP service errors (owned by helper "client"; used by portal.apple.client) =====

BODY_LIMIT = 1024  # bytes of an error body kept for diagnostics (nanodep keeps 1 KiB too)


class AppleError(Exception):
    """An error answered by (or on the way to) Apple's device enrollment service."""

    default_message = "Apple's device enrollment service returned an unexpected error."

    def __init__(self, message: str | None = None, *, status: int | None = None,
                 code: str | None = None, body: str = "") -> None:
        self.message = message or self.default_message
        self.status = status
        self.code = code
        self.body = (body or "")[:BODY_LIMIT]
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, code={self.code!r})"


class TermsNotSigned(AppleError):
    """The organisation has not accepted Apple's latest terms and conditions (T_C_NOT_SIGNED)."""

    default_message = ("Apple Business Manager's terms and conditions have changed: an administrator "
                       "must sign in to Apple Business Manager and accept them.")


class AccessDenied(AppleError):
    """The server token has no access to this MDM server (ACCESS_DENIED)."""

    default_message = ("Apple denied access with this server token: check in Apple Business Manager "
                       "that the MDM server still exists and that the account that downloaded the token "
                       "still has the right role, then download a new token if needed.")


class TokenRejected(AppleError):
    """The server token was rejected: expired, revoked, replaced by a newer download or invalid."""

    default_message = ("Apple rejected this server token: it has expired, been revoked, or been replaced "
                       "by a newer download. Download a new token for this MDM server from Apple Business "
                       "Manager and upload it here.")


class SessionExpired(AppleError):
    """The session token was refused even right after re-authenticating (internal)."""

    default_message = ("Apple refused the session even after signing in again; "
                       "try again in a few minutes.")


class CursorError(AppleError):
    """Base class of the device-sync cursor problems."""


class CursorExpired(CursorError):
    """The sync cursor is older than Apple keeps it (EXPIRED_CURSOR): a full fetch is needed."""

    default_message = ("The saved device sync position is more than 7 days old: "
                       "a full device fetch is needed.")


class CursorInvalid(CursorError):
    """Apple did not recognize the cursor (INVALID_CURSOR): a full fetch is needed."""

    default_message = ("Apple did not recognize the saved device sync position: "
                       "a full device fetch is needed.")


class CursorRequired(CursorInvalid):
    """A sync was attempted without a cursor (CURSOR_REQUIRED): a full fetch is needed."""

    default_message = "A device sync needs a saved position: run a full device fetch first."


class CursorExhausted(CursorError):
    """The fetch with this cursor already completed (EXHAUSTED_CURSOR): continue with sync."""

    default_message = ("The full device fetch has already completed: continue with an "
                       "incremental device sync.")


class NotFound(AppleError):
    """Apple does not know the requested profile or device."""

    default_message = "Apple could not find the requested profile or device."


# Apple's limits are in "UTF-8 characters", which may mean bytes (reference §3.6): said, since the portal's own
# check counts bytes too (portal/apple_text.py) and an admin could not tell why a short accented name is refused.
_BYTES = " (Apple may count a letter outside plain ASCII as 2 to 4)"

PROFILE_CODES: dict[str, tuple[str, str]] = {
    # Apple code -> (profile field, what the admin must fix); limits from Apple's Profile object page.
    "CONFIG_NAME_REQUIRED": ("profile_name", "The enrollment profile needs a name."),
    "CONFIG_NAME_INVALID": ("profile_name", "The profile name must be 1 to 125 characters long" + _BYTES + "."),
    "CONFIG_URL_REQUIRED": ("url", "The enrollment profile needs an MDM server URL."),
    "CONFIG_URL_INVALID": ("url", "The MDM server URL is not valid: it must be a well-formed URL "
                                  "of at most 2000 characters."),
    "DEPARTMENT_INVALID": ("department", "The department must be 1 to 125 characters long" + _BYTES + "."),
    "FLAGS_INVALID": ("is_mdm_removable", "The profile options conflict: the MDM profile can only be "
                                          "made non-removable when the device is supervised."),
    "LOCALE_INVALID": ("language", "The language and region are not a valid combination."),
    "MAGIC_INVALID": ("org_magic", "The organization magic string must be 1 to 256 characters long."),
    "SUPPORT_EMAIL_INVALID": ("support_email_address",
                              "The support email address must be at most 250 characters long" + _BYTES + "."),
    "SUPPORT_PHONE_INVALID": ("support_phone_number",
                              "The support phone number must be 1 to 50 characters long" + _BYTES + "."),
}


class ProfileInvalid(AppleError):
    """Apple refused an enrollment profile; ``field`` names the profile field concerned."""

    default_message = "Apple refused the enrollment profile."

    def __init__(self, message: str | None = None, *, status: int | None = None,
                 code: str | None = None, body: str = "", field: str | None = None) -> None:
        known_field, known_message = PROFILE_CODES.get((code or "").upper(), (None, None))
        super().__init__(message or known_message, status=status, code=code, body=body)
        self.field = field or known_field

    def __repr__(self) -> str:
        return f"ProfileInvalid(status={self.status!r}, code={self.code!r}, field={self.field!r})"


class Throttled(AppleError):
    """Apple asked us to slow down; ``retry_after`` is how many seconds to wait."""

    def __init__(self, message: str | None = None, *, status: int | None = None,
                 code: str | None = None, body: str = "", retry_after: int = 60) -> None:
        self.retry_after = int(retry_after)
        message = message or (f"Apple is limiting requests from this server: try again in "
                              f"{self.retry_after} seconds.")
        super().__init__(message, status=status, code=code, body=body)

    def __repr__(self) -> str:
        return f"Throttled(status={self.status!r}, code={self.code!r}, retry_after={self.retry_after!r})"


class TransientError(AppleError):
    """Apple could not be reached or kept failing (5xx, connection errors, timeouts) after retries."""

    default_message = ("Apple's device enrollment service is temporarily unavailable: "
                       "try again in a few minutes.")


class ClockSkew(TransientError):
    """Apple refused the signed sign-in while this machine's clock is far from Apple's: OAuth
    signatures carry the time, so the token is not at fault (no lasting "Token Revoked")."""

    def __init__(self, skew_seconds: float, **kw):
        direction = "ahead of" if skew_seconds > 0 else "behind"
        super().__init__(f"Apple refused the sign-in, and this machine's clock is about {_offset_words(skew_seconds)} "
                         f"{direction} Apple's: signed requests carry the time, and a token's expiry is Apple's date. "
                         "Set the clock right (NTP) on the machines that run the workers; the token itself "
                         "may be fine.", **kw)
        self.skew_seconds = skew_seconds


def _offset_words(seconds: float) -> str:
    """"20 minutes", "5 hours", "400 days": how far apart two clocks are, in the unit an admin would say."""
    minutes = max(1, round(abs(seconds) / 60))
    for unit, size in (("day", 1440), ("hour", 60)):
        if minutes >= 2 * size:
            count = round(minutes / size)
            return f"{count:,} {unit}s"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class BadRequest(AppleError):
    """Apple refused the request as malformed (400 with a code not covered above)."""

    default_message = "Apple refused the request as invalid."


# Apple glues the HTTP reason on some of these (``token_expiredForbidden``): match prefixes.
TOKEN_CODE_PREFIXES = ("token_rejected", "signature_invalid", "token_expired", "expired_token",
                       "token_revoked")
CURSOR_ERRORS: dict[str, type[CursorError]] = {
    "EXPIRED_CURSOR": CursorExpired, "INVALID_CURSOR": CursorInvalid,
    "EXHAUSTED_CURSOR": CursorExhausted, "CURSOR_REQUIRED": CursorRequired,
}
NOT_FOUND_CODES = {"NOT_FOUND", "PROFILE_NOT_FOUND", "DEVICE_NOT_FOUND"}
BAD_REQUEST_MESSAGES = {
    "USER_AGENT_MISSING": "Apple requires a User-Agent header and none was sent.",
    "USER_AGENT_INVALID": ("Apple refused this portal's User-Agent header: the operator can send another "
                           "with the APPLE_USER_AGENT setting."),
    "MALFORMED_REQUEST_BODY": "Apple could not read the request body.",
    "DEVICE_ID_REQUIRED": "Apple needs at least one device serial number for this action.",
    "PROFILE_UUID_REQUIRED": "Apple needs a profile UUID for this action.",
}
_CODE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,99}")


def parse_error_code(body: str | None) -> str | None:
    """Apple's error token from a body: bare, quoted, JSON object/string, or OAuth problem text."""
    text = (body or "").strip()
    if text[:1] in ('{', '"'):
        try:
            value = json.loads(text)
        except ValueError:
            value = text.strip('"') if text[0] == '"' else None
        if isinstance(value, dict):
            value = next((value[k] for k in ("code", "error", "error_code")
                          if isinstance(value.get(k), str)), None)
        text = value.strip() if isinstance(value, str) else ""
    if not text:
        return None
    if "oauth_problem=" in text:  # RFC 5849 problem reporting (form-encoded)
        problem = parse_qs(text).get("oauth_problem")
        if problem:
            return problem[0][:100]
    first = text.splitlines()[0].strip()
    if first.startswith("oauth_problem_advice"):  # Apple glues advice and reason: keep it whole
        return first[:100]
    return first if _CODE_RE.fullmatch(first) else None


def parse_retry_after(value: str | None, now: datetime | None = None) -> int | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - (now or datetime.now(timezone.utc))).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0, math.ceil(seconds))


def error_from_response(status: int, body: str, *, path: str = "",
                        retry_after: int | None = None) -> AppleError:
    """The typed exception for a failed response (after re-authentication and retries)."""
    code = parse_error_code(body)
    key, low = (code or "").upper(), (code or "").lower()
    kw: dict = {"status": status, "code": code, "body": body}
    if status == 429 or (status == 503 and retry_after is not None):
        return Throttled(retry_after=retry_after if retry_after is not None else 60, **kw)
    if status >= 500:
        return TransientError(f"Apple's device enrollment service failed (HTTP {status}): "
                              "try again in a few minutes.", **kw)
    if key == "T_C_NOT_SIGNED":
        return TermsNotSigned(**kw)
    if key == "ACCESS_DENIED":
        return AccessDenied(**kw)
    if low.startswith(TOKEN_CODE_PREFIXES):
        return TokenRejected(**kw)
    if key in CURSOR_ERRORS:
        return CURSOR_ERRORS[key](**kw)
    if key in PROFILE_CODES:
        return ProfileInvalid(**kw)
    if key in NOT_FOUND_CODES or status == 404:
        return NotFound(**kw)
    # Any other refusal of /session, or FORBIDDEN surviving a fresh session, means the token is bad.
    if status in (401, 403) and (path == "/session" or key == "FORBIDDEN"):
        return TokenRejected(**kw)
    if status == 401:
        return SessionExpired(**kw)
    if status == 400:
        return BadRequest(BAD_REQUEST_MESSAGES.get(key), **kw)
    suffix = f" ({code})" if code else ""
    return AppleError(f"Apple's device enrollment service answered HTTP {status}{suffix}.", **kw)
