"""Add Devices / Remove Devices / Release Devices requests: one batch, one task per device, then the job that calls Apple.

A request never calls Apple itself (that happens in jobs.assignments.run_batch). Tasks are created
with INSERT … SELECT straight from the device table, so "all 10,000 devices matching the filter"
never loads a device into Python. A newer request for a device supersedes its older open tasks.
"""
from __future__ import annotations

from sqlalchemy import and_, exists, func, insert, literal, or_, select, update
from sqlalchemy.orm import aliased
from sqlalchemy.types import Integer, String

from ..activity.record import record_activity
from ..device_locks import lock_assignment_requests, lock_device_writes
from ..extensions import db
from ..models import AssignmentBatch, AssignmentTask, Device, EnrollmentProfile, ManagedServer
from ..models.assignment import (ACTION_WORDS, ACTIONS, ASSIGN, DONE, FAILED, NOT_ACCESSIBLE, NOT_HELD, QUEUED,
                                 RELEASE, RETRY_STATES, SENDING, SUPERSEDED, THROTTLED)
from ..models.profile import CHANGED, CONFIGURED
from ..models.types import UTCDateTime
from ..queue import enqueue, new_job_id
from . import timing

OPEN_STATES = (QUEUED, SENDING, FAILED, THROTTLED)  # a newer request replaces these
# The reason shown for a task held for Apple's wait on its device (an earlier request was answered FAILED
# or THROTTLED). Words only: a later request finds such holds by AssignmentTask.held_for_apple_wait.
APPLE_WAIT_HOLD = "Apple asked to wait before this device is sent again"
ID_CHUNK = 500  # ids per IN (...) list: far below every database's bound-parameter limit


def check_assignable(profile: EnrollmentProfile | None) -> None:
    """Raise ValueError (plain words) unless Apple knows the profile, so devices can get it."""
    if profile is None:
        raise ValueError("The enrollment profile no longer exists.")
    if profile.status == CHANGED and profile.apple_profile_uuid:
        raise ValueError(f"The profile “{profile.name}” changed since it was configured at Apple (Changed — configure "
                         "again): use Configure profile, then Add Devices, so that the devices get it as it is now.")
    if profile.status != CONFIGURED or not profile.apple_profile_uuid:
        raise ValueError(f"The profile “{profile.name}” is not configured at Apple yet: "
                         "use Configure profile first, then Add Devices.")


def request_assignment(server: ManagedServer, profile: EnrollmentProfile | None, device_ids, *,
                       action: str = ASSIGN, origin: str = "manual", actor: str | None = None) -> AssignmentBatch:
    """Assign (or remove) the profile for these devices of `server`: batch + tasks, commit, enqueue.

    Devices of another server or no longer assigned to it are left out. Raises ValueError with a
    plain message when the profile is not configured (assign) or no device is left.
    """
    ids = sorted({int(i) for i in device_ids})
    chunks = [[Device.id.in_(ids[i:i + ID_CHUNK])] for i in range(0, len(ids), ID_CHUNK)]
    gone = (f"None of the ticked devices is still assigned to {server.name}: Apple no longer assigns them to it "
            "(see its latest synchronization). Tick other devices.") if ids else None
    return _create(server, profile, chunks, action, origin, actor, empty_message=gone)


def request_matching(server: ManagedServer, profile: EnrollmentProfile | None, conditions: list, *,
                     action: str = ASSIGN, origin: str = "manual", actor: str | None = None) -> AssignmentBatch:
    """Like request_assignment, for every current device of `server` matching SQL `conditions`."""
    return _create(server, profile, [list(conditions)], action, origin, actor)


def reassign_profile_devices(profile: EnrollmentProfile, actor: str | None = None) -> AssignmentBatch | None:
    """Re-assign the devices associated with `profile` (after a re-configure gave it a new UUID).

    Returns None when the profile has no associated devices or is not configured.
    """
    if profile.status != CONFIGURED or not profile.apple_profile_uuid:
        return None
    conditions = [Device.profile_id == profile.id]
    if not count_devices(profile.server_id, conditions):
        return None  # checked first: the caller's session is never rolled back for nothing to do
    server = db.session.get(ManagedServer, profile.server_id)
    return _create(server, profile, [conditions], ASSIGN, "reassign", actor)


def count_devices(server_id: int, conditions: list) -> int:
    """How many current devices of the server match the conditions."""
    return db.session.execute(select(func.count()).select_from(Device).where(
        Device.server_id == server_id, Device.removed_at.is_(None), *conditions)).scalar_one()


