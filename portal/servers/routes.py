"""Device Assignment views: the managed server list, Add Server, Renew, Synchronize, Delete."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import urlsplit

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..activity.record import recent_activity, record_activity
from ..apple_link import status_of
from ..assignments.auto import unapplied_defaults
from ..converters import small_int
from ..device_locks import Busy
from ..devices.enrollment import not_ready_counts
from ..extensions import db
from ..htmx import STOP_POLLING, current_path, hx_redirect, hx_trigger, is_htmx, part_of, toast
from ..models import ManagedServer, PendingKeyPair
from ..names import same_name, shown_name
from ..queue import enqueue, fetch_job, job_alive, new_job_id
from ..views import form_done, render_form
from . import bp
from .deletion import deletion_scope
from .forms import ActionForm, AddServerForm, DeleteServerForm, RenewServerForm
from .renewal import renew_server
from .key_pairs import key_pair_of, key_pair_users, usable_key_pairs
from .services import (NO_KEY, NO_TOKEN, FieldErrors, KeyChoice, active_run, add_server, after_add, delete_server,
                       check_token_file, device_counts, latest_run, load_key, open_token, read_token_upload,
                       request_account, retry_sync_now, start_sync)


@bp.route("")
def index():
    """The managed servers."""
    return render_template("servers/index.html", **_table_context())


@bp.route("/table")
@part_of(lambda: url_for("servers.index"))
def table():
    """The server table alone, refreshed after a change (htmx)."""
    return render_template("servers/_table.html", **_table_context())


def _table_context() -> dict:
    servers = list(db.session.execute(select(ManagedServer).order_by(ManagedServer.name)).scalars())
    runs = {s.id: latest_run(s) for s in servers}
    return {"servers": servers, "counts": device_counts(), "runs": runs, "action_form": ActionForm()}


def _server_or_404(server_id: int) -> ManagedServer:
    return db.get_or_404(ManagedServer, server_id)


@bp.route("/<int:server_id>/row")
@part_of(lambda server_id: url_for("servers.detail", server_id=server_id))
def row(server_id: int):
    """One server's row; polled while its sync runs or its token is being checked (Check now), then polling
    stops. The row polled during a check (?checking=1) says what Apple answered once it did."""
    server = _server_or_404(server_id)
    run = latest_run(server)
    html = render_template("servers/_row.html", server=server, run=run, counts=device_counts(server.id),
                           action_form=ActionForm())
    if (run is not None and run.active) or _row_checking(server):
        return html, 200
    response = make_response(html, STOP_POLLING)
    if request.args.get("checking"):
        checked_toast(response, server)
    return response


def checked_toast(response, server: ManagedServer):
    """Say what Apple answered to Check now, where the admin pressed it."""
    status = status_of(server)
    message = f"Apple answered the token check: {server.name}'s token status is {status.label}."
    return toast(response, message if status.can_sync else f"{message} {status.remedy}",
                 "success" if status.badge == "ok" else ("warning" if status.can_sync else "error"),
                 replaces=_check_key(server))


def _check_key(server: ManagedServer) -> str:
    """The toasts of one token check: "Checking…", then Apple's answer in its place."""
    return f"token-check-{server.id}"


def _key_choice(form, required: bool) -> KeyChoice | None:
    if form.pending_key.data:
        if form.private_key.data or (form.private_key_pem.data or "").strip():
            # Which one the token was encrypted for is not for the portal to guess: the other would be dropped.
            raise FieldErrors({"pending_key": "Choose one private key: a key pair generated here, or your own key "
                                              "below, not both."})
        pending = db.session.get(PendingKeyPair, form.pending_key.data)
        if pending is None:
            raise FieldErrors({"pending_key": "That generated key pair is no longer available."})
        if pending.not_after <= datetime.now(timezone.utc):  # expired since the form was opened
            raise FieldErrors({"pending_key": (
                f"The certificate of key pair “{pending.label}” expired on {pending.not_after:%Y-%m-%d}: use Generate "
                "key pair for a new one, upload its certificate to the MDM server in Apple Business Manager and "
                "download a new token.")})
        return KeyChoice(pending=pending)
    data = form.private_key.data.read() if form.private_key.data else b""
    field = "private_key"
    if not data.strip() and form.private_key_pem.data and form.private_key_pem.data.strip():
        data, field = form.private_key_pem.data.strip().encode(), "private_key_pem"
    if not data.strip() and not required:
        return None
    return KeyChoice(data=data, password=form.password.data or None, field=field)


