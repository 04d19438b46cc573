"""Add Devices from one device's page: choose the profile it should get (the device is the one already chosen),
then the request's results, as from a profile's Select the Managed Devices."""
from __future__ import annotations

from flask import flash, make_response, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..htmx import hx_redirect, is_htmx
from ..models import Device, EnrollmentProfile, ManagedServer
from ..views import render_form
from . import bp
from .forms import ConfirmForm
from .services import request_assignment
from .token_wait import token_wait_note


@bp.route("/devices/<int:device_id>/profile", methods=["GET", "POST"])
def device_profile(device_id: int):
    """The server's profiles, configured ones to choose from; OK assigns the chosen one to this device at Apple."""
    device = db.get_or_404(Device, device_id)
    server = db.get_or_404(ManagedServer, device.server_id)
    profiles = list(db.session.execute(select(EnrollmentProfile).where(EnrollmentProfile.server_id == server.id)
                                       .order_by(EnrollmentProfile.name)).scalars())
    form = ConfirmForm()
    chosen = request.form.get("profile", type=int) if request.method == "POST" else None
    error = None
    if device.removed_at is not None:
        error = (f"{device.serial_number} is no longer a device of {server.name}: Apple stopped listing it, so no "
                 "profile can be assigned to it. If it was assigned to another MDM server, it appears there once that "
                 "server is synchronized.")
    elif form.validate_on_submit():
        profile = next((p for p in profiles if p.id == chosen), None)
        if profile is None:
            error = "Choose the profile this device should get."
        elif profile.id == device.profile_id:
            error = f"{device.serial_number} has “{profile.name}” already: choose another profile."
        else:
            try:
                batch = request_assignment(server, profile, [device.id], actor=current_user.username)
            except ValueError as exc:
                error = str(exc)
            else:
                waiting = token_wait_note(server)
                flash(f"Assigning “{profile.name}” to {device.serial_number} (request #{batch.id}) waits. {waiting}"
                      if waiting else f"Assigning “{profile.name}” to {device.serial_number}: Apple's answer follows "
                                      "below.", "warning" if waiting else "success")
                target = url_for("assignments.batch", batch_id=batch.id)
                return hx_redirect(make_response("", 204), target) if is_htmx() else redirect(target)
    elif request.method == "POST":
        error = "The form expired: choose the profile again."
    status = 422 if error and request.method == "POST" else 200
    # Titled as the button that opened it: a device with a profile is moved to another one (Change profile…).
    title = "Change profile" if device.profile_id else "Add Devices"
    return render_form("assignments/_device_profile_form.html", f"{title}: {device.serial_number}", status=status,
                       form=form, device=device, server=server, profiles=profiles, chosen=chosen, error=error)
