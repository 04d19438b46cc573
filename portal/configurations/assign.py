"""Assign Server Configuration / Unassign Server Configuration on a managed server.

Assigning links the managed server to a configuration: its enrollment profiles are then configured
with that MDM server URL and those trusted certificates. The server list and page show them.
"""
from __future__ import annotations

from flask import flash, make_response, request, url_for

from ..converters import small_int
from ..extensions import db
from ..htmx import current_path, hx_redirect, is_htmx
from ..models import ManagedServer, ServerConfiguration
from ..views import form_done, render_form
from . import bp
from .forms import AssignForm, ConfirmForm
from .services import (Assigned, all_configurations, assign_configuration, configured_profiles_of, names_words,
                       unassign_configuration)

# The server list refreshes its table on this event (templates/servers/index.html).
SERVERS_EVENT = "serversChanged"


def _server_or_404(server_id: int) -> ManagedServer:
    return db.get_or_404(ManagedServer, server_id)


def done_on_server(server: ManagedServer, message: str, category: str = "success"):
    """Close the pop-up and refresh the server list; on the server's own page or its Enrollment Profiles tab
    (htmx), reload that page: both say what the server configuration allows (Configure profile)."""
    page = url_for("servers.detail", server_id=server.id)
    current = current_path()
    if is_htmx() and current in (page, url_for("profiles.server_profiles", server_id=server.id)):
        flash(message, category)
        return hx_redirect(make_response("", 204), current)
    # Without htmx, the server page is where the result shows (its "Server configuration" card).
    return form_done(message, page, SERVERS_EVENT, category=category)


@bp.route("/servers/<int:server_id>/configuration", methods=["GET", "POST"])
def assign(server_id: int):
    """Select the Server Configuration: choose one; OK assigns it (replacing any other)."""
    server = _server_or_404(server_id)
    configurations = all_configurations()
    form = AssignForm()
    form.configuration.choices = [(c.id, c.name) for c in configurations]
    if request.method == "GET":
        # Opened: the server's current configuration is chosen, or the only one there is (nothing else to pick).
        # A choice sent back with an error stays the admin's.
        if server.configuration_id:
            form.configuration.data = server.configuration_id
        elif len(configurations) == 1:
            form.configuration.data = configurations[0].id
    if form.validate_on_submit():
        configuration_id = small_int(form.configuration.data)  # a number too large for the database is unknown too
        configuration = db.session.get(ServerConfiguration, configuration_id) if configuration_id else None
        if configuration is None:
            form.configuration.errors = ["That configuration no longer exists. Choose another one."]
        else:
            assigned = Assigned()
            if assign_configuration(server, configuration, assigned):
                db.session.commit()
                return done_on_server(server, f"Server configuration {configuration.name} assigned to {server.name}."
                                      + assigned.note(configuration), "warning" if assigned.outdated else "success")
            return done_on_server(server, f"{configuration.name} is already the server configuration of {server.name}.",
                                  "info")
    at_stake = configured_profiles_of(server)
    return render_form("configurations/_assign_form.html", "Select the Server Configuration",
                       status=422 if form.errors else 200, form=form, server=server,
                       configurations={c.id: c for c in configurations}, at_stake=at_stake,
                       at_stake_names=names_words(at_stake))


@bp.route("/servers/<int:server_id>/configuration/unassign", methods=["GET", "POST"])
def unassign(server_id: int):
    """Unassign Server Configuration, after a confirmation that says what it does and does not do."""
    server = _server_or_404(server_id)
    form = ConfirmForm()
    if form.validate_on_submit():
        previous = unassign_configuration(server)
        if previous is None:  # already unassigned (another tab, another admin)
            return done_on_server(server, f"{server.name} has no server configuration any more.", "info")
        db.session.commit()
        return done_on_server(server, f"Server configuration {previous.name} unassigned from {server.name}.")
    return render_form("configurations/_unassign_form.html", "Unassign Server Configuration", form=form, server=server)