def _key_options(form) -> None:
    """Every key pair generated here whose certificate is valid, used ones too: one certificate may be uploaded to
    several MDM servers in Apple Business Manager. The servers using one are named, so the admin can tell."""
    pairs = usable_key_pairs()
    users = key_pair_users(pairs)
    form.pending_key.choices = [(0, "Upload or paste the private key below")] + [
        (p.id, f"Generated here: {p.label} ({_key_pair_note(p, users.get(p.id))})") for p in pairs]


def _key_pair_note(pending: PendingKeyPair, users: list[str] | None) -> str:
    if not users:
        return f"{pending.created_at:%Y-%m-%d %H:%M}"
    return "used by " + ", ".join(users)


def _suggest_key(form, key_id: int | None) -> None:
    """Add Server opened from the key pair just generated (its pop-up's Add Server, ?key=): that key pair is chosen
    in the list. Only a suggestion: the page gives it up for a key file or pasted key the admin gives
    (data-suggested, static/js/portal.js), which the server would otherwise refuse with it ("not both")."""
    if key_id is None or key_id not in dict(form.pending_key.choices):
        return  # its certificate expired since, or never generated: the list starts on "Upload or paste" as usual
    form.pending_key.data = key_id
    form.pending_key.render_kw = {"data-suggested": str(key_id),
                                  "data-yields-to": f"#{form.private_key.id}, #{form.private_key_pem.id}"}


def _missing_files(form) -> dict[str, str]:
    """Add Server's token and private key when not given at all."""
    missing = {}
    if not form.token.data:
        missing["token"] = NO_TOKEN
    pasted = (form.private_key_pem.data or "").strip()
    if not (form.pending_key.data or form.private_key.data or pasted):
        missing["private_key"] = NO_KEY
    return missing


def _check_files(form) -> None:
    """With another field to fix, the token file and the key given are checked all the same, each on its own: files
    are not kept after an error (a browser cannot refill them), so each one found wrong only after the admin fixed
    the name and chose the files again would cost another round. Whether the key opens the token waits for both."""
    try:
        if form.token.data and not form.token.errors:
            check_token_file(read_token_upload(form.token.data))
    except FieldErrors as exc:
        _apply_errors(form, exc.errors)
    key_fields = (form.pending_key, form.private_key, form.private_key_pem, form.password)
    try:
        choice = None if any(field.errors for field in key_fields) else _key_choice(form, required=False)
        if choice is not None:
            load_key(choice)
    except FieldErrors as exc:
        _apply_errors(form, exc.errors)


def _apply_errors(form, errors: dict[str, str]) -> None:
    for name, message in errors.items():
        getattr(form, name).errors = list(getattr(form, name).errors or []) + [message]


