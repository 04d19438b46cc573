"""Release Devices: Apple takes devices out of the organization for good (POST /devices/disown).

The request is a batch like Add Devices, with the same per-device results and retries. Releasing
cannot be undone from an MDM server, so the pop-up says what it means and asks for a typed word.
"""
from __future__ import annotations

from flask import flash, make_response, redirect, request, url_for
from flask_login import current_user

from ..extensions import db
from ..models import ManagedServer
from ..models.assignment import RELEASE
from ..htmx import hx_redirect, is_htmx
from ..views import render_form
from . import bp
from .forms import NO_SERIALS, ReleaseForm
from .serials import SerialsError, devices_for_serials, parse_serials, released_already, released_message
from .services import request_assignment
from .token_wait import token_wait_note


@bp.route("/servers/<int:server_id>/devices/release", methods=["GET", "POST"])
def release_devices(server_id: int):
    """The pop-up (serial numbers, typed confirmation); OK queues the release. ?serials= fills the list."""
    server = db.get_or_404(ManagedServer, server_id)
    form = ReleaseForm(data={"serials": request.args.get("serials", "")} if request.method == "GET" else None)
    if form.validate_on_submit():
        try:
            serials = parse_serials(form.serials.data, "released", server)
            released = released_already(server, serials)
            if released:  # not "synchronize first": these were released from here, and Apple does not undo that
                raise SerialsError(released_message(released))
            ids = devices_for_serials(server, serials)
            if not ids:
                raise SerialsError(NO_SERIALS)  # only separators, or the heading of a pasted column
            batch = request_assignment(server, None, ids, action=RELEASE, actor=current_user.username)
        except SerialsError as exc:
            form.serials.errors = [str(exc)]
        except ValueError as exc:
            form.form_errors.append(str(exc))
        else:
            # To the request's page, pop-up or not: its results are what the admin watches next, and the device
            # page or list the pop-up came from no longer shows the devices released.
            releasing = (f"Releasing {batch.total:,} device{'s' if batch.total != 1 else ''} of {server.name} from "
                         "Apple Business Manager")
            waiting = token_wait_note(server)  # said now: the page shows the reason only once the job held it
            flash(f"{releasing} (request #{batch.id}) waits. {waiting}" if waiting
                  else f"{releasing}: each device's answer follows below.", "warning")
            target = url_for("assignments.batch", batch_id=batch.id)
            return hx_redirect(make_response("", 204), target) if is_htmx() else redirect(target)
    status = 422 if request.method == "POST" else 200
    return render_form("assignments/_release_form.html", "Release Devices", status=status, form=form, server=server)