def _create(server, profile, condition_sets, action, origin, actor, empty_message=None) -> AssignmentBatch:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if action == ASSIGN:
        check_assignable(profile)
    lock_assignment_requests(server.id)  # a request made a moment ago is seen, and superseded
    now = timing.now()
    batch = AssignmentBatch(server_id=server.id, profile_id=profile.id if profile else None, action=action,
                            origin=origin, actor=actor or _current_actor(), status="queued",
                            job_id=new_job_id(), created_at=now)
    db.session.add(batch)
    db.session.flush()
    for conditions in condition_sets:
        # In the device table's order, not the serial numbers' (the order of the index the query would use): the
        # job sends tasks in id order, so each call's answers then rewrite neighbouring device rows, a few hundred
        # pages per 1,000 devices rather than most of the table (bench/assign.py on SQLite: 1.6 → 1.1).
        rows = select(literal(batch.id, Integer), Device.id, Device.serial_number, literal(QUEUED, String),
                      literal(0, Integer), literal(now, UTCDateTime)).where(
            Device.server_id == server.id, Device.removed_at.is_(None), *conditions).order_by(Device.id)
        db.session.execute(insert(AssignmentTask).from_select(
            ["batch_id", "device_id", "serial_number", "state", "attempts", "updated_at"], rows))
    batch.total = db.session.execute(select(func.count()).select_from(AssignmentTask)
                                     .where(AssignmentTask.batch_id == batch.id)).scalar_one()
    if not batch.total:
        db.session.rollback()
        raise ValueError(empty_message or (
            "No device was selected: tick the devices (or all devices matching the filter) first."
            if action == ASSIGN else "No device associated with this profile was selected."))
    # A job storing answers of an older request holds the server's device lock and some of its task
    # rows; superseding those tasks first, then counting its batch, could wait for the job while the
    # job waits for rows locked here (a deadlock PostgreSQL would end by failing one of the two).
    # Taking the job's lock first makes them take turns.
    lock_device_writes(server.id)
    batch.held_for_apple = _keep_apple_waits(batch, now)
    _supersede_older(batch, now)  # the devices show as queued from their tasks (devices/pending.py)
    words, devices = ACTION_WORDS[action], f"{batch.total:,} device{'s' if batch.total != 1 else ''}"
    label = f"“{profile.name}”" if profile else "its profile"
    what = (f"{devices} of {server.name} from Apple Business Manager" if action == RELEASE
            else f"{devices} {'to' if action == ASSIGN else 'from'} {label}")
    record_activity(f"assignment.{action}_requested", profile or server, actor=batch.actor,
                    level="warning" if action == RELEASE else "info",
                    summary=f"{words}: {what} requested ({origin})", details={"batch_id": batch.id, "origin": origin})
    db.session.commit()
    enqueue("jobs.assignments.run_batch", batch.id, job_id=batch.job_id)
    return batch


def _batch_devices(batch_id: int):
    return select(AssignmentTask.device_id).where(AssignmentTask.batch_id == batch_id).scalar_subquery()


def _keep_apple_waits(batch: AssignmentBatch, now) -> int:
    """Devices Apple answered FAILED or THROTTLED whose wait is not over keep it in this request:
    a new Add Devices (or Remove Devices) of them is no way around Apple's retry_after_seconds or its
    24 hours after FAILED (a release, only an earlier release's). They wait in the retry queue, where Retry now (with its warning) sends them
    sooner. Returns how many devices of the request wait."""
    older = aliased(AssignmentTask)
    waits = or_(older.state.in_(RETRY_STATES),
                and_(older.state == QUEUED, older.held_for_apple_wait))
    if batch.action == RELEASE:
        # A release is another call (disown), which Apple's wait on profile calls does not hold back: only an
        # earlier release's wait does. (A FAILED Add Devices held the confirmed release for 24 hours.)
        waits = and_(waits, older.batch_id.in_(select(AssignmentBatch.id).where(
            AssignmentBatch.action == RELEASE, AssignmentBatch.server_id == batch.server_id)))
    # Usually no device of any server waits: one look at the (state, retry_at) index then spares
    # the request a correlated lookup per device (a fifth of the time of "Select all 10,000").
    if db.session.execute(select(older.id).where(older.retry_at > now, waits).limit(1)).first() is None:
        return 0
    waiting = and_(older.batch_id != batch.id, older.device_id == AssignmentTask.device_id, older.retry_at > now, waits)
    return db.session.execute(update(AssignmentTask).where(
        AssignmentTask.batch_id == batch.id, exists().where(waiting)).values(
        retry_at=select(func.max(older.retry_at)).where(waiting).scalar_subquery(), updated_at=now,
        held_for_apple_wait=True,
        detail=f"{APPLE_WAIT_HOLD}: an earlier request was answered FAILED or THROTTLED. Sent when that wait "
               "is over (Retry now sends it sooner)."), execution_options={"synchronize_session": False}).rowcount


