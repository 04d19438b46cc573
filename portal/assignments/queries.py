"""Read-only queries behind the assignment pages: paged lists with only the columns they show."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, case, func, or_, select

from ..extensions import db
from ..models import AssignmentBatch, AssignmentTask, Device, EnrollmentProfile
from ..models.assignment import QUEUED, SENDING, SUPERSEDED
from ..devices.counts import current_counts
from ..devices.filters import DeviceQuery
from ..devices.pending import page_waits
from .retries import STOPPED_DETAIL, in_queue_condition

PROFILE_PAGE = 50
PICK_PAGE = 50
TASK_PAGE = 100
ACTIVE = ("queued", "running")  # an interrupted batch waits for the periodic job: no polling meanwhile


@dataclass
class Page:
    """One page of rows: `page` counts from 1."""

    items: list
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def prev_num(self) -> int:
        return self.page - 1

    @property
    def next_num(self) -> int:
        return self.page + 1


def page_number(value) -> int:
    """A page number from the URL (anything odd means the first page)."""
    try:
        return max(1, min(int(value), 1_000_000))
    except (TypeError, ValueError):
        return 1


def paged(query, count_query, page: int, per_page: int, total: int | None = None) -> Page:
    """A page of `query`; `total` when known already, else counted with `count_query`."""
    if total is None:
        total = db.session.execute(count_query).scalar_one()
    page = min(page, max(1, -(-total // per_page)))
    items = db.session.execute(query.limit(per_page).offset((page - 1) * per_page)).all()
    return Page(items=items, page=page, per_page=per_page, total=total)


def associated_conditions(profile: EnrollmentProfile) -> list:
    """The devices associated with the profile (Apple accepted it for them) that are still on the server."""
    return [Device.profile_id == profile.id, Device.removed_at.is_(None)]


def search_conditions(search: DeviceQuery | None) -> list:
    """The search box's conditions (DeviceQuery's `q`: serial prefix, model or description); none without a search."""
    return search.conditions() if search is not None and search.q else []


def profile_devices(profile: EnrollmentProfile, page: int = 1, search: DeviceQuery | None = None) -> Page:
    """The devices associated with the profile that match the search, by serial number."""
    conditions = associated_conditions(profile) + search_conditions(search)
    query = select(Device).where(*conditions).order_by(Device.serial_number, Device.id)
    return paged(query, select(func.count()).select_from(Device).where(*conditions), page, PROFILE_PAGE)


def count_among(ids: list[int], conditions: list) -> int:
    """How many of the devices `ids` meet `conditions`: "· N ticked" counts those a filter leaves out as well."""
    if not ids:
        return 0
    return sum(db.session.execute(select(func.count()).select_from(Device).where(
        Device.id.in_(ids[i:i + 500]), *conditions)).scalar_one() for i in range(0, len(ids), 500))


def recent_batches(profile: EnrollmentProfile, limit: int = 5) -> list[AssignmentBatch]:
    """The profile's latest Add Devices / Remove Devices requests."""
    return list(db.session.execute(select(AssignmentBatch).where(AssignmentBatch.profile_id == profile.id)
                                   .order_by(AssignmentBatch.id.desc()).limit(limit)).scalars())


def not_answered(batches: list[AssignmentBatch]) -> dict[int, tuple[int, int]]:
    """{batch id: (devices waiting to be sent, devices closed without an answer kept)} of the requests whose kept
    counters (assigned, not accessible, failed, throttled) do not add up to their total: without these, a summary
    read "9 devices · 7 assigned, 1 not accessible" for a device stopped (Stop retrying) or replaced."""
    short = [b.id for b in batches
             if b.succeeded + b.not_accessible + b.failed + b.throttled < b.total]
    if not short:
        return {}
    counts = {batch_id: [0, 0] for batch_id in short}
    for batch_id, state, count in db.session.execute(
            select(AssignmentTask.batch_id, AssignmentTask.state, func.count()).where(
                AssignmentTask.batch_id.in_(short), AssignmentTask.state.in_((QUEUED, SENDING, SUPERSEDED)))
            .group_by(AssignmentTask.batch_id, AssignmentTask.state)):
        counts[batch_id][0 if state != SUPERSEDED else 1] += count
    return {batch_id: (waiting, closed) for batch_id, (waiting, closed) in counts.items()}


def queue_count(profile_id: int | None = None, batch_id: int | None = None, *, except_servers=()) -> int:
    """Devices in the retry queue (of one profile or one batch; not those of the servers `except_servers`)."""
    query = select(func.count()).select_from(AssignmentTask).where(in_queue_condition())
    if batch_id is not None:
        query = query.where(AssignmentTask.batch_id == batch_id)
    if profile_id is not None or except_servers:
        query = query.join(AssignmentBatch, AssignmentBatch.id == AssignmentTask.batch_id)
    if profile_id is not None:
        query = query.where(AssignmentBatch.profile_id == profile_id)
    if except_servers:
        query = query.where(AssignmentBatch.server_id.not_in(list(except_servers)))
    return db.session.execute(query).scalar_one()


