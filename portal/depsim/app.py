"""Routes of the simulated https://mdmenrollment.apple.com (reference §2–§3).

Each view validates its body, asks SimState to do the work, and shapes the answer with
records.py; authentication, User-Agent and fault switches are handled by pipeline.py.
"""
from __future__ import annotations

import time

from flask import Blueprint, g, request

from . import cursors, oauth
from .pipeline import apply_faults, check_device_count, data_call, get_state, read_json, require_user_agent, serial_list
from .records import DEFAULT_LIMIT, MAX_LIMIT, account_detail, device_record, sync_record
from .responses import ApiError, json_response
from .timefmt import iso
from .validation import ProfileError, profile_for_get, validate_profile

bp = Blueprint("apple", __name__)


@bp.after_request
def send_session_header(response):
    """Every data response carries the session token to use next (a new one when rotated)."""
    token = g.get("session_header")
    if token:
        response.headers["X-ADM-Auth-Session"] = token
    return response


@bp.get("/session")
def session():
    """OAuth 1.0a → {"auth_session_token": …}; no Content-Type required (only depsim needed one)."""
    require_user_agent()
    state = get_state()
    try:
        req = oauth.parse(request.headers.get("Authorization"), request.query_string.decode("latin-1"))
    except oauth.OAuthFailure as failure:
        raise ApiError(failure.status, failure.body) from None
    server = state.server_row_by_access_token(req.token)
    if server is None:
        if state.token_retired(req.token):  # a newer token was downloaded for this server
            raise ApiError(403, "token_rejectedForbidden")
        raise ApiError(401, oauth.UNAUTHORIZED)
    settings = state.settings()
    if req.consumer_key != server["consumer_key"] \
            or not oauth.timestamp_fresh(req.timestamp, time.time(), state.now_ts(), settings["oauth_skew_seconds"]) \
            or not oauth.signature_valid(req, request.url, server["consumer_secret"], server["access_secret"]) \
            or not state.remember_nonce(req.consumer_key, req.nonce, req.timestamp):
        raise ApiError(401, oauth.UNAUTHORIZED)
    apply_faults(server)
    if state.now_ts() >= server["token_expiry"]:
        raise ApiError(403, "token_expiredForbidden")
    token = state.create_session(server["id"], server["access_token"])
    return json_response({"auth_session_token": token})


@bp.get("/account")
@data_call
def account():
    """AccountDetail of the session's server."""
    return json_response(account_detail(g.server, g.version))


def _limit(body: dict) -> int:
    """`limit`: default 100; above the 1000 maximum it is clamped (Apple documents no error).

    It is an int32 (reference §3.2): a JSON string, even of digits, or a boolean is a body Apple's
    JSON reader cannot map, so MALFORMED_REQUEST_BODY (the portal's client sends a number)."""
    value = body.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    if isinstance(value, bool) or not isinstance(value, int) or not -2**31 <= value < 2**31:
        raise ApiError(400, "MALFORMED_REQUEST_BODY")
    return DEFAULT_LIMIT if value < 1 else min(value, MAX_LIMIT)


def _cursor(text, server_id: int) -> cursors.Cursor:
    """Decode a client cursor that this server issued, else 400 INVALID_CURSOR.

    A cursor is a string (reference §3.2, §6.2): another JSON type is a malformed body."""
    if not isinstance(text, str):
        raise ApiError(400, "MALFORMED_REQUEST_BODY")
    try:
        cursor = cursors.decode(text)
    except cursors.CursorError:
        raise ApiError(400, "INVALID_CURSOR") from None
    if cursor.server_id != server_id or cursor.seq > get_state().last_event_seq():
        raise ApiError(400, "INVALID_CURSOR")
    return cursor


def _page(devices: list, cursor: cursors.Cursor, more: bool, now: float) -> dict:
    return {"devices": devices, "fetched_until": iso(now), "more_to_follow": more,
            "cursor": cursor.encode()}


