"""MDM Server Configurations pages: the list, Create Configuration, a configuration, Edit, Delete."""
from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from flask import abort, flash, make_response, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..activity.record import recent_activity
from ..converters import small_int
from ..downloads import attachment, download, file_stem
from ..extensions import db
from ..htmx import current_path, hx_redirect, is_htmx, part_of
from ..models import ManagedServer, ServerConfiguration
from ..views import form_done, render_form
from . import bp
from .assign import done_on_server
from .forms import ConfigurationForm, ConfirmForm
from .services import (Assigned, FieldErrors, InUse, Upload, all_configurations, assign_configuration,
                       create_configuration, delete_configuration, profiles_at_stake, profiles_out_of_date,
                       profiles_words, read_upload, servers_using, update_configuration)

EVENT = "configurationsChanged"


@bp.route("/configurations")
def index():
    """The configurations, with their certificates' health and the servers using them."""
    return render_template("configurations/index.html", configurations=all_configurations())


@bp.route("/configurations/table")
@part_of(lambda: url_for("configurations.index"))
def table():
    """The configuration table alone, refreshed after a change (htmx)."""
    return render_template("configurations/_table.html", configurations=all_configurations())


def _configuration_or_404(configuration_id: int) -> ServerConfiguration:
    return db.get_or_404(ServerConfiguration, configuration_id)


def _upload(form: ConfigurationForm) -> Upload:
    # A browser sends an empty part for an untouched file input: skip parts without a name or bytes.
    files = [(f.filename, f.read()) for f in (form.certificate_files.data or []) if f and f.filename]
    return Upload(files=[(name, data) for name, data in files if name or data], pasted=form.certificates_pem.data or "")


def _apply_errors(form, errors: dict[str, list[str]]) -> None:
    for name, messages in errors.items():
        getattr(form, name).errors = list(getattr(form, name).errors or []) + messages


def _upload_errors(form: ConfigurationForm) -> None:
    """A form refused for another field also names its unreadable certificates: files are not kept after an
    error, so a bad one said only on the next attempt would cost a second round of choosing them again."""
    try:
        read_upload(_upload(form))
    except FieldErrors as exc:
        _apply_errors(form, exc.errors)


def _name_taken(form) -> None:
    """After a lost race on the unique name: name the configuration saved meanwhile."""
    form.name.errors = list(form.name.errors or []) + [
        form.name_clash() or "A configuration with this name was just saved: choose another name."]


def _done(message: str, page_url: str, category: str = "success", *, follow: bool = False):
    """Close the pop-up and refresh the list; from any other page (htmx), reload ``page_url`` instead.
    ``follow``: go to ``page_url`` from the list too (it shows what the message asks the admin to do)."""
    current = current_path()
    if is_htmx() and (follow or (current and current != url_for("configurations.index"))):
        flash(message, category)
        return hx_redirect(make_response("", 204), page_url)
    return form_done(message, page_url, EVENT, category=category)


@bp.route("/configurations/new", methods=["GET", "POST"])
def create():
    """Create Configuration: name, MDM server URL and the SSL certificates to trust.

    Reached from a managed server's Assign Server Configuration (?server=<id>), it offers to assign the new
    configuration to that server (ticked) and leads back there; an unknown server is ignored."""
    server_id = request.args.get("server", type=small_int)
    server = db.session.get(ManagedServer, server_id) if server_id else None
    form = ConfigurationForm()
    if server is not None:
        form.assign.label.text = f"Assign to {server.name}"
    if form.validate_on_submit():
        try:
            saved = create_configuration(form.name.data, form.url.data, _upload(form))
            # The same service (and activity entry) as Assign Server Configuration, in the same transaction.
            changes = Assigned()
            assigned = server is not None and form.assign.data and assign_configuration(server, saved.configuration,
                                                                                        changes)
            db.session.commit()
        except FieldErrors as exc:
            db.session.rollback()
            _apply_errors(form, exc.errors)
        except IntegrityError:  # the same name was saved by someone else meanwhile
            db.session.rollback()
            _name_taken(form)
        else:
            configuration = saved.configuration
            category = "warning" if saved.unusable else "success"
            if assigned:
                return done_on_server(server, saved.summary("created")
                                      + f" Server configuration {configuration.name} assigned to {server.name}."
                                      + changes.note(configuration), "warning" if changes.outdated else category)
            if server is not None:
                return done_on_server(server, saved.summary("created") + f" It is not assigned to {server.name}: use "
                                      "Assign Server Configuration when it should be.",
                                      "warning" if saved.unusable else "info")
            return _done(saved.summary("created"), url_for("configurations.detail", configuration_id=configuration.id),
                         category)
    elif form.is_submitted():
        _upload_errors(form)
    return render_form("configurations/_form.html", "Create Configuration", status=422 if form.errors else 200,
                       form=form, configuration=None, server=server)