@bp.route("/add", methods=["GET", "POST"])
def add():
    """Add a Server: name, authentication token, private key (and its password)."""
    form = AddServerForm()
    _key_options(form)
    if not form.is_submitted():
        _suggest_key(form, request.args.get("key", type=small_int))
    if form.is_submitted():
        valid = form.validate()
        missing = _missing_files(form)  # said together with the other fields' errors, not one per attempt
        _apply_errors(form, missing)
        if not valid or missing:
            _check_files(form)
    if form.is_submitted() and valid and not missing:
        try:
            token_file = read_token_upload(form.token.data)
            opened = open_token(token_file, _key_choice(form, required=True))
            server = add_server(form.name.data, opened)
            db.session.commit()
        except FieldErrors as exc:
            db.session.rollback()
            _apply_errors(form, exc.errors)
        except IntegrityError:  # the same name, added by another tab or admin between the check and the save
            db.session.rollback()
            _apply_errors(form, {"name": f"A managed server named “{form.name.data}” was added a moment ago. "
                                         "Choose another name."})
        else:
            after_add(server, current_user.username)
            return form_done(f"Managed server {server.name} added; reading its Apple account details.",
                             url_for("servers.detail", server_id=server.id), "serversChanged")
    status = 422 if form.errors else 200
    return render_form("servers/_add_form.html", "Add a Server", status=status, form=form)


@bp.route("/<int:server_id>")
def detail(server_id: int):
    """A managed server: token status, account details, synchronization history, activity."""
    server = _server_or_404(server_id)
    runs = server.sync_runs[:20]
    activity = recent_activity(server)
    from ..profiles.services import settle_stale  # profiles.services imports this blueprint

    defaults = unapplied_defaults(server.id)
    # A default profile left Configuring by a worker that died: said Failed here too (its page says so), or this
    # page would poll every 3 s for an answer that never comes.
    if any(settle_stale(profile) for profile in defaults):
        db.session.commit()
    return render_template("servers/detail.html", server=server, status=status_of(server), runs=runs,
                           run=runs[0] if runs else None,
                           activity=activity, count=device_counts(server.id).get(server.id, 0),
                           not_ready=not_ready_counts(server.id), unapplied_defaults=defaults,
                           account_pending=_account_pending(server), action_form=ActionForm(),
                           key_pair=key_pair_of(server), now=datetime.now(timezone.utc))


def _account_pending(server: ManagedServer) -> bool:
    return bool(server.account_job_id) and job_alive(fetch_job(server.account_job_id))


def _row_checking(server: ManagedServer) -> bool:
    """Whether a server row shows a token check under way (and polls it): the Check now of a Terms Not Accepted
    server, the only status whose row offers it (a check after Add Server or Renew a server shows on the page)."""
    return status_of(server).key == "terms_not_signed" and _account_pending(server)


@bp.app_context_processor
def _account_checks():
    """`row_checking(server)` for the server rows."""
    return {"row_checking": _row_checking}


@bp.route("/<int:server_id>/account")
@part_of(lambda server_id: url_for("servers.detail", server_id=server_id))
def account(server_id: int):
    """The account details section; polled until Apple's answer is in."""
    server = _server_or_404(server_id)
    pending = _account_pending(server)
    html = render_template("servers/_account.html", server=server, status=status_of(server),
                           account_pending=pending, action_form=ActionForm())
    if pending:
        return html, 200
    # Apple answered (Check now, or the reading after Add Server / Renew a server): what it said may change the
    # token status, so the page's header, token card and activity refresh themselves (accountChecked), and a
    # message says what it was.
    response = hx_trigger(make_response(html, STOP_POLLING), accountChecked=True)
    return checked_toast(response, server)


@bp.route("/<int:server_id>/sync-status")
@part_of(lambda server_id: url_for("servers.detail", server_id=server_id))
def sync_status(server_id: int):
    """The live synchronization panel of the server page; polled while a run is active."""
    server = _server_or_404(server_id)
    run = latest_run(server)
    html = render_template("servers/_sync_status.html", server=server, run=run)
    if run is not None and run.active:
        return html, 200
    # The run the page watched is over: its history and activity sections reload themselves.
    return html, STOP_POLLING, {"HX-Trigger": "syncFinished"}


