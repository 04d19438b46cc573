"""Managed Devices: every synchronized device, and one server's devices."""
from flask import make_response, render_template, request

from ..extensions import db
from ..htmx import is_htmx
from ..models import ManagedServer
from . import bp
from .listing import list_devices


@bp.route("/devices")
def index():
    """Every managed device, by serial number."""
    return _render(None)


@bp.route("/servers/<int:server_id>/devices")
def server_devices(server_id: int):
    """The Managed Devices tab of a server."""
    return _render(db.get_or_404(ManagedServer, server_id))


def _render(server: ManagedServer | None):
    search = request.args.get("q", "")
    page = list_devices(server.id if server else None, search, request.args.get("after"))
    context = {"server": server, "page": page, "search": search, "after": request.args.get("after")}
    template = "devices/_table.html" if is_htmx() and request.headers.get("HX-Target") == "device-table" \
        else "devices/index.html"
    response = make_response(render_template(template, **context))
    response.headers["Vary"] = "HX-Request"
    return response
