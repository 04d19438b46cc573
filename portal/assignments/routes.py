"""Assignment results: one request's page (polled while it runs), the retry queue, Retry now and Stop retrying."""
from __future__ import annotations

from flask import make_response, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ..converters import small_int
from ..extensions import db
from ..htmx import STOP_POLLING, hx_trigger, is_htmx, part_of, tidy_history
from ..models import AssignmentBatch, AssignmentTask, EnrollmentProfile, ManagedServer
from ..models.assignment import TASK_STATES
from ..queue import fetch_job, job_alive
from ..views import form_done, render_form
from . import bp, queries
from .forms import ConfirmForm
from .retries import queue_server_ids, queue_words, retry_now, stop_retrying, stoppable_condition

RUNNING = ("queued", "running")


def _batch_or_404(batch_id: int) -> AssignmentBatch:
    return db.get_or_404(AssignmentBatch, batch_id)


def _batch_context(batch: AssignmentBatch) -> dict:
    from ..apple_link import status_of  # imported here: apple_link imports the servers blueprint

    server = db.session.get(ManagedServer, batch.server_id)
    return {"batch": batch, "server": server, "token": status_of(server) if server else None,
            "profile": db.session.get(EnrollmentProfile, batch.profile_id) if batch.profile_id else None,
            "progress": queries.batch_progress(batch), "queue_count": queries.queue_count(batch_id=batch.id),
            "running": batch.status in RUNNING or _job_waiting(batch)}


def _job_waiting(batch: AssignmentBatch) -> bool:
    """Retry now queued a job for a finished request: it stays "finished" until a worker starts the job, and
    its page must poll meanwhile, or it would show the first run's counts until a reload."""
    return job_alive(fetch_job(batch.job_id))


@bp.route("/assignments/<int:batch_id>")
def batch(batch_id: int):
    """A request's results, device by device (bookmarkable)."""
    batch = _batch_or_404(batch_id)
    state = request.args.get("state", "")
    state = state if state in TASK_STATES else ""
    tasks = queries.batch_tasks(batch, state, queries.page_number(request.args.get("page")))
    context = {**_batch_context(batch), "tasks": tasks, "state": state}
    fragment = is_htmx() and request.headers.get("HX-Target") == "batch-tasks"
    response = make_response(render_template("assignments/_batch_tasks.html" if fragment else "assignments/batch.html",
                                             **context))
    response.headers["Vary"] = "HX-Request"
    return tidy_history(response) if fragment else response  # the tab shown, clicked again: no second entry


@bp.route("/assignments/<int:batch_id>/status")
@part_of(lambda batch_id: url_for("assignments.batch", batch_id=batch_id))
def batch_status(batch_id: int):
    """The progress panel; polled every 2 s while the job runs, then 286 stops the polling.

    Each poll while it runs also refreshes the list of devices (batchProgress), so Apple's answers
    show device by device as the job stores them, not only when it ends."""
    batch = _batch_or_404(batch_id)
    context = _batch_context(batch)
    response = make_response(render_template("assignments/_batch_status.html", **context))
    if context["running"]:
        return hx_trigger(response, batchProgress=True)
    response.status_code = STOP_POLLING
    return hx_trigger(response, batchFinished=True)


@bp.route("/assignments/<int:batch_id>/retry", methods=["GET", "POST"])
def retry_batch(batch_id: int):
    """Retry now for one request (with Apple's wait not over: a warning first)."""
    batch = _batch_or_404(batch_id)
    form = ConfirmForm()
    count = queries.queue_count(batch_id=batch.id)
    from ..apple_link import status_of  # imported here: apple_link imports the servers blueprint

    server = db.session.get(ManagedServer, batch.server_id)
    token = status_of(server)
    blocked = None if token.can_sync else (
        f"{server.name}'s token status is {token.label}: {token.remedy} Until then nothing can be sent to Apple; "
        "the devices of this request are sent as soon as a token check (Check now) succeeds.")
    if form.validate_on_submit():
        if blocked:
            return form_done(blocked, url_for("assignments.batch", batch_id=batch.id), category="warning")
        sent = retry_now(batch, actor=current_user.username)
        if sent is None:
            return form_done(f"Nothing to retry in request #{batch.id}: no device of it is waiting.",
                             url_for("assignments.batch", batch_id=batch.id), "assignmentsChanged", category="info")
        return form_done(f"Sending {sent:,} device{'s' if sent != 1 else ''} of request #{batch.id} again now.",
                         url_for("assignments.batch", batch_id=batch.id), "assignmentsChanged", "batchRetried",
                         category="warning")
    return render_form("assignments/_retry_form.html", "Retry now", form=form, count=count, batch=batch,
                       action=url_for("assignments.retry_batch", batch_id=batch.id),
                       interrupted=batch.status == "interrupted", blocked=blocked,
                       renew_url=url_for("servers.renew", server_id=server.id) if token.needs_renewal else None)


