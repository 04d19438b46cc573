"""CSV export of a device list's current filter, streamed in constant memory.

The rows are read in keyset chunks in the list's own order (the same conditions and cursors as the
pages), so memory stays flat at any size and no database cursor is held open between chunks.
"""
from __future__ import annotations

import json
from collections.abc import Iterator

from ..csv_stream import CsvChunks, safe_cell
from .filters import DeviceQuery
from .keyset import cursor_of, fetch
from ..models.assignment import ACTION_WORDS, ASSIGN
from .listing import DENSE, DeviceRow, count_devices, decorate

CHUNK = 1000
# Every Apple attribute with a column of its own, in Apple's order, then the portal's columns.
APPLE_COLUMNS = ("serial_number", "model", "description", "color", "asset_tag", "os", "device_family",
                 "profile_status", "profile_uuid", "profile_assign_time", "profile_push_time",
                 "device_assigned_date", "device_assigned_by", "last_op_type", "last_op_date")
# The request a device waits for comes last: added after the others, which keep their places. Then the request
# whose answer assignment_state is when that is failed, throttled or not_accessible ("Release Devices #12").
HEADER = (*APPLE_COLUMNS, "other_apple_attributes", "managed_server", "enrollment_profile",
          "assignment_state", "assignment_at", "will_enroll", "removed_at", "waiting_request", "waiting_for_profile",
          "answered_request")


def csv_lines(query: DeviceQuery) -> Iterator[str]:
    """The header, then one CSV line per matching device, read CHUNK devices at a time."""
    out = CsvChunks()
    out.row(HEADER)
    yield out.take()
    conditions, descending, after = query.conditions(), query.direction == "desc", None
    total, capped = count_devices(conditions)
    dense = capped or total > DENSE
    while True:
        devices = fetch(conditions, query.sort, descending, CHUNK, after, walk_sort_index=dense)
        if not devices:
            return
        for row in decorate(devices):
            d = row.device
            extra = json.dumps(d.extra, sort_keys=True, default=str) if d.extra else None
            out.row([safe_cell(getattr(d, name)) for name in APPLE_COLUMNS] + [
                safe_cell(extra), safe_cell(row.server_name), safe_cell(row.profile_name),
                safe_cell(row.assignment), safe_cell(d.assignment_at),
                row.outlook, safe_cell(d.removed_at), *_waiting(row), _answered(row)])  # yes, outdated or no
        yield out.take()
        if len(devices) < CHUNK:
            return
        after = cursor_of(devices[-1], query.sort)


def _waiting(row: DeviceRow) -> tuple[str | None, str | None]:
    """(the request not answered yet, "Remove Devices #12"; the profile an Add Devices takes it to), as the
    lists show them: a device queued, or in the retry queue for a profile other than its own."""
    queued = row.queued_request if row.assignment == "queued" else None
    waiting = row.waiting_for if row.waiting_for and row.waiting_for.profile_id != row.device.profile_id else None
    if queued and queued.action != ASSIGN:
        return f"{ACTION_WORDS[queued.action]} #{queued.batch_id}", None
    if waiting:
        return f"{ACTION_WORDS[ASSIGN]} #{waiting.batch_id}", safe_cell(waiting.profile_name)
    if queued:  # Add Devices of the profile it already has (a re-assignment)
        return f"{ACTION_WORDS[ASSIGN]} #{queued.batch_id}", safe_cell(row.profile_name)
    return None, None


def _answered(row: DeviceRow) -> str | None:
    """The request Apple answered failed, throttled or not accessible, when assignment_state is that answer."""
    answered = row.answered_request
    return f"{ACTION_WORDS[answered.action]} #{answered.batch_id}" if answered else None