@bp.post("/server/devices")
@data_call
def fetch_devices():
    """Fetch: every device currently on the server, chronologically, paged by cursor."""
    state, server_id = get_state(), g.server["id"]
    body = read_json()
    limit = _limit(body)
    now = state.now_ts()
    if body.get("cursor") in (None, ""):
        # The snapshot of the event log makes the final fetch cursor a valid sync cursor.
        cursor = cursors.Cursor(server_id, state.last_event_seq(), 0)
    else:
        cursor = _cursor(body["cursor"], server_id)
        if cursor.done:
            raise ApiError(400, "EXHAUSTED_CURSOR")
    rows = state.fetch_rows(server_id, (cursor.pos_ms // 1000, cursor.pos_id), limit)
    more = len(rows) > limit
    rows = rows[:limit]
    if rows:
        cursor = cursor.advanced(pos_ms=rows[-1]["assigned_at"] * 1000, pos_id=rows[-1]["id"])
    cursor = cursor.advanced(created_ms=int(now * 1000), done=not more)
    devices = [device_record(r, g.version, server_id) for r in rows]
    return json_response(_page(devices, cursor, more, now))


@bp.post("/devices/sync")
@data_call
def sync_devices():
    """Sync: add/modify/delete events since the cursor; cursors older than 7 days are refused."""
    state, server_id = get_state(), g.server["id"]
    body = read_json()
    if body.get("cursor") in (None, ""):
        raise ApiError(400, "CURSOR_REQUIRED")
    limit = _limit(body)
    cursor = _cursor(body["cursor"], server_id)
    now = state.now_ts()
    max_age_ms = state.settings()["cursor_max_age_days"] * 86400 * 1000
    if now * 1000 - cursor.created_ms > max_age_ms:
        raise ApiError(400, "EXPIRED_CURSOR")
    rows = state.sync_rows(server_id, cursor.seq, limit)
    more = len(rows) > limit
    rows = rows[:limit]
    seq = rows[-1]["seq"] if rows else cursor.seq
    fresh = cursors.Cursor(server_id, seq, int(now * 1000), done=True)
    devices = [sync_record(r, g.version, server_id) for r in rows]
    return json_response(_page(devices, fresh, more, now))


@bp.post("/devices")
@data_call
def device_details():
    """Details keyed by the requested serials, each with response_status."""
    serials = serial_list(read_json())
    rows = get_state().device_rows(g.server["id"], serials)
    result = {}
    for serial in serials:
        row = rows.get(serial)
        if row is None:
            result[serial] = {"response_status": "NOT_ACCESSIBLE"}
        else:
            result[serial] = {**device_record(row, g.version, g.server["id"]), "response_status": "SUCCESS"}
    return json_response({"devices": result})


@bp.post("/devices/disown")
@data_call
def disown_devices():
    """Permanently release devices: SUCCESS / NOT_ACCESSIBLE / FAILED (never THROTTLED)."""
    serials = serial_list(read_json())
    return json_response({"devices": get_state().disown(g.server["id"], serials)})


@bp.post("/profile")
@data_call
def define_profile():
    """Validate and store a profile (new UUID every time); optionally assign it at once."""
    body = read_json()
    try:
        validate_profile(body)
    except ProfileError as error:
        raise ApiError(400, error.code) from None
    check_device_count(body.get("devices", []))
    state = get_state()
    uuid = state.store_profile(g.server["id"], body)
    serials = list(dict.fromkeys(s for s in body.get("devices", []) if s.strip()))
    results = {}
    if serials:
        # DefineProfileResponse knows SUCCESS / NOT_ACCESSIBLE / FAILED only: throttling shows as FAILED.
        results, _ = state.assign_profile(g.server["id"], uuid, serials, throttled_allowed=False)
    return json_response({"profile_uuid": uuid, "devices": results})


@bp.get("/profile")
@data_call
def get_profile():
    """A stored profile plus profile_uuid, booleans explicit, no devices."""
    # Taken as sent: Apple's UUIDs are upper-case hex (reference §3.6) and a lower-cased one is
    # another string, not a spelling of the same profile.
    uuid = request.args.get("profile_uuid", "")
    if not uuid.strip():
        raise ApiError(400, "PROFILE_UUID_REQUIRED")
    body = get_state().profile_body(g.server["id"], uuid)
    if body is None:
        raise ApiError(400, "NOT_FOUND")  # Apple lists NOT_FOUND under 400 for this endpoint
    return json_response(profile_for_get(body, uuid, g.version))


@bp.route("/profile/devices", methods=["POST", "PUT"])
@data_call
def assign_profile():
    """Assign (POST per current docs, PUT per legacy docs and depsim)."""
    body = read_json()
    uuid = body.get("profile_uuid")
    if not uuid:
        raise ApiError(400, "PROFILE_UUID_REQUIRED")
    if not isinstance(uuid, str):
        raise ApiError(400, "MALFORMED_REQUEST_BODY")
    serials = serial_list(body)
    state = get_state()
    if state.profile_body(g.server["id"], uuid) is None:
        raise ApiError(404, "NOT_FOUND")
    results, retry_after = state.assign_profile(g.server["id"], uuid, serials,
                                                throttled_allowed=g.version >= 9)
    payload = {"profile_uuid": uuid, "devices": results}
    if retry_after is not None and g.version >= 10:
        payload["retry_after_seconds"] = retry_after
    return json_response(payload)


@bp.delete("/profile/devices")
@data_call
def remove_profile():
    """Remove the profile from devices (JSON body on DELETE); profile_uuid in the body is ignored."""
    serials = serial_list(read_json())
    return json_response({"devices": get_state().remove_profile(g.server["id"], serials)})