@bp.route("/assignments/retries")
def retries():
    """The retry queue: failed and throttled devices, and devices held after a failed call."""
    profile = _queue_profile()  # not an id: the whole queue, as an unknown id
    page = queries.retry_queue(profile.id if profile else None, queries.page_number(request.args.get("page")))
    sending = queries.sending_count(profile.id if profile else None)
    response = make_response(render_template("assignments/retries.html", page=page, profile=profile,
                                             form=ConfirmForm(), sending=sending, servers=_server_names(page.items)))
    if request.headers.get("HX-Trigger") == "retry-table" and not page.total and not sending:
        response.status_code = STOP_POLLING  # the table's own poll, and nothing is left to refresh
    return response


@bp.route("/assignments/retries/retry", methods=["GET", "POST"])
def retry_all():
    """Retry now for the whole queue, or for the queue shown for one profile (?profile=), a warning first."""
    profile = _queue_profile()
    form = ConfirmForm()
    held, blocked_servers = _held_for_token(profile)
    count = queries.queue_count(profile.id if profile else None, except_servers=blocked_servers)
    queue_url = url_for("assignments.retries", profile=profile.id if profile else None)
    if form.validate_on_submit():
        sent = retry_now(None, actor=current_user.username, profile=profile, except_servers=blocked_servers)
        if sent is None and held:
            return form_done("Nothing was sent. " + " ".join(held), queue_url, "assignmentsChanged",
                             category="warning")
        if sent is None:
            return form_done(f"Nothing to retry: {queue_words(profile)} is empty.", queue_url,
                             "assignmentsChanged", category="info")
        return form_done(f"Sending {sent:,} device{'s' if sent != 1 else ''} of {queue_words(profile)} again now.",
                         queue_url, "assignmentsChanged", category="warning")
    return render_form("assignments/_retry_form.html", "Retry now", form=form, count=count, batch=None,
                       action=url_for("assignments.retry_all", profile=profile.id if profile else None),
                       interrupted=False, queue=queue_words(profile), queue_url=queue_url, held=held)


def _held_for_token(profile) -> tuple[list[str], list[int]]:
    """Why some devices of the queue go nowhere now (their server's token), and those servers' ids: Retry now of one
    request refuses; the whole queue sends the others, and says these stay held until the token works again."""
    from ..apple_link import status_of  # imported here: apple_link imports the servers blueprint

    held, server_ids = [], []
    for server_id in queue_server_ids(profile):
        server = db.session.get(ManagedServer, server_id)
        token = status_of(server)
        if not token.can_sync:
            held.append(f"The devices of {server.name} stay held: its token status is {token.label}. {token.remedy}")
            server_ids.append(server_id)
    return held, server_ids


def _server_names(items) -> dict[int, str]:
    """The managed server of each request on the page, by id: a release has no profile to tell them apart."""
    ids = {batch.server_id for _, batch, _ in items}
    if not ids:
        return {}
    return dict(db.session.execute(select(ManagedServer.id, ManagedServer.name).where(ManagedServer.id.in_(ids))).all())


def _queue_profile() -> EnrollmentProfile | None:
    """The profile the retry queue is shown for (?profile=); anything else is the whole queue."""
    profile_id = request.args.get("profile", type=small_int)
    return db.session.get(EnrollmentProfile, profile_id) if profile_id else None


@bp.route("/assignments/tasks/<int:task_id>/stop", methods=["GET", "POST"])
def stop_task(task_id: int):
    """Stop retrying one device of the retry queue, after saying what that means."""
    task = db.get_or_404(AssignmentTask, task_id)
    batch = _batch_or_404(task.batch_id)
    form = ConfirmForm()
    queue_url = url_for("assignments.retries")
    waiting = db.session.execute(select(AssignmentTask.id).where(
        AssignmentTask.id == task.id, stoppable_condition())).first() is not None
    if form.validate_on_submit():
        if stop_retrying(task, current_user.username):
            db.session.commit()
            return form_done(f"{task.serial_number} is no longer retried.", queue_url, "assignmentsChanged")
        waiting = False
    status = 422 if request.method == "POST" and not waiting else 200
    return render_form("assignments/_stop_form.html", f"Stop retrying {task.serial_number}", status=status, form=form,
                       task=task, batch=batch, waiting=waiting, queue_url=queue_url)
