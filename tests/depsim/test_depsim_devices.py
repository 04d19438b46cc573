"""Fetch, sync, device details and disown: the cursor state machine and sync events."""
from __future__ import annotations

import base64
import re
import time

import pytest

from portal.depsim.state import SimState

SERIAL = re.compile(r"[0-9A-Z]{12}")


def test_fetch_pages_until_exhausted(make_caller):
    caller = make_caller(devices=25)
    first = caller.call("POST", "/server/devices", {"limit": 10})
    assert first.headers["Content-Type"] == "application/json;charset=UTF8"
    page = first.json()
    assert list(page) == ["devices", "fetched_until", "more_to_follow", "cursor"]
    assert len(page["devices"]) == 10 and page["more_to_follow"] is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", page["fetched_until"])
    # Apple-like cursor: unpadded base64url of colon-separated numbers.
    decoded = base64.urlsafe_b64decode(page["cursor"] + "=" * (-len(page["cursor"]) % 4)).decode()
    assert "=" not in page["cursor"] and re.fullmatch(r"\d+(:\d+)+", decoded)
    serials = [d["serial_number"] for d in page["devices"]]
    while page["more_to_follow"]:
        page = caller.call("POST", "/server/devices", {"limit": 10, "cursor": page["cursor"]}).json()
        serials += [d["serial_number"] for d in page["devices"]]
    assert len(serials) == len(set(serials)) == 25
    assert all(SERIAL.fullmatch(s) for s in serials)
    again = caller.call("POST", "/server/devices", {"cursor": page["cursor"]})
    assert (again.status_code, again.text) == (400, "EXHAUSTED_CURSOR")


def test_fetch_is_chronological_and_has_no_op_fields(make_caller, depsim):
    caller = make_caller("Chrono", devices=3)
    depsim.state.advance_clock(60)
    depsim.state.add_devices("Chrono", 2)
    devices, _ = caller.all_devices()
    dates = [d["device_assigned_date"] for d in devices]
    assert dates == sorted(dates) and dates[0] != dates[-1]
    assert all("op_type" not in d and "op_date" not in d for d in devices)
    assert {"serial_number", "model", "description", "color", "os", "device_family",
            "profile_status", "device_assigned_by"} <= set(devices[0])


@pytest.mark.parametrize("kwargs", [{"data": b""}, {"json": {"cursor": None}}, {"json": {"cursor": ""}},
                                    {"json": {}}])
def test_fetch_accepts_absent_cursor_and_body(make_caller, kwargs):
    caller = make_caller(devices=3)
    response = caller.call("POST", "/server/devices", **kwargs)
    assert response.status_code == 200 and len(response.json()["devices"]) == 3


def test_fetch_limit_default_and_maximum(make_caller):
    caller = make_caller(devices=1100)
    assert len(caller.call("POST", "/server/devices", {}).json()["devices"]) == 100
    page = caller.call("POST", "/server/devices", {"limit": 5000}).json()
    assert len(page["devices"]) == 1000 and page["more_to_follow"] is True


def test_bad_cursors(make_caller):
    caller = make_caller("One", devices=2)
    other = make_caller("Two", devices=2)
    _, cursor = other.all_devices()
    for bad in ("garbage!", "bm90IGEgY3Vyc29y", cursor):
        for path in ("/server/devices", "/devices/sync"):
            response = caller.call("POST", path, {"cursor": bad})
            assert (response.status_code, response.text) == (400, "INVALID_CURSOR"), (path, bad)
    response = caller.call("POST", "/devices/sync", {})
    assert (response.status_code, response.text) == (400, "CURSOR_REQUIRED")


def test_cursor_and_limit_of_the_wrong_type_are_malformed(make_caller):
    # FetchDeviceRequest: cursor a string of ≤1000 characters, limit an int32 (reference §3.2, §6.2)
    caller = make_caller(devices=2)
    _, cursor = caller.all_devices()
    for body in ({"limit": "5"}, {"limit": True}, {"limit": 2.5}, {"limit": 2**31}, {"cursor": 5},
                 {"cursor": [cursor]}, {"cursor": {"c": cursor}}):
        for path in ("/server/devices", "/devices/sync"):
            sent = {"cursor": cursor, **body} if path == "/devices/sync" else body
            response = caller.call("POST", path, sent)
            assert (response.status_code, response.text) == (400, "MALFORMED_REQUEST_BODY"), (path, body)
    for bad in ("x" * 1001, cursor + "=", cursor + " ", cursor + "é"):
        response = caller.call("POST", "/devices/sync", {"cursor": bad})
        assert (response.status_code, response.text) == (400, "INVALID_CURSOR"), bad
    assert caller.call("POST", "/devices/sync", {"cursor": cursor, "limit": 5}).status_code == 200


