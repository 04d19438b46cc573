"""Client for Apple's device enrollment (DEP / ADE) web service: OAuth session, retries, typed errors."""

from __future__ import annotations

import email.utils
import importlib.metadata
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import requests
from requests_oauthlib import OAuth1
from urllib3.exceptions import NewConnectionError

from portal.apple.errors import (BODY_LIMIT, TOKEN_CODE_PREFIXES, AppleError, ClockSkew, TransientError,
                                 error_from_response, parse_error_code, parse_retry_after)

if TYPE_CHECKING:
    from portal.apple.tokens import ServerToken

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://mdmenrollment.apple.com"
CHUNK_SIZE = 1000  # Apple asks for at most 1000 devices per call
JSON_TYPE = "application/json;charset=UTF8"  # Apple's spelling; depsim insists on it for /session
SESSION_HEADER = "X-ADM-Auth-Session"
NETWORK_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
# OAuth services commonly accept timestamps within 5 minutes of their own clock; past that, a
# refused sign-in is blamed on this machine's clock (Apple's limit is not documented).
CLOCK_SKEW_LIMIT_S = 300


def wall_clock() -> float:
    """This machine's time, as OAuth signs it (oauthlib uses time.time() too); a seam for tests."""
    return time.time()


def _may_be_the_clock(code: str | None) -> bool:
    """Whether a 403 at sign-in may come from a clock far off Apple's: any refusal of the token or of its
    signature (not the terms and conditions or an MDM server's access, which no clock explains)."""
    return code is None or code.startswith(TOKEN_CODE_PREFIXES + ("FORBIDDEN", "oauth_problem"))


def clock_skew(response: requests.Response) -> float | None:
    """Seconds this machine's clock is ahead of the server's (negative: behind), from the response's
    Date header; None without a readable one. Accurate to a second or two, plenty for minutes."""
    try:
        sent = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    if sent is None or sent.tzinfo is None:
        return None
    return wall_clock() - sent.timestamp()


def _not_debug(record: logging.LogRecord) -> bool:
    """Log filter: the OAuth libraries print the access token and signed header at DEBUG level."""
    return record.levelno > logging.DEBUG


for _name in ("requests_oauthlib.oauth1_auth", "oauthlib.oauth1.rfc5849",
              "oauthlib.oauth1.rfc5849.signature"):
    logging.getLogger(_name).addFilter(_not_debug)  # same function object: never added twice


def default_user_agent() -> str:
    """``ade-portal/<installed version>`` (Apple rejects requests without a User-Agent)."""
    try:
        version = importlib.metadata.version("ade-portal")
    except importlib.metadata.PackageNotFoundError:
        version = "0"
    return f"ade-portal/{version}"


def chunked(serials: Iterable[str], size: int = CHUNK_SIZE) -> list[list[str]]:
    """Serials de-duplicated (order kept) and split into lists of at most ``size``."""
    unique = list(dict.fromkeys(serials))
    return [unique[i:i + size] for i in range(0, len(unique), size)]


def backoff_delays(max_retries: int, backoff: float, max_backoff: float) -> list[float]:
    """Seconds to wait before each retry: exponential from ``backoff``, capped at ``max_backoff``."""
    return [min(max_backoff, backoff * 2 ** attempt) for attempt in range(max_retries)]


def status_map(value: Any) -> dict[str, str]:
    """Per-device results as ``{serial: status}``; also accepts a list of one-key objects."""
    items = value if isinstance(value, list) else [value]
    merged: dict[str, str] = {}
    for item in items:
        if isinstance(item, dict):
            merged.update({str(k): str(v) for k, v in item.items()})
    return merged


def _truthy(value: Any) -> bool:
    return value is True or str(value).strip().lower() == "true"


@dataclass
class DevicePage:
    """One page of a fetch or sync: devices, the cursor to continue from, and whether more follow."""

    devices: list[dict]
    cursor: str
    more_to_follow: bool
    fetched_until: str | None = None

    @classmethod
    def from_response(cls, data: Any, sent_cursor: str | None = None) -> "DevicePage":
        """Build a page, tolerating missing fields (a missing cursor keeps the one sent)."""
        data = data if isinstance(data, dict) else {}
        devices = data.get("devices")
        devices = [d for d in devices if isinstance(d, dict)] if isinstance(devices, list) else []
        return cls(devices=devices, cursor=str(data.get("cursor") or sent_cursor or ""),
                   more_to_follow=_truthy(data.get("more_to_follow")),
                   fetched_until=data.get("fetched_until") or None)


