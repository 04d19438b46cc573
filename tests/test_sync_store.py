"""Synchronization, the storing side: token status rules, and how the pages Apple sends are written (sync
events added, modified and deleted, repeated serials, unknown fields, over-long values, the bulk upsert)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from portal.extensions import db
from portal.models import Device, ManagedServer
from portal.token_status import compute_status
from tests.sync_helpers import _devices, _kept_count


NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


# ----- token status -------------------------------------------------------------------------------

@pytest.mark.parametrize("expiry,state,expected", [
    (NOW + timedelta(days=200), None, "Valid"),
    (NOW + timedelta(days=30), None, "About to Expire"),
    (NOW + timedelta(days=31), None, "Valid"),
    (NOW + timedelta(seconds=1), None, "About to Expire"),
    (NOW, None, "Expired"),
    (NOW - timedelta(days=1), "terms_not_signed", "Expired"),  # renewing fixes both: say Expired
    (NOW + timedelta(days=200), "terms_not_signed", "Terms Not Accepted"),
    (NOW + timedelta(days=5), "token_rejected", "Token Revoked"),
    (NOW + timedelta(days=200), "access_denied", "Access Denied"),
])
def test_token_status(expiry, state, expected):
    status = compute_status(expiry, state, warning_days=30, now=NOW)
    assert status.label == expected
    assert status.can_sync == (expected in ("Valid", "About to Expire"))
    assert status.remedy


# ----- sync event handling ------------------------------------------------------------------------

def _device(serial, **extra):
    return {"serial_number": serial, "model": "iPhone 15", "os": "iOS", "device_family": "iPhone", **extra}


@pytest.fixture
def server(app):
    from portal import vault

    row = ManagedServer(name="Unit", token_ciphertext=vault.encrypt("{}"), key_ciphertext=vault.encrypt("k"),
                        consumer_key="CK_x", token_expiry=NOW + timedelta(days=365))
    db.session.add(row)
    db.session.commit()
    return row


def test_sync_events_add_update_remove(app, server):
    from portal.devices.store import store_page

    counts = store_page(server.id, [_device("A1"), _device("B2")], 1, NOW)
    assert (counts.added, counts.updated, counts.removed) == (2, 0, 0)
    counts = store_page(server.id, [
        _device("A1", op_type="modified", op_date="2026-11-26T10:00:00Z", profile_status="assigned"),
        _device("C3", op_type="modified", op_date="2026-11-26T10:00:00Z"),  # never seen: counts as added
        {"serial_number": "B2", "op_type": "deleted", "op_date": "2026-11-26T10:00:00Z"},  # minimal record
        {"serial_number": "ZZ", "op_type": "deleted"},  # unknown: nothing to remove
    ], 1, NOW)
    db.session.commit()
    assert (counts.added, counts.updated, counts.removed) == (1, 1, 1)
    assert _kept_count(server.id) == 2  # A1 and C3
    devices = _devices(server.id)
    assert devices["A1"].profile_status == "assigned" and devices["A1"].model == "iPhone 15"
    assert devices["B2"].removed_at is not None and devices["C3"].removed_at is None
    assert "ZZ" not in devices


def test_a_deleted_device_keeps_the_date_of_its_deleted_event(app, server):
    """"Last change at Apple: deleted" was shown with the date of the change before it (device page, CSV)."""
    from portal.devices.store import store_page

    store_page(server.id, [_device("A1", op_type="added", op_date="2026-11-20T08:00:00Z"),
                           _device("B2", op_type="added", op_date="2026-11-20T08:00:00Z"),
                           _device("C3", op_type="added", op_date="2026-11-20T08:00:00Z")], 1, NOW)
    store_page(server.id, [{"serial_number": "A1", "op_type": "deleted", "op_date": "2026-11-26T10:00:00Z"},
                           {"serial_number": "B2", "op_type": "deleted", "op_date": "2026-11-26T11:30:00Z"},
                           {"serial_number": "C3", "op_type": "deleted"}], 1, NOW)  # no date: the last one stays
    db.session.commit()
    devices = _devices(server.id)
    assert devices["A1"].last_op_type == "deleted" and devices["A1"].last_op_date == datetime(
        2026, 11, 26, 10, 0, tzinfo=timezone.utc)
    assert devices["B2"].last_op_date == datetime(2026, 11, 26, 11, 30, tzinfo=timezone.utc)
    assert devices["C3"].last_op_date == datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)


def test_deleted_is_read_whatever_its_case(app, server):
    """Liberal in what we accept (the reference does not fix the case; nanodep lower-cases it)."""
    from portal.devices.store import store_page

    store_page(server.id, [_device("A1"), _device("B2"), _device("C3")], 1, NOW)
    counts = store_page(server.id, [{"serial_number": "A1", "op_type": "DELETED"},
                                    {"serial_number": "B2", "op_type": " Deleted "}], 1, NOW)
    db.session.commit()
    assert counts.removed == 2 and _kept_count(server.id) == 1
    devices = _devices(server.id)
    assert devices["A1"].removed_at is not None and devices["B2"].removed_at is not None


def test_repeated_serial_keeps_the_latest_record(app, server):
    from portal.devices.store import store_page

    store_page(server.id, [
        _device("A1", op_type="added", op_date="2026-11-26T10:00:00Z", color="RED"),
        _device("A1", op_type="modified", op_date="2026-11-26T11:00:00Z", color="BLUE"),
        _device("A1", op_type="modified", op_date="2026-11-26T09:00:00Z", color="GREEN"),
    ], 1, NOW)
    db.session.commit()
    assert _devices(server.id)["A1"].color == "BLUE"


def test_a_removed_device_that_comes_back_is_added(app, server):
    from portal.devices.store import store_page

    store_page(server.id, [_device("A1")], 1, NOW)
    store_page(server.id, [{"serial_number": "A1", "op_type": "deleted"}], 1, NOW)
    db.session.commit()
    assert _kept_count(server.id) == 0
    counts = store_page(server.id, [_device("A1", op_type="added")], 1, NOW)
    db.session.commit()
    assert counts.added == 1 and _devices(server.id)["A1"].removed_at is None
    assert _kept_count(server.id) == 1


def test_unknown_fields_are_kept(app, server):
    from portal.devices.store import store_page

    store_page(server.id, [_device("A1", imei=["123"], is_replacement_device=False, odd=None)], 1, NOW)
    db.session.commit()
    assert _devices(server.id)["A1"].extra["imei"] == ["123"]
    # A later, partial record (no extra fields) keeps what was stored, like every other field.
    store_page(server.id, [{"serial_number": "A1", "op_type": "modified", "profile_status": "pushed"}], 1, NOW)
    db.session.commit()
    device = _devices(server.id)["A1"]
    assert device.extra["imei"] == ["123"] and device.model == "iPhone 15" and device.profile_status == "pushed"


def test_over_long_apple_values_are_cut_to_their_column_not_a_failed_page(app, server):
    """PostgreSQL refuses text longer than its column: one odd record would fail the page, and every
    later sync with it. A serial number too long to be one is left out (cut, it could name another)."""
    from portal.devices.store import store_page

    long_serial = "S" * 65
    counts = store_page(server.id, [
        _device("A1", os="i" * 40, device_family="f" * 40, color="c" * 80, profile_status="p" * 20,
                profile_uuid="u" * 80, model="m" * 300, op_type="o" * 20),
        _device(long_serial),
    ], 1, NOW)
    db.session.commit()
    assert counts.added == 1
    device = _devices(server.id)["A1"]
    assert (len(device.os), len(device.device_family), len(device.color), len(device.profile_status),
            len(device.profile_uuid), len(device.model), len(device.last_op_type)) == (32, 32, 64, 16, 64, 255, 16)
    assert long_serial not in _devices(server.id)


def test_over_long_account_details_are_cut_to_their_column(app, server):
    from jobs.servers import _store_account

    _store_account(server, {"server_name": "n" * 300, "server_uuid": "u" * 100, "org_name": "o" * 300,
                            "org_phone": "1" * 100, "org_address": "a" * 600, "admin_id": "x" * 300})
    db.session.commit()
    db.session.expire_all()
    row = db.session.get(ManagedServer, server.id)
    assert (len(row.apple_server_name), len(row.apple_server_uuid), len(row.org_name), len(row.org_phone),
            len(row.org_address), len(row.admin_id)) == (255, 64, 255, 64, 500, 255)


def test_the_bulk_upsert_stores_exactly_what_the_model_types_store(app, server):
    """store_page bypasses SQLAlchemy's per-row conversions: the raw stored values must be the ones
    the ORM writes for the same device, so every reader sees the same data either way."""
    from sqlalchemy import text

    from portal.devices.store import parse_time, store_page

    record = _device("FAST1", color="SPACE GRAY", description="IPHONE 15 128GB", asset_tag="A-1",
                     profile_status="pushed", profile_uuid="9145EDB932A42C48A9DD56AD69213C64",
                     profile_assign_time="2026-01-02T03:04:05Z", profile_push_time="2026-01-02T04:05:06Z",
                     device_assigned_date="2025-12-31T23:59:59Z", device_assigned_by="ops@example.com",
                     op_type="added", op_date="2026-11-26T10:00:00Z", imei=["35 123"], odd={"a": 1})
    store_page(server.id, [record], 3, NOW)
    extra = {"imei": ["35 123"], "odd": {"a": 1}}
    db.session.add(Device(
        server_id=server.id, serial_number="ORM1", model="iPhone 15", os="iOS", device_family="iPhone",
        color="SPACE GRAY", description="IPHONE 15 128GB", asset_tag="A-1", profile_status="pushed",
        profile_uuid="9145EDB932A42C48A9DD56AD69213C64", device_assigned_by="ops@example.com",
        profile_assign_time=parse_time("2026-01-02T03:04:05Z"), profile_push_time=parse_time("2026-01-02T04:05:06Z"),
        device_assigned_date=parse_time("2025-12-31T23:59:59Z"), last_op_type="added",
        last_op_date=parse_time("2026-11-26T10:00:00Z"), extra=extra, fetch_generation=3,
        first_seen_at=NOW, updated_at=NOW, removed_at=None))
    db.session.commit()

    columns = [c.name for c in Device.__table__.columns if c.name not in ("id", "serial_number")]
    if db.engine.dialect.name == "postgresql":  # compare what PostgreSQL holds, as text
        selected = ", ".join(f"{name}::text" for name in columns)
    else:
        selected = ", ".join(columns)
    raw = {serial: rest for serial, *rest in db.session.execute(
        text(f"SELECT serial_number, {selected} FROM device WHERE server_id = :s"), {"s": server.id})}
    assert dict(zip(columns, raw["FAST1"])) == dict(zip(columns, raw["ORM1"]))
    fast = _devices(server.id)["FAST1"]
    assert fast.extra == extra and fast.profile_push_time == parse_time("2026-01-02T04:05:06Z")
    assert fast.first_seen_at == NOW and fast.updated_at == NOW
