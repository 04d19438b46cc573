"""The simulator's control API under /_sim/ (JSON): what Apple Business Manager and time would do.

Tests and demos use it to create servers, issue tokens, move devices around, switch faults and
shift the clock. Not part of Apple's API; no authentication (bind the simulator to localhost).
"""
from __future__ import annotations

from urllib.parse import quote

from flask import Blueprint, Response, jsonify, request

from .pipeline import get_state
from .timefmt import iso, parse_iso

bp = Blueprint("sim_control", __name__, url_prefix="/_sim")
P7M_TYPE = "application/pkcs7-mime"


@bp.errorhandler(KeyError)
def not_found(error: KeyError):
    """Unknown server or serial."""
    return jsonify(error=str(error.args[0]) if error.args else "not found"), 404


@bp.errorhandler(ValueError)
def bad_value(error: ValueError):
    """Invalid input (bad fault value, duplicate server name, …)."""
    return jsonify(error=str(error)), 400


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object body")
    return body


def _serials(body: dict) -> list[str]:
    serials = body.get("serials")
    if not isinstance(serials, list) or not all(isinstance(s, str) for s in serials):
        raise ValueError("'serials' must be a list of strings")
    return serials


@bp.get("/servers")
def list_servers():
    """All servers with device counts."""
    return jsonify(servers=get_state().servers())


@bp.post("/servers")
def create_server():
    """{"name", "devices"?, "seed"?, "org_name"?, "org_type"?, "admin_id"?} → the new server."""
    body = _body()
    options = {k: body[k] for k in ("seed", "org_name", "org_type", "admin_id") if k in body}
    server = get_state().create_server(str(body.get("name", "")), devices=int(body.get("devices", 0)),
                                       **options)
    return jsonify(server), 201


@bp.get("/servers/<name>")
def show_server(name: str):
    """One server's summary."""
    return jsonify(get_state().server(name))


def certificate_from_request() -> bytes:
    """The uploaded certificate: multipart field `certificate`, JSON `certificate_pem`, or raw PEM body."""
    upload = request.files.get("certificate")
    if upload is not None:
        data = upload.read()
    elif request.is_json:
        data = str((request.get_json(silent=True) or {}).get("certificate_pem", "")).encode()
    else:
        data = request.get_data()
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError("upload the MDM server's public certificate in PEM form")
    return data


def token_download(name: str, devices: int | None) -> Response:
    """Issue a token for `name` and answer with the .p7m as Apple Business Manager names it."""
    state = get_state()
    data = state.issue_token(name, certificate_from_request(), devices=devices)
    response = Response(data, content_type=P7M_TYPE)
    response.headers["Content-Disposition"] = attachment(state.token_filename(name))
    return response


def attachment(filename: str) -> str:
    """Content-Disposition for a download; RFC 6266 `filename*` when the server name is not ASCII."""
    fallback = filename.encode("ascii", "replace").decode().replace('"', "'")
    if fallback == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


@bp.post("/servers/<name>/token")
def issue_token(name: str):
    """Upload a certificate PEM, get the token file (server created with ?devices=N if new)."""
    devices = request.args.get("devices", request.form.get("devices"))
    return token_download(name, int(devices) if devices else None)


@bp.route("/servers/<name>/devices", methods=["GET", "POST"])
def server_devices(name: str):
    """GET: device rows (?limit, ?offset, ?include_removed); POST {"count"?, "serials"?}: add devices."""
    state = get_state()
    if request.method == "GET":
        rows = state.devices(name, limit=int(request.args.get("limit", 100)),
                             offset=int(request.args.get("offset", 0)),
                             include_removed=request.args.get("include_removed") in ("1", "true"))
        return jsonify(devices=rows)
    body = _body()
    serials = _serials(body) if "serials" in body else None
    added = state.add_devices(name, int(body.get("count", 0)), serials=serials)
    return jsonify(added=added), 201


@bp.get("/servers/<name>/profiles")
def server_profiles(name: str):
    """Profiles defined through the API, each with its profile_uuid."""
    return jsonify(profiles=get_state().profiles(name))


@bp.get("/servers/<name>/events")
def server_events(name: str):
    """Sync events (?since=seq, ?limit=)."""
    events = get_state().events(name, since=int(request.args.get("since", 0)),
                                limit=int(request.args.get("limit", 1000)))
    return jsonify(events=[{**e, "op_date": iso(e["op_date"])} for e in events])


@bp.route("/servers/<name>/faults", methods=["GET", "PUT", "DELETE"])
def server_faults(name: str):
    """GET the active faults; PUT {fault: value|null, …} to set/clear some; DELETE clears all."""
    state = get_state()
    if request.method == "PUT":
        for fault, value in _body().items():
            state.set_fault(name, fault, value)
    elif request.method == "DELETE":
        state.clear_faults(name)
    return jsonify(faults=state.faults(name))


@bp.post("/devices/move")
def move_devices():
    """{"serials": [...], "to": name, "op_type"?: "added"|"modified"}."""
    body = _body()
    moved = get_state().move_devices(_serials(body), str(body.get("to", "")), op_type=body.get("op_type"))
    return jsonify(moved=moved)


@bp.post("/devices/release")
def release_devices():
    """{"serials": [...]}: released from the organisation ('deleted')."""
    return jsonify(released=get_state().release_devices(_serials(_body())))


@bp.post("/devices/push")
def push_devices():
    """{"serials": [...]}: the devices fetched their profile (status 'pushed')."""
    return jsonify(pushed=get_state().mark_pushed(_serials(_body())))


@bp.get("/devices/<serial>")
def show_device(serial: str):
    """One device row, whichever server holds it."""
    row = get_state().device(serial)
    if row is None:
        raise KeyError(f"no device {serial}")
    return jsonify(row)


@bp.route("/clock", methods=["GET", "POST"])
def clock():
    """POST {"advance_seconds"} / {"advance_days"} / {"set": iso-or-null}; answers the sim time."""
    state = get_state()
    if request.method == "POST":
        body = _body()
        if "set" in body:
            state.set_clock(parse_iso(body["set"]) if body["set"] else None)
        else:
            state.advance_clock(float(body.get("advance_seconds", 0))
                                + float(body.get("advance_days", 0)) * 86400)
    return jsonify(now=iso(state.now_ts()), offset_seconds=round(state.clock_offset(), 3))


@bp.route("/settings", methods=["GET", "PUT"])
def settings():
    """Session rotation/idle/grace, OAuth skew, cursor age, move op_type."""
    state = get_state()
    if request.method == "PUT":
        return jsonify(state.update_settings(**_body()))
    return jsonify(state.settings())