@dataclass
class AssignResult:
    """Merged per-device results of an assignment; ``retry_after_seconds`` is the largest asked for."""

    profile_uuid: str
    devices: dict[str, str] = field(default_factory=dict)
    retry_after_seconds: int | None = None

    def merge(self, data: Any) -> None:
        """Fold one chunk's AssignProfileResponse into this result."""
        data = data if isinstance(data, dict) else {}
        self.devices.update(status_map(data.get("devices")))
        retry = _seconds(data.get("retry_after_seconds"))
        if retry is not None:
            self.retry_after_seconds = max(retry, self.retry_after_seconds or 0)


def _seconds(value: Any) -> int | None:
    """A wait in whole seconds from a number or a numeric string ("60"); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and value == value and 0 <= value < 10**9:  # not NaN, not absurd
        return int(value)
    return None


class SessionStore(Protocol):
    """Where a session token is kept between clients of the same server token (see portal/apple_sessions.py)."""

    def load(self) -> str | None: ...

    def save(self, session_token: str) -> None: ...


class DEPClient:
    """Talks to one MDM server's DEP endpoints with its server token (no Flask, no globals)."""

    def __init__(self, token: ServerToken, base_url: str = DEFAULT_BASE_URL, *,
                 user_agent: str | None = None, protocol_version: int = 10,
                 timeout: tuple[float, float] = (10, 60), max_retries: int = 4,
                 backoff: float = 1.0, max_backoff: float = 30.0,
                 session_token: str | None = None, session_store: SessionStore | None = None,
                 http: requests.Session | None = None, sleep: Callable[[float], Any] = time.sleep,
                 on_retry: Callable[[str], Any] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.user_agent = user_agent or default_user_agent()
        self.protocol_version = protocol_version
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        # A session signed in by an earlier client is used until Apple refuses it (then: sign in again).
        self._session_store = session_store
        self.session_token = session_token or (session_store.load() if session_store else None)
        self._token = token
        self._http = http or requests.Session()
        self._sleep = sleep
        self._on_retry = on_retry  # told why before each wait to retry ("Apple answered … (HTTP 503)")

    def __repr__(self) -> str:
        # Never show credentials or the session token.
        state = "active" if self.session_token else "none"
        return f"<DEPClient base_url={self.base_url!r} session={state}>"

    # ----- endpoints -----

    def account(self) -> dict:
        """``GET /account``: the MDM server and organisation details."""
        return _as_dict(self._request("GET", "/account"))

    def fetch_devices(self, cursor: str | None = None, limit: int | None = None) -> DevicePage:
        """``POST /server/devices``: one page of every device assigned to this server."""
        payload = _paging(cursor, limit)
        return DevicePage.from_response(self._request("POST", "/server/devices", payload), cursor)

    def sync_devices(self, cursor: str, limit: int | None = None) -> DevicePage:
        """``POST /devices/sync``: one page of changes since ``cursor``."""
        payload = {"cursor": cursor, **_paging(None, limit)}
        return DevicePage.from_response(self._request("POST", "/devices/sync", payload), cursor)

    def iter_fetch(self, cursor: str | None = None, limit: int | None = None) -> Iterator[DevicePage]:
        """Fetch pages until Apple says no more follow; the last page's cursor is the one to keep."""
        return self._pages(self.fetch_devices, cursor, limit)

    def iter_sync(self, cursor: str, limit: int | None = None) -> Iterator[DevicePage]:
        """Sync pages until Apple says no more follow."""
        return self._pages(self.sync_devices, cursor, limit)

    def device_details(self, serials: list[str]) -> dict[str, dict]:
        """``POST /devices``: details keyed by serial (with ``response_status``)."""
        details: dict[str, dict] = {}
        for chunk in chunked(serials):
            data = _as_dict(self._request("POST", "/devices", {"devices": chunk}))
            found = data.get("devices")
            if isinstance(found, dict):
                details.update({str(k): v for k, v in found.items() if isinstance(v, dict)})
        return details

    def define_profile(self, profile: dict) -> dict:
        """``POST /profile``: ``{"profile_uuid": ..., "devices": {serial: status}}``.

        Sent again only when Apple surely did not act on it (see ``_send``): every definition is a
        new profile at Apple, which has no call to list or delete them, and Apple has answered 500
        for a profile it will never accept (reference §3.6), so a blind retry only adds duplicates.
        """
        data = _as_dict(self._request("POST", "/profile", profile, repeatable=False))
        uuid = data.get("profile_uuid")
        if not isinstance(uuid, str) or not uuid.strip():
            # Without it there is nothing to assign: taking the answer as a success would be a lie.
            raise AppleError("Apple's answer to the profile definition did not contain a profile UUID; "
                             "try again later.")
        data["profile_uuid"] = uuid.strip()
        data["devices"] = status_map(data.get("devices"))
        return data

    def get_profile(self, profile_uuid: str) -> dict:
        """``GET /profile?profile_uuid=...``: the profile as Apple stores it."""
        return _as_dict(self._request("GET", "/profile", params={"profile_uuid": profile_uuid}))

    def assign_profile(self, profile_uuid: str, serials: list[str]) -> AssignResult:
        """``POST /profile/devices`` in chunks of at most 1000 serials, results merged."""
        result = AssignResult(profile_uuid=profile_uuid)
        for chunk in chunked(serials):
            data = self._request("POST", "/profile/devices",
                                 {"profile_uuid": profile_uuid, "devices": chunk})
            result.merge(data)
        return result

    def remove_profile(self, serials: list[str], profile_uuid: str | None = None) -> dict[str, str]:
        """``DELETE /profile/devices`` (JSON body) in chunks: ``{serial: status}``."""
        extra = {"profile_uuid": profile_uuid} if profile_uuid else {}
        return self._per_device("DELETE", "/profile/devices", serials, extra)

    def disown_devices(self, serials: list[str]) -> dict[str, str]:
        """``POST /devices/disown`` in chunks (permanent!): ``{serial: status}``."""
        return self._per_device("POST", "/devices/disown", serials, {})

    def _per_device(self, method: str, path: str, serials: list[str],
                    extra: dict[str, Any]) -> dict[str, str]:
        results: dict[str, str] = {}
        for chunk in chunked(serials):
            data = _as_dict(self._request(method, path, {"devices": chunk, **extra}))
            results.update(status_map(data.get("devices")))
        return results

    # ----- session and transport -----

    def authenticate(self) -> str:
        """``GET /session`` signed with OAuth 1.0a; stores and returns the new session token."""
        token = self._token
        auth = OAuth1(token.consumer_key, client_secret=token.consumer_secret,
                      resource_owner_key=token.access_token,
                      resource_owner_secret=token.access_secret,
                      signature_method="HMAC-SHA1", realm="ADM")
        response = self._send("GET", "/session", None, None, auth=auth)
        if response.status_code == 401:
            # Signed with the time and a nonce: far off Apple's clock, it is the clock, not the token.
            skew = clock_skew(response)
            if skew is not None and abs(skew) > CLOCK_SKEW_LIMIT_S:
                raise ClockSkew(skew, status=401, code=parse_error_code(self._body(response)),
                                body=self._body(response))
            # One more try, freshly signed, before calling the token refused: a nonce Apple had seen
            # already (or a timestamp just at its limit) is refused once, never twice.
            response = self._send("GET", "/session", None, None, auth=auth)
        if response.status_code == 403 and _may_be_the_clock(parse_error_code(self._body(response))):
            # A token Apple calls expired or rejected, while the clocks are far apart: an expiry seen through a
            # wrong clock (or a stale signature) is no reason to call the token Revoked. Fix the clock first.
            skew = clock_skew(response)
            if skew is not None and abs(skew) > CLOCK_SKEW_LIMIT_S:
                raise ClockSkew(skew, status=403, code=parse_error_code(self._body(response)),
                                body=self._body(response))
        if response.status_code != 200:
            raise self._error(response, "/session")
        session = _as_dict(self._json(response, "/session")).get("auth_session_token")
        if not isinstance(session, str) or not session.strip():
            raise AppleError("Apple's sign-in answer did not contain a session token; try again later.",
                             status=response.status_code, body=self._body(response))
        self._use_session(session.strip())
        return self.session_token

    def _request(self, method: str, path: str, payload: Any = None,
                 params: dict | None = None, *, repeatable: bool = True) -> Any:
        """One data call: ensure a session, replace it if Apple refused it (up to three times), parse JSON.

        ``repeatable``: whether sending the call twice does no harm (see ``_send``)."""
        body = None if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        if not self.session_token:
            self.authenticate()
        response = self._send(method, path, body, params, repeatable=repeatable)
        # A refused session is replaced by the one another client kept meanwhile, if any (it may
        # have signed in since, or Apple rotated it), and otherwise by signing in again; the call is
        # replayed each time. After the sign-in the newest kept session gets one more chance: jobs
        # share the session, and Apple may rotate it on any answer and refuse the old one at once
        # (reference §2.3, undocumented), so another job's call can retire the new session before
        # this replay reaches Apple. Bounded: one sign-in and three replays at most after a refusal.
        refused: set[str | None] = set()
        sign_in = lambda _refused: self.authenticate()  # noqa: E731
        for renew, kind in ((self._kept_newer_session, "kept"), (sign_in, "new"),
                            (self._kept_newer_session, "kept")):
            if not self._session_refused(response):
                break
            refused.add(self.session_token)
            if renew(refused) is None:
                continue
            log.info("%s %s: session refused (%d), replayed on a %s session", method, path,
                     response.status_code, kind)
            # Replaying is safe even when not repeatable: a refused session means Apple did nothing.
            response = self._send(method, path, body, params, repeatable=repeatable)  # body: buffered bytes
        if not 200 <= response.status_code < 300:
            raise self._error(response, path)
        return self._json(response, path)

    def _send(self, method: str, path: str, body: bytes | None, params: dict | None,
              auth: OAuth1 | None = None, *, repeatable: bool = True) -> requests.Response:
        """Send with retries on network errors, 429 and 5xx (capped exponential backoff).

        A call that is not ``repeatable`` is retried only when Apple surely did not act on it: the
        connection could not be opened, or Apple answered 429 (refused before any work). A 5xx or a
        connection lost after sending leaves it unknown, so the error goes to the caller instead."""
        delays = backoff_delays(self.max_retries, self.backoff, self.max_backoff)
        for attempt in range(self.max_retries + 1):
            started = time.monotonic()
            try:
                response = self._http.request(
                    method, self.base_url + path, data=body, params=params, auth=auth,
                    headers=self._headers(path, body), timeout=self.timeout, allow_redirects=False)
            except NETWORK_ERRORS as exc:
                log.warning("%s %s failed: %s (attempt %d of %d)", method, path,
                            type(exc).__name__, attempt + 1, self.max_retries + 1)
                if attempt >= self.max_retries or not (repeatable or _never_sent(exc)):
                    raise TransientError(_network_message(exc, attempt + 1)) from exc
                self._retrying("Apple did not answer the last request (timed out)" if isinstance(exc, requests.Timeout)
                               else "Apple could not be reached")
                self._sleep(delays[attempt])
                continue
            log.info("%s %s -> %d in %.0f ms", method, path, response.status_code,
                     (time.monotonic() - started) * 1000)
            self._remember_session(response)
            wait = self._retry_wait(response, attempt, delays, repeatable)
            if wait is None:
                return response
            self._retrying("Apple asked to slow down (HTTP 429)" if response.status_code == 429 else
                           f"Apple answered the last request with an error (HTTP {response.status_code})")
            self._sleep(wait)
        raise AssertionError("unreachable")  # the last attempt always returns or raises

    def _retrying(self, why: str) -> None:
        if self._on_retry is not None:
            self._on_retry(why)

    def _retry_wait(self, response: requests.Response, attempt: int,
                    delays: list[float], repeatable: bool = True) -> float | None:
        """Seconds to wait before retrying this response, or None to stop retrying."""
        status = response.status_code
        if (status != 429 and (status < 500 or not repeatable)) or attempt >= self.max_retries:
            return None
        if status in (429, 503):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is not None:
                # Waiting less than Apple asked is pointless: surface Throttled instead.
                return float(retry_after) if retry_after <= self.max_backoff else None
        return delays[attempt]

    def _headers(self, path: str, body: bytes | None) -> dict[str, str]:
        headers = {"User-Agent": self.user_agent, "Accept": "application/json",
                   "X-Server-Protocol-Version": str(self.protocol_version)}
        if body is not None or path == "/session":
            headers["Content-Type"] = JSON_TYPE
        if path != "/session" and self.session_token:
            headers[SESSION_HEADER] = self.session_token
        return headers

    def _remember_session(self, response: requests.Response) -> None:
        # Apple may hand out a new session token on any response (header names are case-insensitive).
        rotated = response.headers.get(SESSION_HEADER)
        if rotated and rotated.strip() and rotated.strip() != self.session_token:
            self._use_session(rotated.strip())
            log.debug("session token rotated by the server")

    def _kept_newer_session(self, refused: set[str | None]) -> str | None:
        """The kept session, if Apple has not refused it to this call (then it is used from now on)."""
        kept = self._session_store.load() if self._session_store is not None else None
        if not kept or kept in refused:
            return None
        self.session_token = kept
        return kept

    def _use_session(self, session_token: str) -> None:
        self.session_token = session_token
        if self._session_store is not None:
            self._session_store.save(session_token)

    def _session_refused(self, response: requests.Response) -> bool:
        if response.status_code == 401:
            return True
        return (response.status_code == 403
                and (parse_error_code(self._body(response)) or "").upper() == "FORBIDDEN")

    def _body(self, response: requests.Response) -> str:
        """The first KiB of the body as text, with any of our secrets blanked out."""
        text = response.content[:BODY_LIMIT].decode("utf-8", "replace")
        for secret in (self._token.consumer_secret, self._token.access_secret,
                       self._token.access_token, self.session_token):
            if secret:
                text = text.replace(secret, "[redacted]")
        return text

    def _error(self, response: requests.Response, path: str) -> AppleError:
        retry_after = None
        if response.status_code in (429, 503):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return error_from_response(response.status_code, self._body(response), path=path,
                                   retry_after=retry_after)

    def _json(self, response: requests.Response, path: str) -> Any:
        if not response.content.strip():
            return {}
        try:
            return json.loads(response.content)
        except ValueError:
            raise AppleError(f"Apple's answer to {path} could not be read (it is not JSON).",
                             status=response.status_code, body=self._body(response)) from None

    def _pages(self, call: Callable[[str | None, int | None], DevicePage],
               cursor: str | None, limit: int | None) -> Iterator[DevicePage]:
        while True:
            page = call(cursor, limit)
            yield page
            if not page.more_to_follow:
                return
            if not page.cursor or page.cursor == cursor:
                # Asking again with the same cursor would loop forever.
                raise AppleError("Apple said more devices follow but did not move the cursor; "
                                 "try the sync again later.")
            cursor = page.cursor


def _paging(cursor: str | None, limit: int | None) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    if cursor:
        payload["cursor"] = cursor
    if limit is not None:
        payload["limit"] = int(limit)
    return payload


def _as_dict(data: Any) -> dict:
    return dict(data) if isinstance(data, dict) else {}


def _never_sent(exc: Exception) -> bool:
    """True when the request cannot have reached Apple: the connection itself was never opened
    (refused, unresolvable, or timed out while connecting). A read timeout or a connection dropped
    mid-exchange may come after Apple acted."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None  # urllib3's MaxRetryError
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def _network_message(exc: Exception, attempts: int) -> str:
    what = "timed out" if isinstance(exc, requests.Timeout) else "could not be reached"
    tries = f"{attempts} attempts" if attempts > 1 else "1 attempt"
    return (f"Apple's device enrollment service {what} ({tries}): check the network "
            "connection and try again in a few minutes.")