def test_sync_reports_inventory_changes(make_caller, depsim):
    state = depsim.state
    source = make_caller("Source", devices=4)
    target = make_caller("Target", devices=1)
    devices, cursor = source.all_devices()
    _, target_cursor = target.all_devices()
    empty = source.call("POST", "/devices/sync", {"cursor": cursor}).json()
    assert empty["devices"] == [] and empty["more_to_follow"] is False and empty["cursor"]
    cursor = empty["cursor"]

    serials = [d["serial_number"] for d in devices]
    added = state.add_devices("Source", 1, serials=["C02T0HL0GGC0"])
    state.move_devices([serials[0]], "Target")
    state.release_devices([serials[1]])
    page = source.call("POST", "/devices/sync", {"cursor": cursor}).json()
    ops = [(d["serial_number"], d["op_type"]) for d in page["devices"]]
    assert ops == [(added[0], "added"), ("C02T0HL0GGC0", "added"),
                   (serials[0], "deleted"), (serials[1], "deleted")]
    assert all(re.fullmatch(r".+T.+Z", d["op_date"]) for d in page["devices"])
    on_target = target.call("POST", "/devices/sync", {"cursor": target_cursor}).json()["devices"]
    assert [(d["serial_number"], d["op_type"]) for d in on_target] == [(serials[0], "added")]
    assert on_target[0]["device_assigned_date"] == on_target[0]["op_date"]


def test_move_can_surface_as_modified(make_caller, depsim):
    source = make_caller("A", devices=1)
    target = make_caller("B")
    (device,), _ = source.all_devices()
    _, cursor = target.all_devices()
    depsim.state.move_devices([device["serial_number"]], "B", op_type="modified")
    page = target.call("POST", "/devices/sync", {"cursor": cursor}).json()
    assert [d["op_type"] for d in page["devices"]] == ["modified"]


def test_sync_pages_with_limit(make_caller, depsim):
    caller = make_caller(devices=1)
    _, cursor = caller.all_devices()
    depsim.state.add_devices("Test Server", 5)
    first = caller.call("POST", "/devices/sync", {"cursor": cursor, "limit": 3}).json()
    assert len(first["devices"]) == 3 and first["more_to_follow"] is True
    second = caller.call("POST", "/devices/sync", {"cursor": first["cursor"], "limit": 3}).json()
    assert len(second["devices"]) == 2 and second["more_to_follow"] is False


def test_sync_cursor_expires_after_seven_days(make_caller, depsim):
    caller = make_caller(devices=2)
    _, cursor = caller.all_devices()
    depsim.state.advance_clock(6 * 86400)
    caller.login()
    fresh = caller.call("POST", "/devices/sync", {"cursor": cursor})
    assert fresh.status_code == 200
    depsim.state.advance_clock(2 * 86400)  # 8 days after the fetch
    caller.login()
    response = caller.call("POST", "/devices/sync", {"cursor": cursor})
    assert (response.status_code, response.text) == (400, "EXPIRED_CURSOR")
    # The cursor handed out two days ago is still fine.
    assert caller.call("POST", "/devices/sync", {"cursor": fresh.json()["cursor"]}).status_code == 200


def test_fetching_with_a_sync_cursor_is_exhausted(make_caller):
    caller = make_caller(devices=1)
    _, cursor = caller.all_devices()
    sync_cursor = caller.call("POST", "/devices/sync", {"cursor": cursor}).json()["cursor"]
    assert caller.call("POST", "/server/devices", {"cursor": sync_cursor}).text == "EXHAUSTED_CURSOR"


