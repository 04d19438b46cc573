"""Enrollment profile actions: Create Profile, Edit, Delete, Configure profile (pop-ups and plain pages)."""
from __future__ import annotations

from flask import flash, make_response, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from wtforms.fields.choices import SelectChoice

from ..apple_link import status_of as token_status_of
from ..assignments.services import in_flight_for_profile, unsent_for_profile
from ..extensions import db
from ..htmx import hx_redirect, is_htmx
from ..models import EnrollmentProfile, ManagedServer
from ..models.profile import CHANGED
from ..views import form_done, render_form
from . import bp
from .forms import ConfigureForm, ConfirmForm, NewProfileForm, ProfileForm
from .services import (FieldErrors, after_default_deleted, configure_running, create_profile, delete_profile,
                       device_counts, edited_fields, failure_field, name_clash, start_configure, update_profile)

REFRESH = "profilesChanged"
ADD_TITLE = "Add an enrollment profile"  # the pop-up Create Profile opens, named as in BMC


def _apply_errors(form, errors: dict[str, str]) -> None:
    for name, message in errors.items():
        getattr(form, name).errors = list(getattr(form, name).errors or []) + [message]


def _save_new(form, server_for) -> EnrollmentProfile | None:
    """Validate, create and commit; field errors (and a lost race on the unique name) go on the form."""
    if not form.validate_on_submit():
        return None
    server = server_for(form)
    if server is None:
        return None
    try:
        profile = create_profile(server, form.data)
        db.session.commit()
    except FieldErrors as exc:
        db.session.rollback()
        _apply_errors(form, exc.errors)
    except IntegrityError:  # the same name saved meanwhile (another tab or admin): name that profile
        db.session.rollback()
        _apply_errors(form, {"name": name_clash(server, form.name.data)
                             or "A profile with this name was just created on this server: choose another name."})
    else:
        return profile
    return None


def _created(profile: EnrollmentProfile):
    displaced = "".join(f" {sentence}" for sentence in getattr(profile, "displaced_defaults", []))
    return form_done(f"Profile {profile.name} created on {profile.server.name}.{displaced} It is Not configured: use "
                     "Configure profile to send it to Apple.",
                     url_for("profiles.detail", profile_id=profile.id), REFRESH)


@bp.route("/servers/<int:server_id>/profiles/new", methods=["GET", "POST"])
def create(server_id: int):
    """Create Profile on a managed server's Enrollment Profiles tab."""
    server = db.get_or_404(ManagedServer, server_id)
    form = ProfileForm()
    profile = _save_new(form, lambda _form: server)
    if profile is not None:
        return _created(profile)
    return render_form("profiles/_form.html", ADD_TITLE, status=422 if form.errors else 200, form=form,
                       server=server, action=url_for("profiles.create", server_id=server.id), url_error=None)


@bp.route("/profiles/new", methods=["GET", "POST"])
def create_any():
    """Create Profile from the global page: the managed server is the first field."""
    servers = list(db.session.execute(select(ManagedServer).order_by(ManagedServer.name)).scalars())
    form = NewProfileForm()
    form.server_id.choices = [SelectChoice(0, "Choose a managed server…")] + [SelectChoice(s.id, s.name) for s in servers]
    # ?server= from a link; ?server_id= from the form's own server field, whose change shows that server's defaults.
    asked = request.args.get("server", type=int) or request.args.get("server_id", type=int)
    if request.method == "GET" and asked:
        form.server_id.data = asked
    elif request.method == "GET" and len(servers) == 1:
        form.server_id.data = servers[0].id  # the only choice: chosen already

    def server_for(f):
        server = db.session.get(ManagedServer, f.server_id.data)
        if server is None:
            _apply_errors(f, {"server_id": "That managed server no longer exists: choose another."})
        return server

    profile = _save_new(form, server_for)
    if profile is not None:
        return _created(profile)
    chosen = next((s for s in servers if s.id == form.server_id.data), None)  # its default profiles are shown
    return render_form("profiles/_form.html", ADD_TITLE, status=422 if form.errors else 200, form=form,
                       server=None, servers=servers, chosen_server=chosen, action=url_for("profiles.create_any"),
                       url_error=None)


def _busy(profile: EnrollmentProfile, doing: str):
    """Answer an action that cannot run while the profile is being configured."""
    message = f"{profile.name} is being configured at Apple right now: {doing} when Apple has answered."
    if is_htmx():
        return render_form("profiles/_notice.html", profile.name, message=message)
    flash(message, "info")
    return make_response("", 303, {"Location": url_for("profiles.detail", profile_id=profile.id)})