def _supersede_older(batch: AssignmentBatch, now) -> None:
    """Older open tasks of the same devices are replaced by this request (one action per device). A release the admin
    confirmed by typing RELEASE is replaced by another release only: an Add Devices or Remove Devices made meanwhile
    goes to Apple after it (and finds the device released)."""
    condition = [AssignmentTask.batch_id != batch.id, AssignmentTask.state.in_(OPEN_STATES),
                 AssignmentTask.device_id.in_(_batch_devices(batch.id))]
    if batch.action != RELEASE:
        condition.append(AssignmentTask.batch_id.not_in(select(AssignmentBatch.id).where(
            AssignmentBatch.action == RELEASE, AssignmentBatch.server_id == batch.server_id)))
    older = list(db.session.execute(select(AssignmentTask.batch_id).where(*condition).distinct()).scalars())
    if not older:
        return
    db.session.execute(update(AssignmentTask).where(*condition).values(
        state=SUPERSEDED, retry_at=None, **NOT_HELD, updated_at=now,
        detail=f"Replaced by a newer request (#{batch.id}) before Apple accepted this one."),
        execution_options={"synchronize_session": False})
    for batch_id in older:
        refresh_counts(db.session.get(AssignmentBatch, batch_id))


def _unsent_of_profile(profile_id: int) -> list:
    """A profile's Add Devices tasks in the retry queue (failed, throttled, or held queued with a wait), of requests
    whose job is not queued or running: such a job sends its queued tasks, which are not marked while in flight,
    and closes them itself when it finds the profile gone (runner._close_for_deleted_profile)."""
    return [or_(AssignmentTask.state.in_(RETRY_STATES),
                and_(AssignmentTask.state == QUEUED, AssignmentTask.retry_at.is_not(None))),
            AssignmentTask.batch_id.in_(select(AssignmentBatch.id).where(
                AssignmentBatch.profile_id == profile_id, AssignmentBatch.action == ASSIGN,
                AssignmentBatch.status.not_in(("queued", "running"))))]


def unsent_for_profile(profile_id: int) -> int:
    """Devices an Add Devices of this profile has not given it yet and would still retry (see _unsent_of_profile)."""
    return db.session.execute(select(func.count()).select_from(AssignmentTask).where(
        *_unsent_of_profile(profile_id))).scalar_one()


def in_flight_for_profile(profile_id: int) -> list[tuple[int, int]]:
    """The profile's Add Devices requests whose job is queued or sending: [(request id, devices not answered yet)].
    Deleting the profile meanwhile stops what is not sent yet, but a call already at Apple is assigned all the same."""
    return [(batch_id, count) for batch_id, count in db.session.execute(
        select(AssignmentTask.batch_id, func.count()).join(AssignmentBatch, AssignmentBatch.id == AssignmentTask.batch_id)
        .where(AssignmentBatch.profile_id == profile_id, AssignmentBatch.action == ASSIGN,
               AssignmentBatch.status.in_(("queued", "running")), AssignmentTask.state.in_((QUEUED, SENDING)))
        .group_by(AssignmentTask.batch_id).order_by(AssignmentTask.batch_id)).all()]


def close_unsent_for_profile(profile_id: int) -> int:
    """Before the profile is deleted: its devices in the retry queue are closed (Superseded) at once, instead of
    staying there, offered to Retry now, until a job finds the profile gone."""
    condition = _unsent_of_profile(profile_id)
    batch_ids = list(db.session.execute(select(AssignmentTask.batch_id).where(*condition).distinct()).scalars())
    if not batch_ids:
        return 0
    closed = db.session.execute(update(AssignmentTask).where(*condition).values(
        state=SUPERSEDED, retry_at=None, **NOT_HELD, updated_at=timing.now(),
        detail="Not sent: the profile was deleted before Apple assigned it."),
        execution_options={"synchronize_session": False}).rowcount
    for batch_id in batch_ids:
        refresh_counts(db.session.get(AssignmentBatch, batch_id))
    return closed


def refresh_counts(batch: AssignmentBatch) -> dict[str, int]:
    """Store the batch's result counters from its tasks; returns {state: count}."""
    counts = dict(db.session.execute(select(AssignmentTask.state, func.count()).where(
        AssignmentTask.batch_id == batch.id).group_by(AssignmentTask.state)).all())
    batch.total = sum(counts.values())
    batch.succeeded = counts.get(DONE, 0)
    batch.not_accessible = counts.get(NOT_ACCESSIBLE, 0)
    batch.failed = counts.get(FAILED, 0)
    batch.throttled = counts.get(THROTTLED, 0)
    if batch.status == "waiting" and not counts.get(QUEUED) and not counts.get(SENDING):
        batch.status = "finished"
        batch.error_message = None  # why its devices were held: none is any more
    return counts


def _current_actor() -> str:
    from flask import has_request_context
    from flask_login import current_user

    if has_request_context() and current_user.is_authenticated:
        return current_user.username
    return "system"
