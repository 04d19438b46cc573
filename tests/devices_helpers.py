"""Helpers for Managed Devices tests: servers, profiles and devices seeded with bulk INSERTs (Apple is not the
point here), a request waiting for a device, the serials a list shows, and two fleets: `fleet` (a varied
handful) and `many` (250 devices, for sorts and pages); test modules import the fixtures they use."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from portal import vault
from portal.devices.counts import recount
from portal.extensions import db
from portal.models import (AssignmentBatch, AssignmentTask, Device, EnrollmentProfile, ManagedServer,
                           ServerConfiguration)


NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
SERIAL_CELL = re.compile(r"<td><a class=.device-link.[^>]*><code>([^<]+)</code></a></td>")


def _server(name: str, configured: bool = False) -> ManagedServer:
    config = None
    if configured:
        config = ServerConfiguration(name=f"MDM for {name}", url="https://mdm.example.com/enroll")
        db.session.add(config)
        db.session.flush()
    server = ManagedServer(name=name, token_ciphertext=vault.encrypt("{}"), key_ciphertext=vault.encrypt("k"),
                           consumer_key=f"CK_{name}", token_expiry=NOW + timedelta(days=365),
                           configuration_id=config.id if config else None)
    db.session.add(server)
    db.session.commit()
    return server


def _profile(server: ManagedServer, name: str, status: str = "configured") -> EnrollmentProfile:
    profile = EnrollmentProfile(server_id=server.id, name=name, status=status)
    db.session.add(profile)
    db.session.commit()
    return profile


def _seed(server: ManagedServer, *devices: dict) -> None:
    rows = [{"server_id": server.id, "first_seen_at": NOW, "updated_at": NOW, "fetch_generation": 1,
             "os": "iOS", "device_family": "iPhone", "model": "iPhone 15", "profile_status": "empty", **d}
            for d in devices]
    db.session.execute(insert(Device), rows)
    recount(server.id)  # as a sync's full fetch leaves it (portal/devices/counts.py)
    db.session.commit()


def _queue(server: ManagedServer, profile: EnrollmentProfile, serial: str) -> None:
    """A request for the device waiting to be sent to Apple (a queued task)."""
    batch = AssignmentBatch(server_id=server.id, profile_id=profile.id, action="assign", actor="alice", total=1)
    db.session.add(batch)
    db.session.flush()
    db.session.add(AssignmentTask(batch_id=batch.id, device_id=_device(serial).id, serial_number=serial,
                                  state="queued"))
    db.session.commit()


def _device(serial: str) -> Device:
    db.session.expire_all()
    return db.session.execute(select(Device).where(Device.serial_number == serial)).scalar_one()


def _serials(response) -> list[str]:
    assert response.status_code == 200, response.status_code
    return SERIAL_CELL.findall(response.get_data(as_text=True))


def _batch_of(serial: str) -> int:
    return db.session.execute(select(AssignmentTask.batch_id).where(
        AssignmentTask.serial_number == serial).order_by(AssignmentTask.id.desc())).scalars().first()


STAFF_UUID, LYON_UUID = "9145EDB932A42C48A9DD56AD69213C64", "LYON-UUID-1"


@pytest.fixture
def fleet(app):
    """Two servers (one with a server configuration), three profiles, a varied handful of devices."""
    paris, lyon = _server("Paris", configured=True), _server("Lyon")
    staff, kiosk = _profile(paris, "Staff"), _profile(paris, "Kiosk", status="changed")
    staff.apple_profile_uuid = STAFF_UUID  # configured at Apple, which holds it for C02AAA1
    lyon_default = _profile(lyon, "Lyon default")
    lyon_default.apple_profile_uuid = LYON_UUID
    _seed(paris,
          {"serial_number": "C02AAA1", "model": "iPhone 15", "description": "IPHONE 15 128GB", "profile_id": staff.id,
           "assignment_state": "assigned", "profile_status": "assigned", "profile_uuid": STAFF_UUID,
           "device_assigned_date": NOW - timedelta(days=3)},
          {"serial_number": "C02AAB2", "model": "iPad Air", "description": "IPAD AIR WI-FI", "os": "iPadOS",
           "device_family": "iPad", "profile_id": kiosk.id, "assignment_state": "assigned",
           "profile_status": "pushed", "device_assigned_date": NOW - timedelta(days=1)},
          {"serial_number": "F17XYZ9", "model": "MacBook Air", "description": "MACBOOK AIR 13", "os": "OSX",
           "device_family": "Mac", "assignment_state": "failed", "device_assigned_date": NOW - timedelta(days=2)},
          {"serial_number": "F17OLD0", "model": "iPhone 14", "description": "OLD PHONE", "removed_at": NOW},
          # Apple failed it before; a newer request for it waits to be sent: shown as queued.
          {"serial_number": "DMQ100_", "model": "iPhone 15", "description": "100% BATTERY", "assignment_state": "failed"})
    _queue(paris, staff, "DMQ100_")
    _seed(lyon,
          {"serial_number": "LYN0001", "model": "iPad Pro", "description": "IPAD PRO", "os": "iPadOS",
           "device_family": "iPad", "profile_id": lyon_default.id, "assignment_state": "assigned",
           "profile_status": "removed", "profile_uuid": LYON_UUID})  # removed at Apple since: drift
    return {"paris": paris, "lyon": lyon, "staff": staff, "kiosk": kiosk, "lyon_default": lyon_default}


@pytest.fixture
def many(app):
    """250 current devices with heavy ties on model and assigned date, and some NULLs, plus removed ones."""
    server = _server("Big")
    models = ["iPad Air", "iPhone 15", "MacBook Pro", None]
    dates = [NOW - timedelta(days=d) for d in (1, 2, 3)] + [None]
    _seed(server, *[{"serial_number": f"S{(i * 7919) % 1000:04d}", "model": models[i % 4],
                     "device_assigned_date": dates[(i // 4) % 4]} for i in range(250)])
    _seed(server, *[{"serial_number": f"R{i:04d}", "removed_at": NOW} for i in range(5)])
    return server


def _expected_order(sort: str, direction: str) -> list[str]:
    devices = db.session.execute(select(Device).where(Device.removed_at.is_(None))).scalars().all()
    if sort == "serial":
        return sorted((d.serial_number for d in devices), reverse=direction == "desc")
    attr = {"model": "model", "assigned": "device_assigned_date"}[sort]
    with_value = sorted((d for d in devices if getattr(d, attr) is not None),
                        key=lambda d: (getattr(d, attr), d.id), reverse=direction == "desc")
    without = sorted((d for d in devices if getattr(d, attr) is None), key=lambda d: d.id,
                     reverse=direction == "desc")
    return [d.serial_number for d in with_value + without]  # no value: last, whatever the direction
