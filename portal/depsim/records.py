"""JSON records the simulated service returns, shaped by `X-Server-Protocol-Version` (reference §2.5, §3.1, §4)."""
from __future__ import annotations

from .inventory import hardware_ids
from .timefmt import iso

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_PAGED = {"default": DEFAULT_LIMIT, "maximum": MAX_LIMIT}
URLS = (
    {"uri": "/session", "http_method": ["GET"]},
    {"uri": "/account", "http_method": ["GET"]},
    {"uri": "/server/devices", "http_method": ["POST"], "limit": _PAGED},
    {"uri": "/devices/sync", "http_method": ["POST"], "limit": _PAGED},
    {"uri": "/devices", "http_method": ["POST"]},
    {"uri": "/devices/disown", "http_method": ["POST"]},
    {"uri": "/profile", "http_method": ["POST", "GET"]},
    {"uri": "/profile/devices", "http_method": ["DELETE", "POST", "PUT"]},
)


def account_detail(server, version: int) -> dict:
    """AccountDetail; org_id… and urls only from protocol version 3."""
    detail = {
        "server_name": server["name"], "server_uuid": server["uuid"],
        "admin_id": server["admin_id"], "facilitator_id": server["admin_id"],
        "org_name": server["org_name"], "org_email": server["org_email"],
        "org_phone": server["org_phone"], "org_address": server["org_address"],
    }
    if version >= 3:
        detail.update(org_id=server["org_id"], org_id_hash=server["org_id_hash"],
                      org_type=server["org_type"], org_version=server["org_version"],
                      urls=[dict(u) for u in URLS])
    return detail


def _static(row, version: int) -> dict:
    """The hardware facts that do not depend on which server asks."""
    record = {"serial_number": row["serial"], "description": row["description"], "model": row["model"]}
    if version >= 2:
        # iPads only say iPadOS to clients speaking protocol 7 or later.
        os_name = "iOS" if row["os"] == "iPadOS" and version < 7 else row["os"]
        record.update(os=os_name, device_family=row["family"])
    record["color"] = row["color"]
    if row["asset_tag"]:
        record["asset_tag"] = row["asset_tag"]
    return record


def device_record(row, version: int, server_id: int) -> dict:
    """A Device as fetch/details return it; profile and assignment fields only for the holder."""
    record = _static(row, version)
    if row["server_id"] == server_id and not row["removed"]:
        if row["profile_uuid"]:
            record["profile_uuid"] = row["profile_uuid"]
        if row["profile_assign_time"]:
            record["profile_assign_time"] = iso(row["profile_assign_time"])
        if row["profile_push_time"]:
            record["profile_push_time"] = iso(row["profile_push_time"])
        record["profile_status"] = row["profile_status"]
        record["device_assigned_by"] = row["assigned_by"]
        record["device_assigned_date"] = iso(row["assigned_at"])
    if version >= 10:
        record.update(hardware_ids(row["serial"], row["family"], row["description"]))
    return record


def sync_record(row, version: int, server_id: int) -> dict:
    """A sync entry: the device's latest state plus op_type/op_date; deletions stay minimal."""
    if row["op_type"] == "deleted":
        record = _static(row, version)
        if version >= 10:
            record["released_by_replacement"] = False
    else:
        record = device_record(row, version, server_id)
    record.update(op_type=row["op_type"], op_date=iso(row["op_date"]))
    return record
