"""What the device page shows besides the device row: its assignment history and its attributes."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from ..extensions import db
from ..models import AssignmentBatch, AssignmentTask, Device, EnrollmentProfile
from ..templating import device_family_label

HISTORY_LIMIT = 200
# (label, Device attribute) of every Apple attribute with a column of its own.
APPLE_ATTRIBUTES = (
    ("Serial number", "serial_number"), ("Model", "model"), ("Description", "description"),
    ("Color", "color"), ("Asset tag", "asset_tag"), ("OS", "os"), ("Device family", "device_family"),
    ("Apple profile status", "profile_status"), ("Apple profile UUID", "profile_uuid"),
    ("Profile assigned at Apple", "profile_assign_time"), ("Profile pushed to the device", "profile_push_time"),
    ("Assigned to the server", "device_assigned_date"), ("Assigned by", "device_assigned_by"),
    ("Last change at Apple", "last_op_type"), ("Last change date", "last_op_date"),
)


@dataclass
class HistoryEntry:
    """One device in one Add Devices / Remove Devices / Release Devices request."""

    batch_id: int        # the request, whose page has every device's answer
    when: datetime
    actor: str | None
    action: str
    origin: str
    profile_id: int | None
    profile_name: str | None
    state: str
    result: str | None   # Apple's per-device answer, as sent
    detail: str | None


ACRONYMS = {"id": "ID", "imei": "IMEI", "meid": "MEID", "mac": "MAC", "os": "OS", "uuid": "UUID", "url": "URL",
            "udid": "UDID", "eid": "EID", "iccid": "ICCID"}


def attributes(device: Device) -> list[tuple[str, object, str | None]]:
    """(label, value, Apple's key) of every Apple attribute, then the extra ones Apple sent, by name.
    Apple's key is given for the extra ones only, whose label is made from it."""
    rows = [(label, _family(device.device_family) if name == "device_family" else getattr(device, name), None)
            for label, name in APPLE_ATTRIBUTES]
    for key in sorted(device.extra or {}):
        rows.append((_label(key), _shown(device.extra[key]), key))
    return rows


def _family(family: str | None) -> str | None:
    """"Apple TV (AppleTV)": the name the lists and filters use, then Apple's value as sent, which this
    section promises (and which the API and the CSV export carry). Alone when they are the same (iPhone)."""
    if not family:
        return family
    label = device_family_label(family)
    return label if label == family else f"{label} ({family})"


def _label(key: str) -> str:
    """bluetooth_mac_address → Bluetooth MAC address."""
    words = [ACRONYMS.get(word.lower(), word) for word in key.replace("-", "_").split("_") if word]
    if words and words[0] == words[0].lower():
        words[0] = words[0].capitalize()
    return " ".join(words) or key


def _shown(value: object) -> object:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join("Yes" if v is True else "No" if v is False else str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return value


def history(device_id: int) -> tuple[list[HistoryEntry], int]:
    """The latest HISTORY_LIMIT requests that concerned the device, newest first, and how many there are."""
    rows = db.session.execute(
        select(AssignmentTask, AssignmentBatch, EnrollmentProfile.name)
        .join(AssignmentBatch, AssignmentBatch.id == AssignmentTask.batch_id)
        .outerjoin(EnrollmentProfile, EnrollmentProfile.id == AssignmentBatch.profile_id)
        .where(AssignmentTask.device_id == device_id)
        .order_by(AssignmentTask.id.desc()).limit(HISTORY_LIMIT)).all()
    total = db.session.execute(select(func.count()).select_from(AssignmentTask)
                               .where(AssignmentTask.device_id == device_id)).scalar_one()
    entries = [HistoryEntry(batch_id=batch.id, when=task.updated_at, actor=batch.actor, action=batch.action,
                            origin=batch.origin, profile_id=batch.profile_id, profile_name=profile_name, state=task.state,
                            result=task.result, detail=task.detail)
               for task, batch, profile_name in rows]
    return entries, total
