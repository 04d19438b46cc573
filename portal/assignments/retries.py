"""The retry queue: failed and throttled devices, and batches whose job died with work left.

`retry_due` runs every minute (rq-scheduler, see jobs/schedule.py): it puts the devices whose
wait is over back in their batch's queue and starts the batch job again wherever no live job
will pick them up, which also resumes a batch whose worker was killed mid-way. `retry_now` is
the admin's Retry now: the same, without waiting.
"""
from __future__ import annotations

from sqlalchemy import and_, or_, select, update

from ..activity.record import record_activity
from ..device_locks import lock_device_writes
from ..extensions import db
from ..models import AssignmentBatch, AssignmentTask
from ..models.assignment import NOT_HELD, QUEUED, RETRY_STATES, SENDING, SUPERSEDED
from ..queue import enqueue, fetch_job, job_alive, new_job_id
from . import timing

STOPPED_DETAIL = "Not retried:"  # how a task closed by Stop retrying begins its detail (counted on the request's page)
REMOVED_DETAIL = "Not sent:"  # how a task closed because its device left the server begins its detail

NO_UPDATE = {"synchronize_session": False}
# How the runner's reason starts when it holds devices because of the server's token (runner.py). Words
# only: release_token_holds() finds such tasks by AssignmentTask.held_for_token.
TOKEN_HOLD = "Waiting for the server's token"
# How its reasons start when it holds devices until their profile is configured (runner.py). Words only as well:
# release_profile_holds() finds such tasks by AssignmentTask.held_for_profile.
PROFILE_HOLDS = ("Waiting for the profile ", "Apple does not know the profile ")


def in_queue_condition():
    """Tasks in the visible retry queue: failed, throttled, or held queued after a failed call."""
    return or_(AssignmentTask.state.in_(RETRY_STATES),
               and_(AssignmentTask.state == QUEUED, AssignmentTask.retry_at.is_not(None)))


def due_condition(now):
    """Failed and throttled tasks whose wait is over."""
    return and_(AssignmentTask.state.in_(RETRY_STATES), AssignmentTask.retry_at <= now)


def retry_due(now=None) -> dict:
    """Periodic: re-queue due retries and (re)start every batch that has work and no live job."""
    now = now or timing.now()
    requeued = db.session.execute(update(AssignmentTask).where(due_condition(now)).values(
        state=QUEUED, retry_at=None, **NOT_HELD, updated_at=now), execution_options=NO_UPDATE).rowcount
    db.session.commit()
    started = [batch.id for batch in _batches_with_work(now) if ensure_job(batch, now)]
    db.session.commit()
    return {"requeued": requeued, "started": started}


def retry_now(batch: AssignmentBatch | None = None, actor: str | None = None, *,
              profile=None, except_servers=()) -> int | None:
    """Retry now (the admin accepted the warning): every queued retry of `batch`, of `profile`'s
    requests (the retry queue shown for one profile), or of all batches; never those of the servers
    `except_servers` (whose token cannot be used: they stay held until it works again).

    Returns how many devices were put back, or None when there was nothing to retry (a second tab,
    a queue emptied meanwhile): then nothing is written and no job is started.
    """
    now = timing.now()
    condition = [in_queue_condition()]
    if batch is not None:
        condition.append(AssignmentTask.batch_id == batch.id)
    elif profile is not None:
        condition.append(AssignmentTask.batch_id.in_(
            select(AssignmentBatch.id).where(AssignmentBatch.profile_id == profile.id)))
    if except_servers:
        condition.append(AssignmentTask.batch_id.in_(
            select(AssignmentBatch.id).where(AssignmentBatch.server_id.not_in(list(except_servers)))))
    batch_ids = set(db.session.execute(select(AssignmentTask.batch_id).where(*condition).distinct()).scalars())
    if not batch_ids and not (batch is not None and _has_unsent(batch)):
        return None
    _take_turns_with_jobs(batch_ids)
    count = db.session.execute(update(AssignmentTask).where(*condition).values(
        state=QUEUED, retry_at=None, **NOT_HELD, updated_at=now), execution_options=NO_UPDATE).rowcount
    if batch is not None:
        batch_ids.add(batch.id)  # also resumes an interrupted batch (tasks left queued or sending)
    for batch_id in sorted(batch_ids):
        ensure_job(db.session.get(AssignmentBatch, batch_id), now, force=True)
    where = f"request #{batch.id}" if batch is not None else queue_words(profile)
    target = _profile(batch) if batch is not None and batch.profile_id else profile
    record_activity("assignment.retry_now", target, actor=actor,
                    level="warning", summary=f"Retry now: {count:,} device{'s' if count != 1 else ''} of {where} "
                                             "queued to be sent again before Apple's wait was over (the request's "
                                             "page has what Apple answers)",
                    details={"batches": sorted(batch_ids)})
    db.session.commit()
    return count


