"""Sending a batch to Apple, at most 1000 serials per call, with each device's answer stored.

Each chunk of due tasks is read, sent, and its answers stored (attempts + 1) with a handful of
bulk UPDATEs; commits come at least once a second. A killed worker loses at most the answers of
its last second: the tasks it leaves queued or 'sending' are sent again by the next run of the
batch (started by the periodic retry job when the batch's RQ job is dead). Sending an
assignment twice is harmless at Apple. Whole-call errors keep the tasks queued with a retry time
and a plain reason; nothing is ever dropped.
"""
from __future__ import annotations

import logging
import re
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import timedelta

from sqlalchemy import or_, select, update

from ..activity.record import record_activity
from ..apple import errors as apple_errors
from ..apple_link import client_for, note_apple_error, note_apple_success, status_of
from ..device_locks import lock_device_writes
from ..devices.counts import recount
from ..extensions import db
from ..models import AssignmentBatch, AssignmentTask, Device, EnrollmentProfile, ManagedServer
from ..models.assignment import (ACTION_WORDS, ASSIGN, DONE, DONE_WORDS, FAILED, NOT_ACCESSIBLE, NOT_HELD, QUEUED,
                                 RELEASE, SENDING, SUPERSEDED, THROTTLED)
from ..models.profile import CONFIGURED
from ..profiles.services import note_profile_unknown_at_apple
from . import timing
from .retries import PROFILE_HOLDS, TOKEN_HOLD
from .services import refresh_counts
from .turns import Turn, TurnBusy

log = logging.getLogger(__name__)
NO_UPDATE = {"synchronize_session": False}
COMMIT_EVERY_S = 1.0
WAIT_NOTICE_S = 0.5  # Apple slower than this: what is stored is committed before waiting on
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
    held_before = batch.error_message is not None  # a run after a hold: the log heard of that hold already
    batch.status, batch.error_message = "running", None
    batch.started_at = batch.started_at or now
    db.session.commit()
    sent: Counter = Counter()
    turn = None
    try:
        uuid = _ready_to_send(batch, server)
        if uuid is not False:
            turn = Turn(batch.server_id, batch.id)
            if _take_turn(batch, turn):  # it waited: the token or the profile may have changed meanwhile
                uuid = _ready_to_send(batch, server)
        if uuid is not False:
            sent = _send_all(batch, client or client_for(server), uuid, turn)
            if sent:
                note_apple_success(server)
    except apple_errors.AppleError as exc:
        db.session.rollback()
        _hold_after_error(batch, server, exc, uuid)
        if not held_before and batch.error_message:  # the activity log hears of it once, not at every retry
            _record_hold(batch)
    except TurnBusy as exc:
        db.session.rollback()
        _hold(batch, timing.TURN_WAIT, _waiting_for(exc.holder_batch_id) + " Tried again in a minute.")
    except Exception:
        db.session.rollback()
        batch.status = "interrupted"
        batch.error_message = ("Stopped on an unexpected error; the devices not answered yet are sent again "
                               "automatically within a few minutes (or use Retry now).")
        db.session.commit()
        raise  # RQ's failed registry keeps the traceback
    finally:
        if turn is not None:
            turn.release()
    _finish(batch, sent, again)
    return {"batch": batch.id, "status": batch.status, **dict(sent)}


def _take_turn(batch: AssignmentBatch, turn: Turn) -> bool:
    """Wait until no other request of the server is at Apple (see turns.py), saying so meanwhile.
    Returns whether it waited."""
    waited = []

    def show_waiting(holder_batch_id: int | None) -> None:
        waited.append(holder_batch_id)
        batch.status, batch.error_message = "queued", _waiting_for(holder_batch_id)
        db.session.commit()

    turn.take(show_waiting)
    if waited:
        batch.status, batch.error_message = "running", None
        db.session.commit()
    return bool(waited)


