"""Which devices have a request waiting to be sent to Apple: shown as "queued", read from their tasks.

The device row keeps the answer to its latest request that Apple gave (Device.assignment_state:
assigned, not_accessible, failed, throttled, or none). A request still waiting for its job, or
put back in the queue for a retry, is a task in the 'queued' or 'sending' state. Reading that from
the tasks spares every Add Devices / Remove Devices a write to each selected device row: the
widest and most indexed table, and on PostgreSQL most of the cost of a 10,000-device request.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, any_, func, not_, or_, select

from ..extensions import db
from ..models import AssignmentBatch, AssignmentTask, Device, EnrollmentProfile
from ..models.assignment import ASSIGN, FAILED, NOT_ACCESSIBLE, QUEUED, SENDING, THROTTLED

PENDING_STATES = (QUEUED, SENDING)
# An Add Devices request not answered for good yet: waiting for its job, or in the retry queue
# (services.OPEN_STATES: a newer request for the device replaces it, so a device has one at most).
WAITING_STATES = (QUEUED, SENDING, FAILED, THROTTLED)
# Apple's answers a device row keeps (Device.assignment_state) that need the request named: "Failed" alone reads
# as a failed Add Devices when it was the Release Devices (or Remove Devices) that failed.
ANSWERED_STATES = (FAILED, THROTTLED, NOT_ACCESSIBLE)


@dataclass(frozen=True)
class WaitingProfile:
    """The profile an Add Devices request still waiting to reach Apple is taking the device to."""

    batch_id: int
    profile_id: int
    profile_name: str


def pending_devices():
    """Subquery: ids of devices with a task waiting to be sent (ix_assignment_task_state_retry)."""
    return select(AssignmentTask.device_id).where(AssignmentTask.state.in_(PENDING_STATES))


def pending_among(device_ids) -> set[int]:
    """The ids among `device_ids` (a page's worth) with a request waiting to be sent."""
    ids = list(device_ids)
    if not ids:
        return set()
    return set(db.session.execute(select(AssignmentTask.device_id).where(
        AssignmentTask.device_id.in_(ids), AssignmentTask.state.in_(PENDING_STATES)).distinct()).scalars())


@dataclass(frozen=True)
class QueuedRequest:
    """The newest Add Devices / Remove Devices / Release Devices request waiting to be sent for a device."""

    batch_id: int
    action: str  # models.assignment.ACTIONS


@dataclass(frozen=True)
class AnsweredRequest:
    """The request whose answer the device row keeps (failed, throttled or not_accessible), and its action."""

    batch_id: int
    action: str  # models.assignment.ACTIONS
    state: str   # ANSWERED_STATES


@dataclass
class PageWaits:
    """What a page's devices wait for, from one query (page_waits)."""

    pending: set[int]                      # ids with a request waiting to be sent: shown as "queued"
    profiles: dict[int, WaitingProfile]    # the profile an Add Devices request is taking the device to
    requests: dict[int, QueuedRequest]     # the newest request waiting to be sent, whichever its action
    # (device id, state) → (when Apple answered, request): the newest answer of each kind (see answered_request)
    answers: dict = field(default_factory=dict)

    def answered_request(self, device: Device) -> AnsweredRequest | None:
        """The request whose answer the device's Assignment shows (failed, throttled or not accessible): the newest
        task answered so, as Device.assignment_state is the newest answer. None while a request waits (queued)."""
        if device.id in self.pending or device.assignment_state not in ANSWERED_STATES:
            return None
        found = self.answers.get((device.id, device.assignment_state))
        return found[1] if found else None


def page_waits(device_ids) -> PageWaits:
    """The requests not answered for good yet of `device_ids` (a page's worth, ≤ 100), in one query
    through ix_assignment_task_device (two used to cost the PostgreSQL list page 2.5 ms more).

    The device row names its profile only once Apple accepts (runner), so without this a device
    waiting for its first profile would say "None", and a waiting removal only "Queued". The same
    query reads the answers Apple gave as failed, throttled or not accessible (these tasks, and final
    NOT_ACCESSIBLE ones), so a failed release says "Release failed", not "Failed" alone."""
    waits = PageWaits(set(), {}, {})
    ids = list(device_ids)
    if not ids:
        return waits
    rows = db.session.execute(
        select(AssignmentTask.device_id, AssignmentTask.state, AssignmentTask.updated_at, AssignmentBatch.id,
               AssignmentBatch.action, EnrollmentProfile.id, EnrollmentProfile.name)
        .join(AssignmentBatch, AssignmentBatch.id == AssignmentTask.batch_id)
        .outerjoin(EnrollmentProfile, EnrollmentProfile.id == AssignmentBatch.profile_id)
        .where(AssignmentTask.device_id.in_(ids), AssignmentTask.state.in_(WAITING_STATES + (NOT_ACCESSIBLE,)))
        .order_by(AssignmentTask.id))
    # Ascending: should two be open for a moment (a release is replaced by another release only),
    # the newest request wins.
    for device_id, state, answered_at, batch_id, action, profile_id, name in rows:
        if state in ANSWERED_STATES:  # kept as answered: requeued or superseded tasks leave these states
            newest = waits.answers.get((device_id, state))
            if newest is None or answered_at >= newest[0]:  # answered last, as the device row's state was
                waits.answers[device_id, state] = (answered_at, AnsweredRequest(batch_id, action, state))
            if state == NOT_ACCESSIBLE:
                continue  # final: not waiting for anything
        if state in PENDING_STATES:
            waits.pending.add(device_id)
            waits.requests[device_id] = QueuedRequest(batch_id, action)
        if action == ASSIGN and profile_id is not None:  # a deleted profile: nothing to wait for
            waits.profiles[device_id] = WaitingProfile(batch_id, profile_id, name)
    return waits


def assignment_condition(value: str, *, for_count: bool = False):
    """The device list's Assignment filter: 'queued', or a last answer of a device not queued again.

    `for_count` (PostgreSQL): the waiting devices as `id = ANY(ARRAY(...))`, which PostgreSQL reads
    through the primary key, one probe per waiting device, instead of scanning the device table
    against a hash of them (10,000 waiting: 12 ms against 26 ms to count the first 5,001). Only to
    count: as a filter beside a walk of the sort index it would search the array for every row.
    """
    if value == QUEUED and for_count and db.session.get_bind().dialect.name == "postgresql":
        return Device.id == any_(func.array(pending_devices().scalar_subquery()))
    waiting = Device.id.in_(pending_devices())
    if value == QUEUED:
        return waiting
    if value == "none":
        answered = or_(Device.assignment_state.is_(None), Device.assignment_state == "none")
    else:
        answered = Device.assignment_state == value
    return and_(answered, not_(waiting))


def shown_state(device: Device, pending: set[int] | None = None) -> str:
    """What the Assignment column says: 'queued' while a request waits, else the last answer or 'none'.
    `pending`: pending_among() of the page, or None to ask for this device alone."""
    if pending is None:
        pending = pending_among([device.id])
    if device.id in pending:
        return QUEUED
    return device.assignment_state or "none"