def test_mark_pushed_emits_modified(make_caller, depsim):
    caller = make_caller(devices=1)
    (device,), cursor = caller.all_devices()
    serial = device["serial_number"]
    uuid = caller.call("POST", "/profile", {"profile_name": "P", "url": "https://mdm.example.com/e",
                                            "devices": [serial]}).json()["profile_uuid"]
    assert depsim.state.mark_pushed([serial]) == [serial]
    page = caller.call("POST", "/devices/sync", {"cursor": cursor}).json()["devices"]
    assert [d["op_type"] for d in page] == ["modified", "modified"]
    assert page[-1]["profile_status"] == "pushed" and page[-1]["profile_uuid"] == uuid
    assert "profile_push_time" in page[-1]


def test_device_details(make_caller):
    caller = make_caller(devices=2)
    devices, _ = caller.all_devices()
    serial = devices[0]["serial_number"]
    response = caller.call("POST", "/devices", {"devices": [serial, "NOTMINE00000"]})
    body = response.json()["devices"]
    assert body["NOTMINE00000"] == {"response_status": "NOT_ACCESSIBLE"}
    assert body[serial]["response_status"] == "SUCCESS" and body[serial]["serial_number"] == serial
    response = caller.call("POST", "/devices", {"devices": []})
    assert (response.status_code, response.text) == (400, "DEVICE_ID_REQUIRED")


def test_disown(make_caller, depsim):
    caller = make_caller(devices=2)
    devices, cursor = caller.all_devices()
    serial = devices[0]["serial_number"]
    response = caller.call("POST", "/devices/disown", {"devices": [serial, "NOTMINE00000"]})
    assert response.json() == {"devices": {serial: "SUCCESS", "NOTMINE00000": "NOT_ACCESSIBLE"}}
    page = caller.call("POST", "/devices/sync", {"cursor": cursor}).json()["devices"]
    assert [(d["serial_number"], d["op_type"]) for d in page] == [(serial, "deleted")]
    assert depsim.state.server("Test Server")["device_count"] == 1


def test_protocol_version_shapes_device_records(make_caller, depsim):
    caller = make_caller(devices=0)
    depsim.state.add_devices("Test Server", serials=["DMPAAAAAAAAA", "F2LBBBBBBBBB"])

    def record(version):
        devices = caller.call("POST", "/devices", {"devices": ["DMPAAAAAAAAA", "F2LBBBBBBBBB"]},
                              version=version).json()["devices"]
        return devices["DMPAAAAAAAAA"], devices["F2LBBBBBBBBB"]

    ipad, phone = record(1)
    assert "os" not in ipad and "device_family" not in ipad
    ipad, _ = record(6)
    assert (ipad["os"], ipad["device_family"]) == ("iOS", "iPad")
    ipad, phone = record(7)
    assert ipad["os"] == "iPadOS" and "wifi_mac_address" not in phone
    _, phone = record(10)
    assert phone["os"] == "iOS" and re.fullmatch(r"([0-9A-F]{2}:){5}[0-9A-F]{2}", phone["wifi_mac_address"])
    assert len(phone["imei"][0]) == 15 and phone["is_replacement_device"] is False


def test_account_detail(make_caller, depsim):
    caller = make_caller("Acme MDM")
    detail = caller.call("GET", "/account").json()
    server = depsim.state.server("Acme MDM")
    assert detail["server_name"] == "Acme MDM" and detail["server_uuid"] == server["uuid"]
    assert re.fullmatch(r"[0-9A-F]{32}", detail["server_uuid"])
    assert detail["admin_id"] == detail["facilitator_id"]
    paged = {u["uri"]: u for u in detail["urls"]}["/server/devices"]
    assert paged["limit"] == {"default": 100, "maximum": 1000}
    old = caller.call("GET", "/account", version=2).json()
    assert "urls" not in old and "org_id" not in old


def test_two_hundred_thousand_devices(tmp_path):
    state = SimState(tmp_path)
    started = time.perf_counter()
    state.create_server("Huge", devices=200_000)
    elapsed = time.perf_counter() - started
    state.create_server("Other", devices=1000)
    assert state.server("Huge")["device_count"] == 200_000
    serials = {r[0] for r in state.db.query("SELECT serial FROM devices")}
    assert len(serials) == 201_000  # unique across servers
    print(f"200k devices in {elapsed:.1f}s")
