"""One page of a Managed Devices list: keyset paging, Previous / Next, "page N", a total that stays fast."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from ..extensions import db
from ..models import Device, EnrollmentProfile, ManagedServer
from ..models.profile import CONFIGURED
from .counts import current_counts
from .enrollment import apple_holds_current, outlook
from .filters import DeviceQuery
from .keyset import Cursor, cursor_of, decode_cursor, fetch
from .pending import AnsweredRequest, QueuedRequest, WaitingProfile, page_waits, shown_state

PAGE_SIZE = 100
# Counting a filtered list stops here: counting 100,000 matching rows through a filter's index costs
# more than showing a page of them. Above it the list says "5,000+". The unfiltered list (all
# current devices, of one server or all) shows the exact count its writers keep (counts.py).
COUNT_CAP = 5_000
# Above this many matches a page is found fastest by walking the sort index (see keyset.fetch).
DENSE = 2_000
MAX_PAGE_NUMBER = 10_000_000


@dataclass
class DeviceRow:
    """A device with what the list shows next to it."""

    device: Device
    server_name: str
    profile_name: str | None
    ready: bool  # will enroll automatically (enrollment.will_enroll says why not)
    outlook: str  # yes, outdated (Apple still hands it a profile not as set up here) or no: enrollment.outlook
    assignment: str  # the Assignment column: queued, or the last answer (see pending.shown_state)
    waiting_for: WaitingProfile | None = None  # an Add Devices request not yet accepted by Apple
    queued_request: QueuedRequest | None = None  # the request it is queued for, whichever its action
    answered_request: AnsweredRequest | None = None  # the request whose failed / throttled / not accessible it shows


@dataclass
class DevicePage:
    """One page of devices and the cursors around it."""

    rows: list[DeviceRow]
    total: int
    total_capped: bool       # total is COUNT_CAP and there are more
    number: int | None       # "page N" (None when the URL did not say and it cannot be known)
    next_cursor: str | None
    prev_cursor: str | None
    page_size: int = PAGE_SIZE

    @property
    def total_label(self) -> str:
        return f"{self.total:,}+" if self.total_capped else f"{self.total:,}"

    @property
    def page_count(self) -> int | None:
        """How many pages the list has, when its count is exact (not "5,000+")."""
        return None if self.total_capped else max(1, -(-self.total // self.page_size))


def list_devices(query: DeviceQuery, after: str | None = None, before: str | None = None,
                 page: str | None = None, page_size: int = PAGE_SIZE) -> DevicePage:
    """The page of `query` after cursor `after` (or before `before`); the first page without either."""
    conditions = query.conditions()
    descending = query.direction == "desc"
    number = _page_number(page)
    after_c, before_c = decode_cursor(after, query.sort), decode_cursor(before, query.sort)
    if query.only_current_devices:  # kept by the writers (counts.py): no 100,000-row count per view
        total, capped = sum(current_counts(query.server_id).values()), False
    else:
        total, capped = count_devices(query.conditions(for_count=True), COUNT_CAP)
    dense = capped or total > DENSE
    devices = None
    if before_c is not None:
        back = fetch(conditions, query.sort, descending, page_size + 1, before_c, backwards=True,
                     walk_sort_index=dense)
        if len(back) > page_size:  # a full page, and more before it
            devices = list(reversed(back[:page_size]))
            has_prev = True
            has_next = bool(fetch(conditions, query.sort, descending, 1, cursor_of(devices[-1], query.sort),
                                  walk_sort_index=dense))
        else:  # reached the beginning: show the real first page (full, not what was left)
            after_c = None
    if devices is None:
        devices = fetch(conditions, query.sort, descending, page_size + 1, after_c, walk_sort_index=dense)
        has_next = len(devices) > page_size
        devices = devices[:page_size]
        has_prev = after_c is not None
        if after_c is None:
            number = 1
    return DevicePage(
        rows=decorate(devices), total=total, total_capped=capped, number=number,
        next_cursor=cursor_of(devices[-1], query.sort).encode() if has_next and devices else None,
        prev_cursor=_prev_cursor(devices, query.sort, has_prev, after_c), page_size=page_size)


def _prev_cursor(devices: list[Device], sort: str, has_prev: bool, after_c: Cursor | None) -> str | None:
    if not has_prev:
        return None
    if devices:
        return cursor_of(devices[0], sort).encode()
    # Past the end (a stale bookmark): step back from where the URL pointed.
    return Cursor(after_c.segment, after_c.value, after_c.ident + 1).encode() if after_c else None


def _page_number(page: str | None) -> int | None:
    # isdigit() would accept "²", which int() refuses: ASCII decimal digits only.
    if page and page.isascii() and page.isdecimal() and len(page) <= 8:
        return min(max(int(page), 1), MAX_PAGE_NUMBER)
    return None


def count_devices(conditions: list, cap: int | None = COUNT_CAP) -> tuple[int, bool]:
    """(number of matching devices up to `cap`, whether there are more than `cap`); None: no cap.

    The LIMIT inside the subquery lets both databases stop counting at cap + 1 rows.
    """
    if cap is None:
        return db.session.execute(select(func.count()).select_from(Device).where(*conditions)).scalar_one(), False
    limited = select(Device.id).where(*conditions).limit(cap + 1).subquery()
    count = db.session.execute(select(func.count()).select_from(limited)).scalar_one()
    return (cap, True) if count > cap else (count, False)


def decorate(devices: list[Device]) -> list[DeviceRow]:
    """Server and profile names and readiness, looked up for the page's devices only.

    Two small queries by id instead of joins: joined, the planners may start from the server or
    profile table and then sort every device instead of walking the sort index.
    """
    server_ids = {d.server_id for d in devices}
    profile_ids = {d.profile_id for d in devices if d.profile_id}
    servers = {row.id: row for row in db.session.execute(
        select(ManagedServer.id, ManagedServer.name, ManagedServer.configuration_id)
        .where(ManagedServer.id.in_(server_ids)))} if server_ids else {}
    profiles = {row.id: row for row in db.session.execute(
        select(EnrollmentProfile.id, EnrollmentProfile.name, EnrollmentProfile.status,
               EnrollmentProfile.apple_profile_uuid)
        .where(EnrollmentProfile.id.in_(profile_ids)))} if profile_ids else {}
    waits = page_waits(d.id for d in devices)
    rows = []
    for device in devices:
        server, profile = servers.get(device.server_id), profiles.get(device.profile_id)
        # Same rule as enrollment.not_ready_conditions / will_enroll.
        ready = (device.removed_at is None and profile is not None and profile.status == CONFIGURED
                 and server is not None and server.configuration_id is not None
                 and apple_holds_current(device, profile.apple_profile_uuid))
        rows.append(DeviceRow(device, server.name if server else "—", profile.name if profile else None, ready,
                              outlook(device, ready), shown_state(device, waits.pending),
                              waits.profiles.get(device.id), waits.requests.get(device.id),
                              waits.answered_request(device)))
    return rows