@bp.route("/<int:server_id>/sync", methods=["POST"])
def synchronize(server_id: int):
    """Synchronize now; a sync already running is shown instead of starting another, and one waiting to be retried
    (Apple unavailable or busy) is retried now."""
    server = _server_or_404(server_id)
    status = status_of(server)
    if not status.can_sync:
        message = f"{server.name} cannot be synchronized: its token status is {status.label}. {status.remedy}"
        return _after_action(server, message, "error")
    waiting = active_run(server)
    if waiting is not None and waiting.retry_scheduled and retry_sync_now(waiting, current_user.username):
        return _after_action(server, f"Synchronization of {server.name} retried now, before its retry time.", "success")
    run, started = start_sync(server, trigger="manual", actor=current_user.username)
    message = (f"Synchronization of {server.name} started." if started
               else f"A synchronization of {server.name} is already running; showing it.")
    return _after_action(server, message, "success" if started else "info")


@bp.route("/<int:server_id>/full-sync", methods=["GET", "POST"])
def full_sync(server_id: int):
    """Full synchronization: read every device again, after a confirmation saying what it does."""
    server = _server_or_404(server_id)
    status = status_of(server)
    form = ActionForm()
    if form.validate_on_submit():
        page = url_for("servers.detail", server_id=server.id)
        if not status.can_sync:
            message, category = (f"{server.name} cannot be synchronized: its token status is {status.label}. "
                                 f"{status.remedy}"), "error"
        else:
            run, started = start_sync(server, trigger="manual", actor=current_user.username, full=True)
            message, category = ((f"Full synchronization of {server.name} started.", "success") if started else
                                 (f"A synchronization of {server.name} is already running: start the full one "
                                  "when it has finished.", "info"))
        flash(message, category)
        if is_htmx():
            return hx_redirect(make_response("", 204), page)  # the server page, with its sync panel polling
        return redirect(page)
    return render_form("servers/_full_sync_form.html", "Full synchronization", form=form, server=server,
                       token_status=status, count=device_counts(server.id).get(server.id, 0))


@bp.route("/<int:server_id>/check", methods=["POST"])
def check(server_id: int):
    """Check now: re-test the token against Apple in a job."""
    server = _server_or_404(server_id)
    if _account_pending(server):  # pressed again (without JavaScript the button stays live): one check is enough
        return _after_action(server, f"A check of {server.name}'s token is already under way: Apple's answer "
                                     "shows on the server page.", "info", toast_key=_check_key(server))
    job_id = new_job_id()
    server.account_job_id = job_id
    record_activity("server.check_requested", server, summary=f"Token check of {server.name} requested")
    db.session.commit()
    enqueue("jobs.servers.check_token", server.id, job_id=job_id)
    return _after_action(server, f"Checking the token of {server.name} with Apple…", "info",
                         toast_key=_check_key(server))


def _after_action(server: ManagedServer, message: str, category: str, toast_key: str | None = None):
    """Answer a row/page action: the refreshed row for htmx, a redirect otherwise."""
    if is_htmx():
        # The server page targets one of its panels; the list targets the server's row.
        target = request.headers.get("HX-Target")
        if target == "sync-panel":
            html = render_template("servers/_sync_status.html", server=server, run=latest_run(server))
        elif target == "account-panel":
            html = render_template("servers/_account.html", server=server, status=status_of(server),
                                   account_pending=_account_pending(server), action_form=ActionForm())
        else:
            html = render_template("servers/_row.html", server=server, run=latest_run(server),
                                   counts=device_counts(server.id), action_form=ActionForm())
        return toast(make_response(html), message, category, replaces=toast_key)
    flash(message, category)
    return redirect(_servers_page_sent_from() or url_for("servers.detail", server_id=server.id))


def _servers_page_sent_from() -> str | None:
    """The path (and query) of the servers page a plain form was sent from, read from the Referer.

    The browser writes that header: one that is not a URL ("http://[x": urlsplit raises ValueError,
    and so would werkzeug on the Location header, a 500) or names another kind of page gives None.
    """
    try:
        parts = urlsplit(request.referrer or "")
    except ValueError:
        return None
    index = url_for("servers.index")
    if parts.path != index and not parts.path.startswith(index + "/"):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