def _waiting_for(holder_batch_id: int | None) -> str:
    other = f"request #{holder_batch_id}" if holder_batch_id else "another request"
    return (f"Waiting for {other} of this server to be answered: Apple gets one Add Devices or "
            "Remove Devices request of a server at a time, so that it keeps the newer one.")


def _requeue_interrupted(batch: AssignmentBatch, now) -> int:
    """Tasks an interrupted run left in 'sending': Apple's answer is unknown, so send them again."""
    return db.session.execute(update(AssignmentTask).where(
        AssignmentTask.batch_id == batch.id, AssignmentTask.state == SENDING).values(
        state=QUEUED, retry_at=None, **NOT_HELD, updated_at=now,
        detail="Interrupted while being sent to Apple; sent again."), execution_options=NO_UPDATE).rowcount


def _ready_to_send(batch: AssignmentBatch, server: ManagedServer):
    """The profile UUID to send (None for a removal), or False after holding/closing the tasks."""
    status = status_of(server)
    if not status.can_sync:
        _hold(batch, timing.TOKEN_WAIT, f"{TOKEN_HOLD} ({status.label}): {status.remedy}", for_token=True)
        return False
    if batch.action != ASSIGN:
        return None
    profile = db.session.get(EnrollmentProfile, batch.profile_id) if batch.profile_id else None
    if profile is None:
        _close_for_deleted_profile(batch)
        return False
    if profile.status != CONFIGURED or not profile.apple_profile_uuid:
        _hold(batch, timing.PROFILE_WAIT, f"{PROFILE_HOLDS[0]}“{profile.name}” to be configured at Apple.",
              for_profile=True)
        return False
    return profile.apple_profile_uuid  # the current UUID: a re-configure since the request is honoured


def _close_for_deleted_profile(batch: AssignmentBatch) -> None:
    """The profile is gone: its tasks not sent yet are closed, never sent with its old UUID."""
    db.session.execute(update(AssignmentTask).where(
        AssignmentTask.batch_id == batch.id, AssignmentTask.state == QUEUED).values(
        state=SUPERSEDED, retry_at=None, **NOT_HELD, updated_at=timing.now(),
        detail="The profile was deleted before Apple assigned it."), execution_options=NO_UPDATE)


def _profile_deleted(batch: AssignmentBatch) -> bool:
    """Whether the batch's profile was deleted since the job started (another transaction)."""
    return batch.action == ASSIGN and db.session.execute(select(EnrollmentProfile.id).where(
        EnrollmentProfile.id == batch.profile_id)).first() is None


def _send_all(batch: AssignmentBatch, client, uuid: str | None, turn: Turn) -> Counter:
    """Every due task, one call per ≤1000 serials; returns how many got each answer.

    While Apple answers one call, the previous call's answers are stored and the next chunk is
    read: the database work hides behind the wait for Apple, and the calls follow each other
    without a pause. Commits come at most every COMMIT_EVERY_S seconds (each one writes the
    pages of every device touched, the dominant cost). A crash loses nothing: answers not
    committed yet roll back, and their tasks, still queued, are sent again (assigning or removing
    twice is harmless at Apple).
    """
    sent: Counter = Counter()
    action = batch.action  # plain values for the calling thread: it never touches the session
    reader = _Reader(batch.id)
    last_commit = time.monotonic()
    profile_gone = False
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="apple-assign") as pool:
        chunk = reader.next()
        if not chunk:
            db.session.commit()
            return sent
        pending = pool.submit(_call, client, action, uuid, chunk.serials)
        following = reader.next()
        def commit_while_apple_answers() -> None:
            # Answers stored so far are committed rather than kept in an open transaction while Apple
            # takes its time (on SQLite the only write lock: an admin's edit would wait for Apple too).
            nonlocal last_commit
            db.session.commit()
            last_commit = time.monotonic()

        while chunk:
            try:
                answers = _answer(pending, on_wait=commit_while_apple_answers)
            except Exception:
                _mark_unanswered(chunk)  # the next chunk, read but never sent, stays queued
                db.session.commit()  # keep the answers already stored
                raise
            if following and _profile_deleted(batch):
                following, profile_gone = None, True  # what Apple already answered is still stored
            if following:
                pending = pool.submit(_call, client, action, uuid, following.serials)
            turn.renew()
            counts = _store_answers(batch, chunk, answers, uuid)
            sent.update(counts)
            _count(batch, counts)
            chunk, following = following, (reader.next() if following else None)
            if not chunk and (profile_gone or _profile_deleted(batch)):
                _close_for_deleted_profile(batch)
            elif not chunk:
                # Nothing at Apple any more: tasks put back behind the reader meanwhile (Retry now,
                # a retry time come) are sent by this run rather than left for the periodic job.
                chunk = reader.again()
                if chunk:
                    pending = pool.submit(_call, client, action, uuid, chunk.serials)
                    following = reader.next()
            # Results show in the polled pages at least once a second. And while the last call is at
            # Apple, what came before it is committed: the commit after its answer then writes one
            # chunk's rows, not a second's worth, and the job ends that much sooner.
            last_call_out = chunk is not None and following is None
            if not chunk or last_call_out or time.monotonic() - last_commit >= COMMIT_EVERY_S:
                db.session.commit()
                last_commit = time.monotonic()
    return sent