@bp.route("/profiles/<int:profile_id>/edit", methods=["GET", "POST"])
def edit(profile_id: int):
    """Edit a profile; a configured profile becomes Changed — configure again."""
    profile = db.get_or_404(EnrollmentProfile, profile_id)
    if configure_running(profile):
        return _busy(profile, "edit it")
    form = ProfileForm(obj=profile)
    url_error = None
    valid = form.validate_on_submit()
    if valid and not edited_fields(profile, form.data):
        # Saved as it was: no activity entry, no status change, no new "updated" time.
        return form_done(f"No change to save: {profile.name} is as it was.",
                         url_for("profiles.detail", profile_id=profile.id), category="info")
    if valid:
        try:
            changed = update_profile(profile, form.data)
            db.session.commit()
        except FieldErrors as exc:
            db.session.rollback()
            _apply_errors(form, exc.errors)
        except IntegrityError:
            db.session.rollback()
            _apply_errors(form, {"name": name_clash(profile.server, form.name.data, profile.id)
                                 or "Another profile of this server just took this name: choose another."})
        else:
            message = f"Profile {profile.name} saved." + "".join(
                f" {sentence}" for sentence in getattr(profile, "displaced_defaults", []))
            if changed and profile.status == CHANGED:
                message += " Apple still has the previous version: use Configure profile to send this one."
            return form_done(message, url_for("profiles.detail", profile_id=profile.id), REFRESH)
    elif request.method == "GET":
        failed = failure_field(profile)
        if failed and failed[0] == "url":
            url_error = failed[1]
        elif failed:
            _apply_errors(form, {failed[0]: failed[1]})
    return render_form("profiles/_form.html", f"Edit {profile.name}", status=422 if request.method == "POST" else 200,
                       form=form, server=profile.server, profile=profile, url_error=url_error,
                       action=url_for("profiles.edit", profile_id=profile.id))


@bp.route("/profiles/<int:profile_id>/delete", methods=["GET", "POST"])
def delete(profile_id: int):
    """Delete a profile after confirmation; its devices keep Apple's profile until it is removed."""
    profile = db.get_or_404(EnrollmentProfile, profile_id)
    count = device_counts([profile.id]).get(profile.id, 0)
    form = ConfirmForm()
    default_note = after_default_deleted(profile)  # a default profile: what new devices get without it
    if form.validate_on_submit():
        name, server_id = profile.name, profile.server_id
        delete_profile(profile, count)
        db.session.commit()
        message = f"Profile {name} deleted." + (f" From now on, {default_note}" if default_note else "")
        fallback = url_for("profiles.server_profiles", server_id=server_id)
        if is_htmx() and request.headers.get("HX-Current-URL", "").rstrip("/").endswith(f"/profiles/{profile_id}"):
            flash(message, "success")
            return hx_redirect(make_response("", 204), fallback)
        return form_done(message, fallback, REFRESH)
    return render_form("profiles/_delete_form.html", f"Delete {profile.name}", form=form, profile=profile, count=count,
                       default_note=default_note, unsent=unsent_for_profile(profile.id),
                       in_flight=in_flight_for_profile(profile.id))


@bp.route("/profiles/<int:profile_id>/configure", methods=["GET", "POST"])
def configure(profile_id: int):
    """Configure profile: confirm, then send the profile to Apple in a background job."""
    profile = db.get_or_404(EnrollmentProfile, profile_id)
    count = device_counts([profile.id]).get(profile.id, 0)
    form = ConfigureForm()
    if form.validate_on_submit():
        if configure_running(profile):
            return form_done(f"{profile.name} is already being configured.",
                             url_for("profiles.detail", profile_id=profile.id), REFRESH, category="info")
        reassign = bool(form.reassign.data and count and profile.apple_profile_uuid)
        start_configure(profile, reassign=reassign, admin_id=current_user.id)
        return form_done(f"Configuring profile {profile.name} at Apple…",
                         url_for("profiles.detail", profile_id=profile.id), REFRESH, category="info")
    if request.method == "GET":
        form.reassign.data = True  # "Re-assign them now" is on by default

    server = profile.server
    return render_form("profiles/_configure_form.html", f"Configure profile {profile.name}", form=form,
                       profile=profile, server=server, count=count, token=token_status_of(server),
                       running=configure_running(profile))