def queue_server_ids(profile=None) -> list[int]:
    """The managed servers with devices in the retry queue (of `profile`'s requests), in id order."""
    batches = select(AssignmentTask.batch_id).where(in_queue_condition())
    query = select(AssignmentBatch.server_id).where(AssignmentBatch.id.in_(batches))
    if profile is not None:
        query = query.where(AssignmentBatch.profile_id == profile.id)
    return sorted(set(db.session.execute(query.distinct()).scalars()))


def queue_words(profile=None) -> str:
    """"the retry queue", or "the retry queue of “Sales”" when it is shown for one profile."""
    return f"the retry queue of “{profile.name}”" if profile is not None else "the retry queue"


def release_token_holds(server_id: int) -> int:
    """The server's token works again (a token check succeeded): send the devices held for it now
    instead of at the end of their wait. Returns how many were released."""
    return _release_holds(AssignmentTask.held_for_token, AssignmentBatch.server_id == server_id, server_id,
                          "The server's token works again: sent now.", TOKEN_HOLD)


def release_profile_holds(profile) -> int:
    """The profile was configured at Apple: send the devices its requests held for that now instead of at the
    end of their wait (a few minutes). Devices waiting for Apple's own retry time on them (FAILED, THROTTLED)
    are not held for the profile, and keep that wait. Returns how many were released (the caller committed
    the profile first: the jobs started here send its new UUID)."""
    return _release_holds(AssignmentTask.held_for_profile, AssignmentBatch.profile_id == profile.id,
                          profile.server_id, f"The profile “{profile.name}” is configured at Apple now: sent now.",
                          PROFILE_HOLDS)


def _release_holds(marker, of_batches, server_id: int, detail: str, reasons) -> int:
    """Queue the tasks held (`marker`) in the batches `of_batches` for now, drop their batches' hold reason (one
    starting with `reasons`: the text shown, not a marker) and start their jobs. Returns how many were released."""
    now = timing.now()
    held = [AssignmentTask.state == QUEUED, AssignmentTask.retry_at > now, marker,
            AssignmentTask.batch_id.in_(select(AssignmentBatch.id).where(of_batches))]
    batch_ids = sorted(set(db.session.execute(select(AssignmentTask.batch_id).where(*held).distinct()).scalars()))
    if not batch_ids:
        return 0
    lock_device_writes(server_id)  # see _take_turns_with_jobs
    count = db.session.execute(update(AssignmentTask).where(*held).values(
        retry_at=None, **NOT_HELD, updated_at=now, detail=detail), execution_options=NO_UPDATE).rowcount
    for batch_id in batch_ids:
        batch = db.session.get(AssignmentBatch, batch_id)
        if batch.error_message and batch.error_message.startswith(reasons):
            batch.error_message = None
        ensure_job(batch, now, force=True)
    db.session.commit()
    return count


def _take_turns_with_jobs(batch_ids) -> None:
    """Wait for the jobs storing answers on these batches' servers (they hold each server's device lock
    and some task rows): updating tasks first could deadlock with them on PostgreSQL. In server id
    order, so that two Retry now of everything wait for each other rather than deadlock."""
    server_ids = db.session.execute(select(AssignmentBatch.server_id).where(
        AssignmentBatch.id.in_(list(batch_ids))).distinct()).scalars()
    for server_id in sorted(server_ids):
        lock_device_writes(server_id)


def _has_unsent(batch: AssignmentBatch) -> bool:
    """Tasks an interrupted run left queued or sending (Retry now resumes them too)."""
    return db.session.execute(select(AssignmentTask.id).where(
        AssignmentTask.batch_id == batch.id, AssignmentTask.state.in_((QUEUED, SENDING))).limit(1)).first() is not None


def _profile(batch: AssignmentBatch):
    from ..models import EnrollmentProfile

    return db.session.get(EnrollmentProfile, batch.profile_id)


def _batches_with_work(now) -> list[AssignmentBatch]:
    ids = db.session.execute(select(AssignmentTask.batch_id).where(or_(
        AssignmentTask.state == SENDING,
        and_(AssignmentTask.state == QUEUED,
             or_(AssignmentTask.retry_at.is_(None), AssignmentTask.retry_at <= now)))).distinct()).scalars()
    return [db.session.get(AssignmentBatch, batch_id) for batch_id in sorted(set(ids))]


