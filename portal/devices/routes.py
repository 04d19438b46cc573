"""Managed Devices: every synchronized device, one server's devices, their CSV export, one device."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

from flask import Response, make_response, render_template, request, stream_with_context, url_for
from sqlalchemy import func, select

from ..downloads import attachment, download, file_stem
from ..extensions import db
from ..htmx import is_htmx, tidy_history
from ..models import Device, EnrollmentProfile, ManagedServer
from . import bp
from .choices import filter_choices
from .detail import attributes, history
from .enrollment import outlook, will_enroll
from .export import csv_lines
from .filters import APPLE_PROFILE_STATUSES, ASSIGNMENT_LABELS, DeviceQuery
from .listing import list_devices
from .pending import page_waits, shown_state


@bp.route("/devices")
def index():
    """Every managed device: search, filters, sort, keyset pages."""
    return _render_list(None)


@bp.route("/servers/<int:server_id>/devices")
def server_devices(server_id: int):
    """The Managed Devices tab of a server."""
    return _render_list(db.get_or_404(ManagedServer, server_id))


@bp.route("/devices.csv")
@download
def export_csv():
    """The global list's current filter as CSV."""
    return _csv(None)


@bp.route("/servers/<int:server_id>/devices.csv")
@download
def server_export_csv(server_id: int):
    """One server's list's current filter as CSV."""
    return _csv(db.get_or_404(ManagedServer, server_id))


@bp.route("/devices/<int:device_id>")
def detail(device_id: int):
    """One device: every Apple attribute, its server and profile, its assignment history, will it enroll."""
    device = db.get_or_404(Device, device_id)
    server = db.session.get(ManagedServer, device.server_id)
    profile = db.session.get(EnrollmentProfile, device.profile_id) if device.profile_id else None
    entries, history_total = history(device.id)
    ready, reason = will_enroll(device)
    waits = page_waits([device.id])
    return render_template("devices/detail.html", device=device, server=server, profile=profile,
                           attributes=attributes(device), history=entries, history_total=history_total,
                           ready=ready, outlook=outlook(device, ready), reason=reason,
                           assignment=shown_state(device, waits.pending), waiting_for=waits.profiles.get(device.id),
                           queued_request=waits.requests.get(device.id), answered_request=waits.answered_request(device))


def _query(server: ManagedServer | None) -> DeviceQuery:
    return DeviceQuery.from_args(request.args, server.id if server else None)


def _render_list(server: ManagedServer | None):
    query = _query(server)
    page = list_devices(query, request.args.get("after"), request.args.get("before"), request.args.get("page"))
    endpoint = "devices.server_devices" if server else "devices.index"
    path_args = {"server_id": server.id} if server else {}

    def list_url(**changes) -> str:
        """This list's URL with the same filters; `changes` set paging or sort (None drops one)."""
        args = {**query.to_args(), **changes}
        return url_for(endpoint, **path_args, **{k: v for k, v in args.items() if v not in (None, "")})

    csv_endpoint = "devices.server_export_csv" if server else "devices.export_csv"
    context = {"server": server, "query": query, "page": page, "list_url": list_url,
               "csv_url": url_for(csv_endpoint, **path_args, **query.to_args()),
               "choices": filter_choices(server), "profile_statuses": APPLE_PROFILE_STATUSES,
               "assignment_labels": ASSIGNMENT_LABELS}
    context["removed_matches"] = _removed_matches(query) if not page.rows and not page.prev_cursor else 0
    context["gone"] = _gone_from_filter(query) if not page.rows else []
    fragment = is_htmx() and request.headers.get("HX-Target") == "device-table"
    # A sort header (id "sort-…") changed the sort: the filter form's Sort by and Order follow it (out of band).
    # Not for the form's own requests: replacing the select that has the keyboard would drop focus.
    context["sort_changed"] = fragment and request.headers.get("HX-Trigger", "").startswith("sort-")
    response = make_response(render_template("devices/_table.html" if fragment else "devices/index.html",
                                             **context))
    response.headers["Vary"] = "HX-Request, HX-Target"
    return tidy_history(response) if fragment else response


def _gone_from_filter(query: DeviceQuery) -> list[str]:
    """What a filter (a bookmark, a link) names that no longer exists: its drop-down then reads "Any", and the empty
    list would look like a filter that matches nothing."""
    gone = []
    if query.profile not in ("", "none") and db.session.get(EnrollmentProfile, int(query.profile)) is None:
        gone.append(f"The filter names a profile (#{query.profile}) that no longer exists: it was deleted, or the link "
                    "is wrong.")
    if query.server_id is not None and not query.server_fixed and db.session.get(ManagedServer, query.server_id) is None:
        gone.append(f"The filter names a managed server (#{query.server_id}) that no longer exists: it was deleted, or "
                    "the link is wrong.")
    return gone


def _removed_matches(query: DeviceQuery) -> int:
    """How many removed devices (released, or moved to another MDM server) a search of current devices that found
    none would find, up to REMOVED_SHOWN + 1: the admin looking for a released device learns where it is."""
    if query.removed or not query.is_filtered or query.q_problem:
        return 0
    removed = replace(query, removed="removed")
    return db.session.execute(select(func.count()).select_from(
        select(Device.id).where(*removed.conditions()).limit(REMOVED_SHOWN + 1).subquery())).scalar_one()


REMOVED_SHOWN = 1000


def _csv_stem(server: ManagedServer | None, query: DeviceQuery) -> str:
    """devices-all, devices-filtered, devices-paris, devices-paris-filtered: what the export holds.

    Named after the server whether it comes from the path or from the ?server= filter, and "filtered"
    when other filters leave devices out, so a partial export is never taken for the whole list.
    """
    named = server or (db.session.get(ManagedServer, query.server_id) if query.server_id else None)
    scope = file_stem(named.name, "server").lower() if named else None
    if query.only_current_devices:
        return f"devices-{scope or 'all'}"
    return f"devices-{scope}-filtered" if scope else "devices-filtered"


def _csv(server: ManagedServer | None) -> Response:
    query = _query(server)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M")
    name = f"{_csv_stem(server, query)}-{stamp}.csv"
    response = Response(stream_with_context(csv_lines(query)), mimetype="text/csv")
    response.headers["Content-Disposition"] = attachment(name, "devices")
    return response
