"""The simulator's small HTML page: servers, token download by certificate upload, fault toggles, clock.

Plain forms that post and redirect back; no JavaScript. The page stands in for the bits of
Apple Business Manager a portal admin touches (create an MDM server, download its token).
"""
from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from .control import token_download
from .faults import BOOLEAN_FAULTS
from .pipeline import get_state
from .timefmt import iso

bp = Blueprint("sim_web", __name__)


def _page(message: str | None = None, status: int = 200):
    state = get_state()
    return render_template("depsim/index.html", servers=state.servers(), now=iso(state.now_ts()),
                           offset=state.clock_offset(), switches=BOOLEAN_FAULTS,
                           message=message), status


@bp.get("/")
def index():
    """Servers with device counts and the forms."""
    return _page(request.args.get("message"))


@bp.post("/_sim/ui/servers")
def create_server():
    """Form: name, devices."""
    try:
        get_state().create_server(request.form.get("name", ""), devices=int(request.form.get("devices") or 0))
    except ValueError as error:
        return _page(str(error), 400)
    return redirect(url_for("sim_web.index", message="Server created."))


@bp.post("/_sim/ui/token")
def issue_token():
    """Form: server name, optional device count for a new server, certificate file → .p7m download."""
    name = request.form.get("name", "").strip()
    try:
        return token_download(name, int(request.form.get("devices") or 0) or None)
    except ValueError as error:
        return _page(str(error), 400)


@bp.post("/_sim/ui/faults")
def set_faults():
    """Form: server name, checked switches, latency seconds, server-error count."""
    state = get_state()
    name = request.form.get("name", "")
    try:
        for switch in BOOLEAN_FAULTS:
            state.set_fault(name, switch, switch in request.form)
        state.set_fault(name, "latency", float(request.form.get("latency") or 0))
        state.set_fault(name, "server_error", int(request.form.get("server_error") or 0))
    except (KeyError, ValueError) as error:
        return _page(str(error), 400)
    return redirect(url_for("sim_web.index", message=f"Faults of {name} updated."))


@bp.post("/_sim/ui/clock")
def move_clock():
    """Form: days to advance (negative goes back); 'reset' returns to the wall clock."""
    state = get_state()
    if "reset" in request.form:
        state.set_clock(None)
    else:
        try:
            state.advance_clock(float(request.form.get("days") or 0) * 86400)
        except ValueError as error:
            return _page(str(error), 400)
    return redirect(url_for("sim_web.index", message="Clock moved."))