@bp.route("/configurations/<int:configuration_id>")
def detail(configuration_id: int):
    """A configuration: its URL, certificates, the servers using it and its activity."""
    configuration = _configuration_or_404(configuration_id)
    activity = recent_activity(configuration)
    return render_template("configurations/detail.html", configuration=configuration,
                           servers=servers_using(configuration), activity=activity,
                           out_of_date=profiles_out_of_date(configuration))


@bp.route("/configurations/<int:configuration_id>/certificates.pem")
@bp.route("/configurations/<int:configuration_id>/certificates/<int:certificate_id>.pem")
@download
def download_certificates(configuration_id: int, certificate_id: int | None = None):
    """The configuration's trusted certificates (or one of them) as PEM, to check or reuse them."""
    configuration = _configuration_or_404(configuration_id)
    chosen = [c for c in configuration.certificates if certificate_id is None or c.id == certificate_id]
    if not chosen:
        abort(404)
    pem = b"".join(x509.load_der_x509_certificate(c.der).public_bytes(serialization.Encoding.PEM) for c in chosen)
    name = configuration.name if certificate_id is None else f"{configuration.name}-{chosen[0].sha256[:12]}"
    response = make_response(pem)
    response.headers["Content-Type"] = "application/x-pem-file"
    response.headers["Content-Disposition"] = attachment(f"{file_stem(name, 'certificates')}.pem", "certificates")
    return response


@bp.route("/configurations/<int:configuration_id>/edit", methods=["GET", "POST"])
def edit(configuration_id: int):
    """Edit a configuration: rename, change the URL, add certificates, remove ticked ones."""
    configuration = _configuration_or_404(configuration_id)
    form = ConfigurationForm(obj=configuration, configuration=configuration)
    form.remove.choices = [(c.id, c.subject) for c in configuration.certificates]
    if request.method == "GET":
        form.remove.data = []
    if form.validate_on_submit():
        try:
            saved = update_configuration(configuration, form.name.data, form.url.data, _upload(form),
                                         form.remove.data or [])
            db.session.commit()
        except FieldErrors as exc:
            db.session.rollback()
            _apply_errors(form, exc.errors)
        except IntegrityError:
            db.session.rollback()
            _name_taken(form)
        else:
            page = url_for("configurations.detail", configuration_id=configuration_id)
            if saved.outdated:  # its page lists them, each with a link to Configure profile
                return _done(saved.summary("updated") + " They are listed under Enrollment profiles to configure "
                             "again.", page, "warning", follow=True)
            return _done(saved.summary("updated"), page, "warning" if saved.unusable else "success")
    elif form.is_submitted():
        _upload_errors(form)
    # After a rollback the instance is expired: reload it so the form shows what is stored.
    configuration = _configuration_or_404(configuration_id)
    at_stake = profiles_at_stake(configuration)
    return render_form("configurations/_form.html", f"Edit {configuration.name}", status=422 if form.errors else 200,
                       form=form, configuration=configuration, at_stake=at_stake,
                       at_stake_words=profiles_words(at_stake) if at_stake else "")


@bp.route("/configurations/<int:configuration_id>/delete", methods=["GET", "POST"])
def delete(configuration_id: int):
    """Delete a configuration: refused, naming the servers, while it is assigned to any."""
    configuration = _configuration_or_404(configuration_id)
    form = ConfirmForm()
    servers = servers_using(configuration)
    if form.validate_on_submit() and not servers:
        name = configuration.name
        try:
            delete_configuration(configuration)
            db.session.commit()
        except (InUse, IntegrityError):  # assigned between the check and the delete
            db.session.rollback()
            configuration = _configuration_or_404(configuration_id)
            servers = servers_using(configuration)
        else:
            return _done(f"Configuration {name} deleted.", url_for("configurations.index"))
    refused = request.method == "POST" and bool(servers)
    # A refused POST is a conflict; htmx only swaps 2xx/422 answers into the pop-up.
    status = (422 if is_htmx() else 409) if refused else 200
    return render_form("configurations/_delete_form.html", f"Delete {configuration.name}", status=status,
                       form=form, configuration=configuration, servers=servers)