class _Chunk:
    """≤1000 due tasks of a batch: (id, serial, attempts so far) rows in id order."""

    def __init__(self, batch_id: int, rows):
        self.batch_id, self.rows = batch_id, rows
        self.ids = [task_id for task_id, _, _ in rows]
        self.serials = [serial for _, serial, _ in rows]

    def condition(self, ids: list[int] | None = None, *, superseded_too: bool = False) -> list:
        """Its tasks (or these of them) still queued, i.e. not superseded by a newer request meanwhile.

        By id rather than by the time they were read: a task put back by Retry now while this
        chunk was at Apple must not take an answer it was never sent for, and the clocks of the
        web and worker machines need not agree. `superseded_too`: also those superseded while the
        chunk was at Apple (it read only queued ones, and a superseded task never becomes queued again).
        """
        states = (QUEUED, SUPERSEDED) if superseded_too else (QUEUED,)
        return [AssignmentTask.batch_id == self.batch_id, AssignmentTask.state.in_(states),
                _among(self.ids if ids is None else ids)]


def _among(ids: list[int]):
    """`AssignmentTask.id IN ids` (ascending, no repeats). Tasks are created together, so a chunk's ids, or one answer's,
    usually follow each other without a gap: then the same condition is written as a range, which spares rendering
    and binding a thousand parameters per statement and lets the database read the range of its primary key."""
    if ids[-1] - ids[0] + 1 == len(ids):
        return AssignmentTask.id.between(ids[0], ids[-1])
    return AssignmentTask.id.in_(ids)


class _Reader:
    """The batch's due tasks, a chunk at a time in id order (each read starts after the last one).

    Reading marks nothing: a task counts as sent once its answer is stored (attempts + 1 in the
    same UPDATE), which keeps the one statement before the first call a cheap SELECT.
    """

    def __init__(self, batch_id: int):
        self.batch_id, self.after_id = batch_id, 0

    def again(self) -> _Chunk | None:
        """Start over from the first task: only for when no chunk is at Apple (it is still queued)."""
        self.after_id = 0
        return self.next()

    def next(self) -> _Chunk | None:
        now = timing.now()
        rows = db.session.execute(select(AssignmentTask.id, AssignmentTask.serial_number, AssignmentTask.attempts).where(
            AssignmentTask.batch_id == self.batch_id, AssignmentTask.state == QUEUED,
            AssignmentTask.id > self.after_id,
            or_(AssignmentTask.retry_at.is_(None), AssignmentTask.retry_at <= now))
            .order_by(AssignmentTask.id).limit(timing.CHUNK_SIZE)).all()
        if not rows:
            return None
        chunk = _Chunk(self.batch_id, [(r[0], r[1], r[2]) for r in rows])
        self.after_id = chunk.ids[-1]
        return chunk