@bp.route("/<int:server_id>/renew", methods=["GET", "POST"])
def renew(server_id: int):
    """Renew a server: upload the new token (decrypted with the stored key, or a new one)."""
    server = _server_or_404(server_id)
    form = RenewServerForm()
    _key_options(form)
    if form.validate_on_submit():
        try:
            token_file = read_token_upload(form.token.data)
            never_fetched = server.sync_cursor is None and not server.fetch_complete
            last_failed = bool(server.sync_runs) and server.sync_runs[0].status == "failed"
            before = status_of(server)  # Expired, or refused by Apple: no scheduled synchronization ran meanwhile
            renewal = renew_server(server, token_file, _key_choice(form, required=False), form.confirm_replace.data)
            db.session.commit()
        except FieldErrors as exc:
            db.session.rollback()
            _apply_errors(form, exc.errors)
            form.new_key_wanted = exc.new_key
        else:
            account_job = request_account(server)
            message = f"{server.name} renewed: the token now expires on {server.token_expiry:%Y-%m-%d}."
            if (renewal.replaced or never_fetched or last_failed or not before.can_sync) and status_of(server).can_sync:
                # Another Apple server (now, or by a replacement whose first synchronization the old token could
                # not make): its devices replace the old one's now, not at the next scheduled sync. After a failed
                # synchronization (a revoked or expired token, most often): the new token is put to work now,
                # rather than the page showing that failure, and its advice to renew, until the next one.
                start_sync(server, trigger="renewed", actor=current_user.username, after_job=account_job)
                message += (" Synchronizing the devices of the new Apple MDM server now." if renewal.replaced
                            else " Synchronizing its devices now." if never_fetched
                            else " Synchronizing again now: the last synchronization failed." if last_failed
                            else f" Synchronizing again now: none ran while its token was {before.label}.")
            page = url_for("servers.detail", server_id=server.id)
            current = current_path()
            if is_htmx() and current.startswith("/") and current != url_for("servers.index").rstrip("/"):
                # Renewed from the server's page, or from a page that said the token needed it (a held request,
                # the banner on any page): show that page again, with the new token (status, banner, actions).
                # The servers list refreshes its row instead (serversChanged).
                flash(message, "success")
                return hx_redirect(make_response("", 204), page if current == request.path.rstrip("/") else current)
            return form_done(message, page, "serversChanged")
    status = 422 if form.errors else 200
    return render_form("servers/_renew_form.html", f"Renew a server: {server.name}", status=status,
                       form=form, server=server)


@bp.route("/<int:server_id>/delete", methods=["GET", "POST"])
def delete(server_id: int):
    """Delete a managed server after typing its name."""
    server = _server_or_404(server_id)
    form = DeleteServerForm()
    if form.validate_on_submit():
        if not same_name(form.confirm_name.data, server.name):  # spacing aside, as the dialog shows it
            form.confirm_name.errors = [f"Type {shown_name(server.name)} exactly to confirm."]
        else:
            name = server.name
            try:
                delete_server(server)
            except Busy:
                form.confirm_name.errors = [f"{name} is writing devices right now (a synchronization or Add Devices). "
                                            "Nothing was deleted: try again in a few seconds."]
                return render_form("servers/_delete_form.html", f"Delete {name}", status=422, form=form,
                                   server=server, scope=deletion_scope(server))
            db.session.commit()
            if is_htmx() and request.headers.get("HX-Current-URL", "").rstrip("/").endswith(f"/servers/{server_id}"):
                flash(f"Managed server {name} deleted.", "success")
                return hx_redirect(make_response("", 204), url_for("servers.index"))
            return form_done(f"Managed server {name} deleted.", url_for("servers.index"), "serversChanged")
    status = 422 if form.errors else 200
    return render_form("servers/_delete_form.html", f"Delete {server.name}", status=status, form=form,
                       server=server, scope=deletion_scope(server))

