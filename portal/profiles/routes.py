"""Enrollment Profiles pages: the global list, a server's Enrollment Profiles tab, a profile's page,
and the fragments htmx polls while a profile is being configured."""
from __future__ import annotations

from flask import make_response, render_template, request, url_for
from sqlalchemy import select

from ..activity.record import recent_activity
from ..converters import small_int
from ..extensions import db
from ..htmx import STOP_POLLING, is_htmx, part_of, tidy_history
from ..models import EnrollmentProfile, ManagedServer
from ..models.profile import CONFIGURING, PROFILE_STATUSES
from . import bp
from .codes import SKIP_SETUP_ITEMS
from .forms import ConfirmForm
from .services import device_counts, profiles_of, settle_stale
from .status import STATUSES, status_of

SKIP_LABELS = dict(SKIP_SETUP_ITEMS)


@bp.app_context_processor
def _profile_helpers():
    """`profile_status(profile)` and the Setup Assistant pane names for the profile templates (and C's
    fragment on the profile page)."""
    from ..assignments.auto import default_profiles

    return {"profile_status": status_of, "skip_setup_labels": SKIP_LABELS, "default_profiles_of": default_profiles}


def _servers() -> list[ManagedServer]:
    return list(db.session.execute(select(ManagedServer).order_by(ManagedServer.name)).scalars())


def _list_context(server: ManagedServer | None, show_server: bool, status: str = "") -> dict:
    profiles = profiles_of(server.id if server else None)
    if any(settle_stale(p) for p in profiles):
        db.session.commit()
    if status:  # a server has a handful of profiles: filtered here, after settling, so the filter sees the status shown
        profiles = [p for p in profiles if p.status == status]
    return {"server": server, "profiles": profiles, "counts": device_counts([p.id for p in profiles]),
            "show_server": show_server, "action_form": ConfirmForm(), "status_filter": status}


def _render_list(context: dict):
    fragment = is_htmx() and request.headers.get("HX-Target") == "profile-table"
    response = make_response(render_template("profiles/_table.html" if fragment else "profiles/index.html", **context))
    response.headers["Vary"] = "HX-Request"
    return tidy_history(response) if fragment else response  # a status chosen, then Filter: one history entry


@bp.route("/profiles")
def index():
    """Every managed server's enrollment profiles, with a server filter (?server=<id>) and a status filter
    (?status=changed: the profiles to configure again after an edit of their server configuration, say)."""
    server_id = request.args.get("server", type=small_int)  # not an id (or too large): no filter
    server = db.session.get(ManagedServer, server_id) if server_id else None
    context = _list_context(server, show_server=True, status=_status_filter())
    context.update(servers=_servers(), filter_id=server.id if server else None, statuses=STATUSES.values())
    return _render_list(context)


@bp.route("/servers/<int:server_id>/profiles")
def server_profiles(server_id: int):
    """The Enrollment Profiles tab of a managed server, with the same status filter (?status=)."""
    server = db.get_or_404(ManagedServer, server_id)
    context = _list_context(server, show_server=False, status=_status_filter())
    context.update(statuses=STATUSES.values())
    return _render_list(context)


def _status_filter() -> str:
    """The ?status= of a profile list: one of the profile statuses, else "" (any status)."""
    status = request.args.get("status", "")
    return status if status in PROFILE_STATUSES else ""


def _profile_or_404(profile_id: int) -> EnrollmentProfile:
    return db.get_or_404(EnrollmentProfile, profile_id)


@bp.route("/profiles/<int:profile_id>/row")
@part_of(lambda profile_id: url_for("profiles.detail", profile_id=profile_id))
def row(profile_id: int):
    """One profile's row; polled while it is Configuring, then polling stops (286)."""
    profile = _profile_or_404(profile_id)
    if settle_stale(profile):
        db.session.commit()
    html = render_template("profiles/_row.html", profile=profile, counts=device_counts([profile.id]),
                           show_server=request.args.get("all") == "1", action_form=ConfirmForm())
    return html, (200 if profile.status == CONFIGURING else STOP_POLLING)


@bp.route("/profiles/<int:profile_id>/status")
@part_of(lambda profile_id: url_for("profiles.detail", profile_id=profile_id))
def status_panel(profile_id: int):
    """The status card of the profile page; polled while Configuring."""
    profile = _profile_or_404(profile_id)
    if settle_stale(profile):
        db.session.commit()
    html = render_template("profiles/_status_card.html", profile=profile,
                           count=device_counts([profile.id]).get(profile.id, 0))
    if profile.status == CONFIGURING:
        return html, 200
    # Apple answered while the page watched: its device section follows (Add Devices needs a configured profile).
    headers = {"HX-Trigger": "profileSettled"} if request.args.get("watching") else {}
    return html, STOP_POLLING, headers


@bp.route("/profiles/<int:profile_id>")
def detail(profile_id: int):
    """A profile: its fields, its status at Apple and the devices associated with it."""
    profile = _profile_or_404(profile_id)
    if settle_stale(profile):
        db.session.commit()
    return render_template("profiles/detail.html", profile=profile, server=profile.server,
                           count=device_counts([profile.id]).get(profile.id, 0), action_form=ConfirmForm(),
                           activity=recent_activity(profile))