def _mark_unanswered(chunk: _Chunk) -> None:
    """The chunk whose call failed: 'sending', as Apple may or may not have acted on it (sent again)."""
    db.session.execute(update(AssignmentTask).where(*chunk.condition()).values(
        state=SENDING, attempts=AssignmentTask.attempts + 1, **NOT_HELD, updated_at=timing.now()),
        execution_options=NO_UPDATE)


def _answer(pending: Future, on_wait) -> tuple[dict, int | None]:
    """The call's answer; `on_wait()` first if Apple has not answered within WAIT_NOTICE_S."""
    if not wait([pending], timeout=WAIT_NOTICE_S).done:
        on_wait()
    return pending.result()


def _call(client, action: str, uuid: str | None, serials: list[str]) -> tuple[dict, int | None]:
    """One call to Apple for ≤1000 serials: ({serial: answer}, retry_after_seconds)."""
    assert len(serials) <= timing.CHUNK_SIZE
    if action == ASSIGN:
        result = client.assign_profile(uuid, serials)
        return result.devices, result.retry_after_seconds
    if action == RELEASE:
        return client.disown_devices(serials), None
    return client.remove_profile(serials), None


def _store_answers(batch: AssignmentBatch, chunk: _Chunk, answers, uuid) -> Counter:
    """Write each device's answer: one UPDATE of tasks and one of devices per kind of answer."""
    devices, retry_after = answers
    now = timing.now()
    groups: dict[tuple[str, int], list[int]] = {}  # (answer, this attempt's number) → task ids
    for task_id, serial, attempts in chunk.rows:
        answer = str(devices.get(serial) or "MISSING").upper()
        # Only a throttle's wait depends on how many came before it: other answers stay one group each.
        groups.setdefault((answer, attempts + 1 if answer == "THROTTLED" else 0), []).append(task_id)
    counts = Counter()
    lock_device_writes(batch.server_id)
    for (answer, attempt), ids in groups.items():
        state = STATE_OF.get(answer, FAILED)
        values, device_values = _outcome(batch, state, answer, now, retry_after, uuid, attempt)
        # Apple does not undo a release: a device released while a newer request replaced its task is gone all the
        # same (the newer call would only hear NOT_ACCESSIBLE), so that answer is stored too.
        mine = chunk.condition(ids, superseded_too=batch.action == RELEASE and state == DONE)
        db.session.execute(update(Device).where(Device.id.in_(
            select(AssignmentTask.device_id).where(*mine).scalar_subquery())).values(**device_values),
            execution_options=NO_UPDATE)
        db.session.execute(update(AssignmentTask).where(*mine).values(**values), execution_options=NO_UPDATE)
        if batch.action == RELEASE and state in (DONE, NOT_ACCESSIBLE):
            # Released devices left the server's current devices: its kept count follows now, not at the next
            # synchronization (exact, since a device may have left already; the device lock is held).
            recount(batch.server_id)
        counts[state] += len(ids)
    return counts


def _count(batch: AssignmentBatch, counts: Counter) -> None:
    """Keep the batch's counters current while it runs (recounted from the tasks at the end)."""
    batch.succeeded += counts[DONE]
    batch.not_accessible += counts[NOT_ACCESSIBLE]
    batch.failed += counts[FAILED]
    batch.throttled += counts[THROTTLED]


