"""Sending a batch to Apple, at most 1000 serials per call, with each device's answer stored.

Each chunk is claimed (tasks → 'sending', attempts + 1) and committed before the call, and its
results are committed right after it with a handful of bulk UPDATEs, so a killed worker loses at
most the answer to one call: the tasks it leaves in 'sending' are sent again by the next run of
the batch (started by the periodic retry job when the batch's RQ job is dead). Sending an
assignment twice is harmless at Apple. Whole-call errors keep the tasks queued with a retry time
and a plain reason; nothing is ever dropped.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

from sqlalchemy import or_, select, update

from ..activity.record import record_activity
from ..apple import errors as apple_errors
from ..apple_link import client_for, note_apple_error, note_apple_success, status_of
from ..extensions import db
from ..models import AssignmentBatch, AssignmentTask, Device, EnrollmentProfile, ManagedServer
from ..models.assignment import (ASSIGN, DONE, FAILED, NOT_ACCESSIBLE, QUEUED, SENDING, SUPERSEDED,
                                 THROTTLED)
from ..models.profile import CONFIGURED
from . import timing
from .services import ACTION_WORDS, refresh_counts

log = logging.getLogger(__name__)
NO_UPDATE = {"synchronize_session": False}
STATE_OF = {"SUCCESS": DONE, "NOT_ACCESSIBLE": NOT_ACCESSIBLE, "FAILED": FAILED, "THROTTLED": THROTTLED}


def run_batch(batch_id: int, client=None) -> dict:
    """Send the batch's queued tasks to Apple (a job body; safe to run twice)."""
    batch = db.session.get(AssignmentBatch, batch_id)
    if batch is None:
        return {"skipped": "batch deleted"}
    server = db.session.get(ManagedServer, batch.server_id)
    now = timing.now()
    resumed = _requeue_interrupted(batch, now)
    again = batch.finished_at is not None or resumed > 0  # a retry or a resumed run, not the first
    batch.status, batch.error_message = "running", None
    batch.started_at = batch.started_at or now
    db.session.commit()
    sent: Counter = Counter()
    try:
        uuid = _ready_to_send(batch, server)
        if uuid is not False:
            client = client or client_for(server)
            while (chunk := _claim_chunk(batch)):
                answers = _call(client, batch, uuid, [serial for _, serial in chunk])
                sent.update(_store_answers(batch, chunk, answers, uuid))
                refresh_counts(batch)
                db.session.commit()
            if sent:
                note_apple_success(server)
    except apple_errors.AppleError as exc:
        db.session.rollback()
        _hold_after_error(batch, server, exc)
    except Exception:
        db.session.rollback()
        batch.status = "interrupted"
        batch.error_message = ("Stopped on an unexpected error; the devices not answered yet are sent again "
                               "automatically within a few minutes (or use Retry now).")
        db.session.commit()
        raise  # RQ's failed registry keeps the traceback
    _finish(batch, sent, again)
    return {"batch": batch.id, "status": batch.status, **dict(sent)}


def _requeue_interrupted(batch: AssignmentBatch, now) -> int:
    """Tasks an interrupted run left in 'sending': Apple's answer is unknown, so send them again."""
    return db.session.execute(update(AssignmentTask).where(
        AssignmentTask.batch_id == batch.id, AssignmentTask.state == SENDING).values(
        state=QUEUED, retry_at=None, updated_at=now,
        detail="Interrupted while being sent to Apple; sent again."), execution_options=NO_UPDATE).rowcount