def panel(profile: EnrollmentProfile, page: int = 1, search: DeviceQuery | None = None,
          ticked: list[int] = (), excepted: list[int] = ()) -> dict:
    """Everything the profile page's device section shows. With a search, `associated` counts every device of the
    profile and `outside` the ticked ones the search leaves out (Select all sends them too: "· N ticked");
    `excepted_count` those of the rows unticked under Select all (`excepted`) that it covers: it sends all but them."""
    search = search or DeviceQuery()
    excepted_count = count_among(list(excepted), associated_conditions(profile) + search_conditions(search))
    batches = recent_batches(profile)
    devices = profile_devices(profile, page, search)
    associated, outside = devices.total, 0
    if search.q:
        associated = db.session.execute(select(func.count()).select_from(Device).where(
            *associated_conditions(profile))).scalar_one()
        ticked = list(ticked)
        outside = (count_among(ticked, associated_conditions(profile))
                   - count_among(ticked, associated_conditions(profile) + search_conditions(search)))
    # One query for the page: which devices are queued, and which Remove Devices (or Release Devices) a device's
    # "Failed" came from (said beside it: alone it reads as a failed Add Devices).
    waits = page_waits(row[0].id for row in devices.items)
    answered = {row[0].id: waits.answered_request(row[0]) for row in devices.items}
    from .auto import without_profile_for_default  # (auto imports services, which imports this module's users)

    return {"devices": devices, "pending": waits.pending, "answered": answered, "batches": batches,
            "not_answered": not_answered(batches),
            "active": any(b.status in ACTIVE for b in batches), "queue_count": queue_count(profile.id),
            "search": search, "associated": associated, "outside": outside, "excepted_count": excepted_count,
            "default_waiting": without_profile_for_default(profile)}


def pick_devices(server_id: int, conditions: list, page: int, *, all_current: bool = False) -> Page:
    """Rows of Select the Managed Devices: (Device, current profile name); `all_current`: the
    conditions select every current device of the server, whose count is kept (devices/counts.py)."""
    where = [Device.server_id == server_id, Device.removed_at.is_(None), *conditions]
    query = (select(Device, EnrollmentProfile.name).outerjoin(EnrollmentProfile, EnrollmentProfile.id == Device.profile_id)
             .where(*where).order_by(Device.serial_number, Device.id))
    kept = current_counts(server_id).get(server_id, 0) if all_current else None
    return paged(query, select(func.count()).select_from(Device).where(*where), page, PICK_PAGE, total=kept)


def distinct_values(server_id: int, column) -> list[str]:
    """The values a filter can take on this server's current devices (family, OS)."""
    return [v for v in db.session.execute(select(column).where(
        Device.server_id == server_id, Device.removed_at.is_(None), column.is_not(None)).distinct()
        .order_by(column)).scalars() if v]


def batch_tasks(batch: AssignmentBatch, state: str, page: int) -> Page:
    """One batch's devices and their answers (optionally one state), by serial number."""
    where = [AssignmentTask.batch_id == batch.id]
    if state:
        where.append(AssignmentTask.state == state)
    query = select(AssignmentTask).where(*where).order_by(AssignmentTask.serial_number, AssignmentTask.id)
    return paged(query, select(func.count()).select_from(AssignmentTask).where(*where), page, TASK_PAGE)


def batch_progress(batch: AssignmentBatch) -> dict:
    """Counts by task state; how many Apple answered (a device closed before it was ever sent, by a newer request,
    a deleted profile or Stop retrying, was not), and how many of the superseded were stopped by an admin."""
    # Sums of CASEs, not a GROUP BY of the conditions: PostgreSQL does not take "detail LIKE $2" in GROUP BY for the
    # "detail LIKE $1" of the SELECT list (each is its own bound parameter).
    rows = db.session.execute(select(
        AssignmentTask.state, func.count(),
        func.sum(case((AssignmentTask.result.is_(None), 1), else_=0)),
        func.sum(case((AssignmentTask.detail.startswith(STOPPED_DETAIL), 1), else_=0)))
        .where(AssignmentTask.batch_id == batch.id).group_by(AssignmentTask.state)).all()
    counts: dict[str, int] = {}
    unanswered = stopped = 0
    for state, n, without_answer, by_admin in rows:
        counts[state] = n
        if state == SUPERSEDED:
            unanswered, stopped = int(without_answer or 0), int(by_admin or 0)
    pending = counts.get(QUEUED, 0) + counts.get(SENDING, 0)
    total = sum(counts.values())
    return {"counts": counts, "total": total, "answered": total - pending - unanswered, "pending": pending,
            "closed": total - pending, "stopped": stopped,
            "percent": int(100 * (total - pending) / total) if total else 100}


def sending_count(profile_id: int | None) -> int:
    """Devices on their way to Apple now (queued without a wait, or being sent): after Retry now, those of the retry
    queue, which come back to it if Apple refuses them again."""
    where = [or_(AssignmentTask.state == SENDING,
                 and_(AssignmentTask.state == QUEUED, AssignmentTask.retry_at.is_(None)))]
    if profile_id is not None:
        where.append(AssignmentBatch.profile_id == profile_id)
    return db.session.execute(select(func.count()).select_from(AssignmentTask)
                              .join(AssignmentBatch, AssignmentBatch.id == AssignmentTask.batch_id)
                              .where(*where)).scalar_one()


def retry_queue(profile_id: int | None, page: int) -> Page:
    """The retry queue: (task, batch, profile name), soonest retry first."""
    where = [in_queue_condition()]
    if profile_id is not None:
        where.append(AssignmentBatch.profile_id == profile_id)
    query = (select(AssignmentTask, AssignmentBatch, EnrollmentProfile.name)
             .join(AssignmentBatch, AssignmentBatch.id == AssignmentTask.batch_id)
             .outerjoin(EnrollmentProfile, EnrollmentProfile.id == AssignmentBatch.profile_id)
             .where(*where).order_by(AssignmentTask.retry_at, AssignmentTask.id))
    count = (select(func.count()).select_from(AssignmentTask)
             .join(AssignmentBatch, AssignmentBatch.id == AssignmentTask.batch_id).where(*where))
    return paged(query, count, page, TASK_PAGE)