def _outcome(batch, state, answer, now, retry_after, uuid, attempt=1) -> tuple[dict, dict]:
    """(task values, device values) for one kind of answer."""
    assign = batch.action == ASSIGN
    task = {"state": state, "result": answer if answer in STATE_OF else "FAILED", "updated_at": now,
            "retry_at": None, **NOT_HELD, "attempts": AssignmentTask.attempts + 1}
    device = {"assignment_state": state if state != DONE else ("assigned" if assign else None),
              "assignment_at": now}
    if state == DONE and assign:
        profile = _profile(batch)
        name = f"the profile “{profile.name}”" if profile else "the profile"
        task["detail"] = f"Apple assigned {name}; the device gets it at its next setup."
        # The profile's id only if it still exists: one deleted while this call was at Apple leaves
        # the device with Apple's profile and no association, like the devices it had before.
        still_there = select(EnrollmentProfile.id).where(EnrollmentProfile.id == batch.profile_id).scalar_subquery()
        device.update(profile_id=still_there, profile_uuid=uuid, profile_status="assigned",
                      profile_assign_time=now, profile_push_time=None)
    elif state == DONE and batch.action == RELEASE:
        task["detail"] = ("Apple released the device from the organization: it is no longer in Apple Business "
                          "Manager, and no longer a device of this server.")
        # Apple sends no change for a released device: it leaves the server's current devices here and now.
        device.update(profile_id=None, profile_status="removed", removed_at=now)
    elif state == DONE:
        task["detail"] = "Apple removed the profile from the device."
        device.update(profile_id=None, profile_status="removed")
    elif state == NOT_ACCESSIBLE and batch.action == RELEASE:
        task["detail"] = ("Apple: the device is not, or no longer, assigned to this MDM server: it was moved to another "
                          "server in Apple Business Manager, or an earlier try of this release whose answer was lost "
                          "released it. It is no longer a device of this server. Not retried.")
        # Either way Apple will not act on it for this server any more. After a release whose answer was lost (a
        # timeout, a 5xx after Apple acted, a killed worker), the resend hears NOT_ACCESSIBLE, and Apple may send no
        # change for a released device: kept listed, it would wait for a full synchronization to leave.
        device.update(profile_id=None, removed_at=now)
    elif state == NOT_ACCESSIBLE:
        task["detail"] = ("Apple: the device is not assigned to this MDM server in Apple Business Manager. "
                          "Not retried.")
    elif state == THROTTLED:
        asked, wait = int(retry_after or timing.THROTTLED_WAIT), timing.throttled_wait(retry_after, attempt)
        then = ("retried after that." if wait == asked else
                f"as this was attempt {attempt}, retried after {wait:,} s (the wait doubles with each attempt, "
                "up to an hour).")
        task.update(retry_at=now + timedelta(seconds=wait),
                    detail=f"Apple throttled this device and asked to wait {asked:,} s; {then}")
    else:
        task.update(retry_at=now + timing.FAILED_WAIT,
                    detail=("Apple did not answer for this device" if answer not in STATE_OF
                            else "Apple answered FAILED") + "; retried after 24 hours, as Apple advises.")
    return task, device


def _hold_after_error(batch: AssignmentBatch, server: ManagedServer, exc: apple_errors.AppleError,
                      uuid: str | None = None) -> None:
    """A whole call failed: keep every unsent task queued, with when and why it is sent again."""
    if isinstance(exc, apple_errors.NotFound) and batch.action == ASSIGN:
        profile = _profile(batch)
        if profile is not None and uuid and profile.apple_profile_uuid == uuid:
            note_profile_unknown_at_apple(profile)  # re-configured meanwhile: its new UUID is sent next time
        name = f"“{profile.name}” " if profile else ""
        _hold(batch, timing.PROFILE_WAIT, f"{PROFILE_HOLDS[1]}{name}any more: waiting for it to be "
                                          "configured again (Configure profile).", for_profile=True)
        return
    if isinstance(exc, apple_errors.Throttled):
        _hold(batch, timedelta(seconds=exc.retry_after),
              f"{_without_advice(exc.message)} and asked to wait {exc.retry_after:,} s: sent again automatically then.")
        return
    if isinstance(exc, apple_errors.TransientError):
        attempts = db.session.execute(select(AssignmentTask.attempts).where(
            AssignmentTask.batch_id == batch.id, AssignmentTask.state == SENDING).limit(1)).scalar()
        wait = timing.call_backoff(attempts or 1)
        _hold(batch, timedelta(seconds=wait),
              f"{_without_advice(exc.message)}. Sent again automatically after a wait of {wait // 60} min.")
        return
    if note_apple_error(server, exc):  # the token's state: sent again as soon as a token check succeeds
        _hold(batch, timing.TOKEN_WAIT, f"{TOKEN_HOLD}: Apple refused the call: {exc.message}", for_token=True)
    else:
        _hold(batch, timedelta(hours=1), f"Apple refused the call: {exc.message}")