def ensure_job(batch: AssignmentBatch | None, now, *, force: bool = False) -> bool:
    """Enqueue the batch job unless a live one will do the work; True if a job was enqueued.

    A batch younger than a couple of minutes without any RQ job is left alone (unless forced):
    its request may be between its commit and its enqueue.
    """
    if batch is None:
        return False
    job = fetch_job(batch.job_id)
    if job_alive(job):
        return False
    if job is None and not force and batch.created_at and batch.created_at > now - timing.NEW_JOB_GRACE \
            and batch.status == "queued":
        return False
    if force:
        batch.status = "queued"  # Retry now, or a token that works again: its page polls until the job is done
    elif batch.status in ("queued", "running"):
        batch.status = "interrupted"  # its job is gone: said so until the new one starts
    batch.job_id = new_job_id()
    db.session.commit()
    enqueue("jobs.assignments.run_batch", batch.id, job_id=batch.job_id)
    return True


def stoppable_condition():
    """Tasks of the retry queue that Stop retrying may close. Not a task held queued in a request whose job is queued
    or running: that job sends it once its wait is over, without marking it while it is at Apple, and would then
    drop Apple's answer for a task closed meanwhile (assigned at Apple, "not retried" here). Failed and throttled
    tasks are never sent as such: the retry pass queues them again first."""
    return or_(AssignmentTask.state.in_(RETRY_STATES),
               and_(AssignmentTask.state == QUEUED, AssignmentTask.retry_at.is_not(None),
                    AssignmentTask.batch_id.in_(select(AssignmentBatch.id).where(
                        AssignmentBatch.status.not_in(("queued", "running"))))))


def stop_retrying(task: AssignmentTask, actor: str) -> bool:
    """Take one device out of the retry queue for good (Stop retrying): its request no longer sends it to Apple.
    Closed as superseded, with who stopped it and Apple's last answer; False when it is no longer waiting (sent
    meanwhile, or answered) or its request's job may be sending it (see stoppable_condition), which changes
    nothing."""
    from .services import refresh_counts  # services imports this module

    last = task.result or "none yet"
    stopped = db.session.execute(update(AssignmentTask).where(
        AssignmentTask.id == task.id, stoppable_condition()).values(
        state=SUPERSEDED, retry_at=None, **NOT_HELD, updated_at=timing.now(),
        detail=f"{STOPPED_DETAIL} {actor} stopped the retries (Apple's last answer: {last})."),
        execution_options={"synchronize_session": False}).rowcount
    if not stopped:
        return False
    batch = db.session.get(AssignmentBatch, task.batch_id)
    refresh_counts(batch)
    record_activity("assignment.retries_stopped", batch, actor=actor,
                    summary=f"Stopped retrying {task.serial_number} of request #{batch.id} "
                            f"(Apple's last answer: {last})", details={"task_id": task.id})
    return True


def close_for_removed_devices(server) -> int:
    """After a synchronization found devices gone from `server` at Apple (moved to another MDM server, released):
    their requests waiting in the retry queue are closed instead of being sent, only for Apple to answer
    NOT_ACCESSIBLE. Closed as superseded with the reason, like Stop retrying (a task the job may be sending is left
    to its answer: see stoppable_condition). Returns how many; the caller commits."""
    from ..models import Device
    from .services import refresh_counts  # services imports this module

    removed = select(Device.id).where(Device.server_id == server.id, Device.removed_at.is_not(None))
    closing = and_(AssignmentTask.device_id.in_(removed), stoppable_condition())
    batch_ids = set(db.session.execute(select(AssignmentTask.batch_id).where(closing).distinct()).scalars())
    if not batch_ids:
        return 0
    closed = db.session.execute(update(AssignmentTask).where(closing).values(
        state=SUPERSEDED, retry_at=None, **NOT_HELD, updated_at=timing.now(),
        detail=f"{REMOVED_DETAIL} the device is no longer assigned to {server.name} at Apple (a synchronization "
               "found it removed), so Apple would only answer NOT_ACCESSIBLE."), execution_options=NO_UPDATE).rowcount
    for batch_id in sorted(batch_ids):
        refresh_counts(db.session.get(AssignmentBatch, batch_id))
    record_activity("assignment.closed_for_removed", server, actor="system",
                    summary=f"{closed:,} device{'s' if closed != 1 else ''} taken out of the retry queue: "
                            f"{'they are' if closed != 1 else 'it is'} no longer assigned to {server.name} at Apple "
                            "(the synchronization found them removed)", details={"batches": sorted(batch_ids)})
    return closed