def _ready_to_send(batch: AssignmentBatch, server: ManagedServer):
    """The profile UUID to send (None for a removal), or False after holding/closing the tasks."""
    status = status_of(server)
    if not status.can_sync:
        _hold(batch, timing.TOKEN_WAIT, f"Waiting for the server's token ({status.label}): {status.remedy}")
        return False
    if batch.action != ASSIGN:
        return None
    profile = db.session.get(EnrollmentProfile, batch.profile_id) if batch.profile_id else None
    if profile is None:
        db.session.execute(update(AssignmentTask).where(
            AssignmentTask.batch_id == batch.id, AssignmentTask.state == QUEUED).values(
            state=SUPERSEDED, retry_at=None, updated_at=timing.now(),
            detail="The profile was deleted before Apple assigned it."), execution_options=NO_UPDATE)
        return False
    if profile.status != CONFIGURED or not profile.apple_profile_uuid:
        _hold(batch, timing.PROFILE_WAIT, f"Waiting for the profile “{profile.name}” to be configured at Apple.")
        return False
    return profile.apple_profile_uuid  # the current UUID: a re-configure since the request is honoured


def _claim_chunk(batch: AssignmentBatch) -> list[tuple[int, str]]:
    """The next ≤1000 due queued tasks, marked 'sending' and committed before Apple is called."""
    now = timing.now()
    rows = db.session.execute(
        select(AssignmentTask.id, AssignmentTask.serial_number).where(
            AssignmentTask.batch_id == batch.id, AssignmentTask.state == QUEUED,
            or_(AssignmentTask.retry_at.is_(None), AssignmentTask.retry_at <= now))
        .order_by(AssignmentTask.id).limit(timing.CHUNK_SIZE)).all()
    if rows:
        db.session.execute(update(AssignmentTask).where(AssignmentTask.id.in_([r[0] for r in rows])).values(
            state=SENDING, attempts=AssignmentTask.attempts + 1, updated_at=now), execution_options=NO_UPDATE)
        db.session.commit()
    return [(r[0], r[1]) for r in rows]


def _call(client, batch: AssignmentBatch, uuid: str | None, serials: list[str]) -> tuple[dict, int | None]:
    """One call to Apple for ≤1000 serials: ({serial: answer}, retry_after_seconds)."""
    assert len(serials) <= timing.CHUNK_SIZE
    if batch.action == ASSIGN:
        result = client.assign_profile(uuid, serials)
        return result.devices, result.retry_after_seconds
    return client.remove_profile(serials), None


def _store_answers(batch: AssignmentBatch, chunk, answers, uuid) -> Counter:
    """Write each device's answer with one UPDATE per kind of answer (tasks and devices)."""
    devices, retry_after = answers
    now = timing.now()
    groups: dict[str, list[int]] = {}
    for task_id, serial in chunk:
        groups.setdefault(str(devices.get(serial) or "MISSING").upper(), []).append(task_id)
    counts = Counter()
    for answer, ids in groups.items():
        state = STATE_OF.get(answer, FAILED)
        values, device_values = _outcome(batch, state, answer, now, retry_after, uuid)
        still_ours = [AssignmentTask.id.in_(ids), AssignmentTask.state == SENDING]  # not superseded meanwhile
        db.session.execute(update(Device).where(Device.id.in_(
            select(AssignmentTask.device_id).where(*still_ours).scalar_subquery())).values(**device_values),
            execution_options=NO_UPDATE)
        db.session.execute(update(AssignmentTask).where(*still_ours).values(**values), execution_options=NO_UPDATE)
        counts[state] += len(ids)
    return counts


def _outcome(batch, state, answer, now, retry_after, uuid) -> tuple[dict, dict]:
    """(task values, device values) for one kind of answer."""
    assign = batch.action == ASSIGN
    task = {"state": state, "result": answer if answer in STATE_OF else "FAILED", "updated_at": now,
            "retry_at": None}
    device = {"assignment_state": state if state != DONE else ("assigned" if assign else None),
              "assignment_at": now}
    if state == DONE and assign:
        profile = _profile(batch)
        name = f"the profile “{profile.name}”" if profile else "the profile"
        task["detail"] = f"Apple assigned {name}; the device gets it at its next setup."
        device.update(profile_id=batch.profile_id, profile_uuid=uuid, profile_status="assigned",
                      profile_assign_time=now, profile_push_time=None)
    elif state == DONE:
        task["detail"] = "Apple removed the profile from the device."
        device.update(profile_id=None, profile_status="removed")
    elif state == NOT_ACCESSIBLE:
        task["detail"] = ("Apple: the device is not assigned to this MDM server in Apple Business Manager. "
                          "Not retried.")
    elif state == THROTTLED:
        wait = int(retry_after or timing.THROTTLED_WAIT)
        task.update(retry_at=now + timedelta(seconds=wait),
                    detail=f"Apple throttled this device and asked to wait {wait} s; retried after that.")
    else:
        task.update(retry_at=now + timing.FAILED_WAIT,
                    detail=("Apple did not answer for this device" if answer not in STATE_OF
                            else "Apple answered FAILED") + "; retried after 24 hours, as Apple advises.")
    return task, device