def _record_hold(batch: AssignmentBatch) -> None:
    """A warning in the activity log when Apple first fails a request's call as a whole (the request's page and the
    retry queue say it too; the log held only "requested" and, much later, "finished")."""
    profile = _profile(batch)
    name = f" “{profile.name}”" if profile else ""
    record_activity(f"assignment.{batch.action}_held", profile or db.session.get(ManagedServer, batch.server_id),
                    actor="system", level="warning",
                    summary=f"{ACTION_WORDS[batch.action]}{name}, request #{batch.id}: {batch.error_message}",
                    details={"batch_id": batch.id})
    db.session.commit()


def _without_advice(message: str) -> str:
    """Apple's error message without its "try again in …" advice, written for a person at a prompt: here the
    portal tries again by itself, and the page shows when (a time written into the message would go stale)."""
    return re.split(r"[,:;]?\s*(?:and )?try again\b", message, maxsplit=1)[0].rstrip(" .,:;")


def _hold(batch: AssignmentBatch, wait: timedelta, reason: str, *, for_token: bool = False,
          for_profile: bool = False) -> None:
    """Keep the batch's unsent tasks queued until `wait` is over; a task already waiting longer (for the
    retry time Apple asked for on its device, see services._keep_apple_waits) keeps its own wait, and
    stays held for it. The others are held for `reason` now, no longer for Apple's wait on the device;
    `for_token`: until the server's token works again (retries.release_token_holds sends them then);
    `for_profile`: until the request's profile is configured (retries.release_profile_holds sends them then)."""
    now = timing.now()
    db.session.execute(update(AssignmentTask).where(
        AssignmentTask.batch_id == batch.id, AssignmentTask.state.in_((QUEUED, SENDING)),
        or_(AssignmentTask.retry_at.is_(None), AssignmentTask.retry_at < now + wait)).values(
        state=QUEUED, retry_at=now + wait, detail=reason,
        **(NOT_HELD | {"held_for_token": for_token, "held_for_profile": for_profile}),
        updated_at=now),
        execution_options=NO_UPDATE)
    batch.error_message = reason
    db.session.commit()


def _finish(batch: AssignmentBatch, sent: Counter, again: bool) -> None:
    counts = refresh_counts(batch)
    waiting = counts.get(QUEUED, 0) + counts.get(SENDING, 0)
    batch.status = "waiting" if waiting else "finished"
    batch.finished_at = timing.now()
    # A retry that Apple throttled as a whole again changes nothing an admin acts on (the retry queue shows
    # the next try): one line per such retry would bury the activity log under identical entries.
    if sent and not (again and sent[THROTTLED] == sent.total()):
        _record_summary(batch, sent, again, waiting)
    db.session.commit()


def _profile(batch: AssignmentBatch) -> EnrollmentProfile | None:
    return db.session.get(EnrollmentProfile, batch.profile_id) if batch.profile_id else None


def _record_summary(batch: AssignmentBatch, sent: Counter, again: bool, waiting: int) -> None:
    words = ACTION_WORDS[batch.action]
    done_word = DONE_WORDS[batch.action].lower()
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
