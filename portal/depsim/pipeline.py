"""What every simulated Apple call goes through: User-Agent, session, faults, body parsing.

Checks run in the order a client would meet them at Apple: a request without a User-Agent is
refused before authentication; a bad session before any server-level switch; faults next; the
request itself (protocol version, then the body in the view) last. Apple documents no order between
a bad session and a bad protocol version (reference §2.3, §2.5: UNCERTAIN), so the simulator does
what HTTP servers usually do: authenticate first, so a client whose session is gone always hears
401 and signs in again rather than chasing a 400.
"""
from __future__ import annotations

import functools
import json
import time

from flask import current_app, g, request

from .responses import ApiError


def get_state():
    """The SimState of the running simulator app."""
    return current_app.extensions["depsim_state"]


def protocol_version() -> int:
    """`X-Server-Protocol-Version` as a positive int; absent or garbled is refused.

    Apple's answer to a data call without it is undocumented (reference §2.5); every client in the
    reference sends it (§2.4), the portal's too, so the simulator takes the strict reading and
    refuses it the way Apple refuses a missing or bad User-Agent (the token names are its own)."""
    value = request.headers.get("X-Server-Protocol-Version", "").strip()
    if not value:
        raise ApiError(400, "PROTOCOL_VERSION_MISSING")
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise ApiError(400, "PROTOCOL_VERSION_INVALID")
    return int(value)


def require_user_agent() -> None:
    """Apple lists 400 USER_AGENT_MISSING on every endpoint."""
    if not request.headers.get("User-Agent", "").strip():
        raise ApiError(400, "USER_AGENT_MISSING")


def apply_faults(server) -> None:
    """Server-level switches, in the order Apple would hit them (latency delays even the failures)."""
    active = json.loads(server["faults"])
    g.quote_errors = bool(active.get("quote_errors"))
    if active.get("latency"):
        time.sleep(active["latency"])
    if active.get("server_error"):
        spec = get_state().take_server_error(server["id"])
        if spec:
            headers = {"Retry-After": str(spec["retry_after"])} if "retry_after" in spec else {}
            code = "TOO_MANY_REQUESTS" if spec["status"] == 429 else "SERVER_ERROR"
            raise ApiError(spec["status"], code, headers)
    if active.get("token_revoked"):
        raise ApiError(403, "FORBIDDEN")  # observed when the admin who made the token is gone
    if active.get("terms_not_signed"):
        raise ApiError(403, "T_C_NOT_SIGNED")
    if active.get("access_denied"):
        raise ApiError(403, "ACCESS_DENIED")


def data_call(view):
    """Decorator for endpoints that need `X-ADM-Auth-Session`; sets g.server and g.version."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        require_user_agent()
        state = get_state()
        use = state.use_session(request.headers.get("X-ADM-Auth-Session", "").strip())
        if use is None:
            # Apple answers 401 for an expired session and 403 FORBIDDEN for an invalid one (reference
            # §2.3); a client must sign in again on both, so both can be had here.
            if state.settings()["refused_session_status"] == 403:
                raise ApiError(403, "FORBIDDEN")
            raise ApiError(401, "UNAUTHORIZED")
        g.session_header = use.header_token
        g.server = state.server_row_by_id(use.server_id)
        apply_faults(g.server)
        g.version = protocol_version()  # request validation after authentication (module docstring)
        return view(*args, **kwargs)

    return wrapper


def read_json() -> dict:
    """The request body as a JSON object; an absent body counts as {} (DEPy posted none).

    A body must be declared JSON (reference §2.4: Apple's pages ask for `application/json`, clients
    send `application/json;charset=UTF8`); anything else is refused like a body that is not JSON,
    the only body error Apple documents (§3.0)."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    if not json_content_type(request.headers.get("Content-Type", "")):
        raise ApiError(400, "MALFORMED_REQUEST_BODY")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "MALFORMED_REQUEST_BODY") from None
    if not isinstance(body, dict):
        raise ApiError(400, "MALFORMED_REQUEST_BODY")
    return body


def json_content_type(header: str) -> bool:
    """`application/json`, optionally with a UTF-8 charset (`UTF8` is Apple's own spelling)."""
    media, _, params = header.partition(";")
    if media.strip().lower() != "application/json":
        return False
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf8", "utf-8"):
            return False
    return True


MAX_DEVICES = 1000  # Apple: at most 1000 devices per request (reference §6.3)


def check_device_count(serials: list) -> None:
    """Refuse more than 1000 serials in one request, counted as sent (duplicates and blanks too).

    Apple asks for at most 1000 on Assign Profile (§3.8) and documents no maximum, nor the answer
    above it, for the other device lists (§3.4, §3.5, §3.9, §9); the portal's client never sends
    more than 1000 anywhere, so the simulator refuses more everywhere (the token is its own)."""
    if len(serials) > MAX_DEVICES:
        raise ApiError(400, "TOO_MANY_DEVICES")


def serial_list(body: dict, key: str = "devices") -> list[str]:
    """A required, non-empty list of serials (400 DEVICE_ID_REQUIRED / MALFORMED_REQUEST_BODY)."""
    serials = body.get(key)
    if serials is None or serials == []:
        raise ApiError(400, "DEVICE_ID_REQUIRED")
    if not isinstance(serials, list) or not all(isinstance(s, str) for s in serials):
        raise ApiError(400, "MALFORMED_REQUEST_BODY")
    check_device_count(serials)
    serials = [s for s in serials if s.strip()]
    if not serials:
        raise ApiError(400, "DEVICE_ID_REQUIRED")
    return list(dict.fromkeys(serials))