def _hold_after_error(batch: AssignmentBatch, server: ManagedServer, exc: apple_errors.AppleError) -> None:
    """A whole call failed: keep every unsent task queued, with when and why it is sent again."""
    if isinstance(exc, apple_errors.Throttled):
        _hold(batch, timedelta(seconds=exc.retry_after), f"Apple is limiting requests: {exc.message}")
        return
    if isinstance(exc, apple_errors.TransientError):
        attempts = db.session.execute(select(AssignmentTask.attempts).where(
            AssignmentTask.batch_id == batch.id, AssignmentTask.state == SENDING).limit(1)).scalar()
        wait = timing.call_backoff(attempts or 1)
        _hold(batch, timedelta(seconds=wait), f"{exc.message} Sent again in {wait // 60} min.")
        return
    changed = note_apple_error(server, exc)
    wait = timing.TOKEN_WAIT if changed else timedelta(hours=1)
    _hold(batch, wait, f"Apple refused the call: {exc.message}")


def _hold(batch: AssignmentBatch, wait: timedelta, reason: str) -> None:
    now = timing.now()
    db.session.execute(update(AssignmentTask).where(
        AssignmentTask.batch_id == batch.id, AssignmentTask.state.in_((QUEUED, SENDING))).values(
        state=QUEUED, retry_at=now + wait, detail=reason, updated_at=now), execution_options=NO_UPDATE)
    batch.error_message = reason
    db.session.commit()


def _finish(batch: AssignmentBatch, sent: Counter, again: bool) -> None:
    counts = refresh_counts(batch)
    waiting = counts.get(QUEUED, 0) + counts.get(SENDING, 0)
    batch.status = "waiting" if waiting else "finished"
    batch.finished_at = timing.now()
    if sent:
        _record_summary(batch, sent, again, waiting)
    db.session.commit()


def _profile(batch: AssignmentBatch) -> EnrollmentProfile | None:
    return db.session.get(EnrollmentProfile, batch.profile_id) if batch.profile_id else None


def _record_summary(batch: AssignmentBatch, sent: Counter, again: bool, waiting: int) -> None:
    words = ACTION_WORDS[batch.action]
    done_word = "assigned" if batch.action == ASSIGN else "removed"
    parts = [f"{sent[DONE]:,} {done_word}"]
    if sent[NOT_ACCESSIBLE]:
        parts.append(f"{sent[NOT_ACCESSIBLE]:,} not accessible")
    if sent[FAILED]:
        parts.append(f"{sent[FAILED]:,} failed (retried in 24 h)")
    if sent[THROTTLED]:
        parts.append(f"{sent[THROTTLED]:,} throttled (retried after Apple's wait)")
    if waiting:
        parts.append(f"{waiting:,} waiting to be sent")
    profile = _profile(batch)
    target = profile or db.session.get(ManagedServer, batch.server_id)
    name = f" “{profile.name}”" if profile else ""
    again = " (retry)" if again else ""
    level = "info" if sent[DONE] == sent.total() and not waiting else "warning"
    record_activity(f"assignment.{batch.action}_finished", target, actor="system", level=level,
                    summary=f"{words}{name}{again}, request #{batch.id}: " + ", ".join(parts),
                    details={"batch_id": batch.id, **{k: v for k, v in sent.items()}})
