"""Define / get / assign / remove profiles, with Apple's validation codes and per-device results."""
from __future__ import annotations

import base64
import re

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

PROFILE = {"profile_name": "Corporate", "url": "https://mdm.example.com/enroll"}


@pytest.mark.parametrize("changes, code", [
    ({"profile_name": None}, "CONFIG_NAME_REQUIRED"),
    ({"profile_name": ""}, "CONFIG_NAME_REQUIRED"),
    ({"profile_name": "x" * 126}, "CONFIG_NAME_INVALID"),
    ({"url": None}, "CONFIG_URL_REQUIRED"),
    ({"url": "not a url"}, "CONFIG_URL_INVALID"),
    ({"url": "ftp://mdm.example.com/"}, "CONFIG_URL_INVALID"),
    ({"url": "https://" + "a" * 2000 + ".com"}, "CONFIG_URL_INVALID"),
    ({"configuration_web_url": "nope"}, "CONFIG_URL_INVALID"),
    ({"department": ""}, "DEPARTMENT_INVALID"),
    ({"department": "d" * 126}, "DEPARTMENT_INVALID"),
    ({"is_mdm_removable": False}, "FLAGS_INVALID"),
    ({"is_mdm_removable": False, "is_supervised": False}, "FLAGS_INVALID"),
    ({"language": "english"}, "LOCALE_INVALID"),
    ({"region": "us"}, "LOCALE_INVALID"),
    ({"org_magic": ""}, "MAGIC_INVALID"),
    ({"org_magic": "m" * 257}, "MAGIC_INVALID"),
    ({"support_email_address": "not-an-email"}, "SUPPORT_EMAIL_INVALID"),
    ({"support_phone_number": ""}, "SUPPORT_PHONE_INVALID"),
    ({"support_phone_number": "1" * 51}, "SUPPORT_PHONE_INVALID"),
    ({"is_supervised": "yes"}, "MALFORMED_REQUEST_BODY"),
    ({"anchor_certs": ["bm90IGEgY2VydA=="]}, "MALFORMED_REQUEST_BODY"),
    # wrong types and text no UTF-8 reader takes
    ({"department": 5}, "MALFORMED_REQUEST_BODY"),
    ({"profile_name": ["Corporate"]}, "MALFORMED_REQUEST_BODY"),
    ({"skip_setup_items": "Siri"}, "MALFORMED_REQUEST_BODY"),
    ({"profile_name": "Corporate \ud800"}, "MALFORMED_REQUEST_BODY"),
    # limits counted in bytes of UTF-8 (é 2, 日 3, 😀 4) and the URL percent-encoded
    ({"profile_name": "é" * 63}, "CONFIG_NAME_INVALID"),
    ({"department": "日" * 42}, "DEPARTMENT_INVALID"),
    ({"support_phone_number": "\u0661" * 26}, "SUPPORT_PHONE_INVALID"),
    ({"org_magic": "😀" * 65}, "MAGIC_INVALID"),
    ({"support_email_address": "é" * 120 + "@example.com"}, "SUPPORT_EMAIL_INVALID"),
    ({"url": "https://mdm.example.com/" + "é" * 330}, "CONFIG_URL_INVALID"),
])
def test_define_profile_validation(make_caller, changes, code):
    caller = make_caller()
    profile = {k: v for k, v in {**PROFILE, **changes}.items() if v is not None}
    response = caller.call("POST", "/profile", profile)
    assert (response.status_code, response.text) == (400, code)
    assert response.headers["Content-Type"] == "text/plain;charset=UTF8"


def test_define_accepts_a_full_profile(make_caller, key_and_cert):
    caller = make_caller()
    der = x509.load_pem_x509_certificate(key_and_cert[1]).public_bytes(serialization.Encoding.DER)
    profile = {**PROFILE, "is_supervised": True, "is_mdm_removable": False, "department": "IT",
               "support_phone_number": "+1 408 555 0100", "support_email_address": "help@example.com",
               "org_magic": "0729093D-D02C-4D8B-89DC-4EF900AED5B2", "language": "en", "region": "US",
               "anchor_certs": [base64.b64encode(der).decode()], "skip_setup_items": ["AppleID", "Siri"]}
    response = caller.call("POST", "/profile", profile)
    assert response.status_code == 200, response.text


def test_define_and_get_profile(make_caller):
    caller = make_caller()
    first = caller.call("POST", "/profile", {**PROFILE, "skip_setup_items": ["Siri"]}).json()
    second = caller.call("POST", "/profile", PROFILE).json()
    assert re.fullmatch(r"[0-9A-F]{32}", first["profile_uuid"])
    assert first["profile_uuid"] != second["profile_uuid"]  # every define is a new profile
    assert first["devices"] == {}
    fetched = caller.call("GET", f"/profile?profile_uuid={first['profile_uuid']}").json()
    assert fetched["profile_uuid"] == first["profile_uuid"] and "devices" not in fetched
    assert fetched["is_mdm_removable"] is True and fetched["allow_pairing"] is True
    assert fetched["is_supervised"] is False and fetched["skip_setup_items"] == ["Siri"]
    response = caller.call("GET", "/profile")
    assert (response.status_code, response.text) == (400, "PROFILE_UUID_REQUIRED")
    response = caller.call("GET", "/profile?profile_uuid=" + "0" * 32)
    assert (response.status_code, response.text) == (400, "NOT_FOUND")


def test_get_profile_shows_only_the_fields_apple_knows(make_caller, depsim):
    # A misspelt key (petarov's "supervised" for "is_supervised", §3.6) must not come back from GET
    # as if Apple had taken it: the device would never see it.
    caller = make_caller("Spelling")
    uuid = caller.call("POST", "/profile", {**PROFILE, "supervised": True, "department": "IT"}).json()["profile_uuid"]
    fetched = caller.call("GET", f"/profile?profile_uuid={uuid}").json()
    assert "supervised" not in fetched and fetched["is_supervised"] is False and fetched["department"] == "IT"
    assert depsim.state.profiles("Spelling")[0]["supervised"] is True  # what was sent stays visible to tests

def test_define_with_devices_assigns_them(make_caller):
    caller = make_caller(devices=1)
    (device,), _ = caller.all_devices()
    serial = device["serial_number"]
    body = caller.call("POST", "/profile", {**PROFILE, "devices": [serial, "NOTMINE00000"]}).json()
    assert body["devices"] == {serial: "SUCCESS", "NOTMINE00000": "NOT_ACCESSIBLE"}
    details = caller.call("POST", "/devices", {"devices": [serial]}).json()["devices"][serial]
    assert details["profile_uuid"] == body["profile_uuid"] and details["profile_status"] == "assigned"


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_assign_profile(make_caller, method):
    caller = make_caller(devices=2)
    devices, cursor = caller.all_devices()
    serials = [d["serial_number"] for d in devices]
    uuid = caller.call("POST", "/profile", PROFILE).json()["profile_uuid"]
    response = caller.call(method, "/profile/devices", {"profile_uuid": uuid, "devices": serials + ["NOTMINE00000"]})
    assert response.json() == {"profile_uuid": uuid, "devices": {serials[0]: "SUCCESS", serials[1]: "SUCCESS",
                                                                 "NOTMINE00000": "NOT_ACCESSIBLE"}}
    synced = caller.call("POST", "/devices/sync", {"cursor": cursor}).json()["devices"]
    assert [(d["serial_number"], d["op_type"], d["profile_status"]) for d in synced] == [
        (serials[0], "modified", "assigned"), (serials[1], "modified", "assigned")]
    assert all("profile_assign_time" in d for d in synced)


def test_assign_errors(make_caller):
    caller = make_caller(devices=1)
    uuid = caller.call("POST", "/profile", PROFILE).json()["profile_uuid"]
    checks = [({"devices": ["X"]}, 400, "PROFILE_UUID_REQUIRED"),
              ({"profile_uuid": uuid}, 400, "DEVICE_ID_REQUIRED"),
              ({"profile_uuid": uuid, "devices": []}, 400, "DEVICE_ID_REQUIRED"),
              ({"profile_uuid": "F" * 32, "devices": ["X"]}, 404, "NOT_FOUND")]
    for body, status, text in checks:
        response = caller.call("POST", "/profile/devices", body)
        assert (response.status_code, response.text) == (status, text), body
    response = caller.call("POST", "/profile/devices", data=b"{not json", headers={"Content-Type": "application/json"})
    assert (response.status_code, response.text) == (400, "MALFORMED_REQUEST_BODY")


@pytest.mark.parametrize("version, status, retry_after", [
    (8, "FAILED", None), (9, "THROTTLED", None), (10, "THROTTLED", 45)])
def test_throttled_is_gated_by_protocol_version(make_caller, depsim, version, status, retry_after):
    caller = make_caller(devices=2, version=version)
    devices, _ = caller.all_devices()
    hit, spared = devices[0]["serial_number"], devices[1]["serial_number"]
    depsim.state.set_fault("Test Server", "throttle", {"serials": [hit], "retry_after": 45})
    uuid = caller.call("POST", "/profile", PROFILE).json()["profile_uuid"]
    body = caller.call("POST", "/profile/devices", {"profile_uuid": uuid, "devices": [hit, spared]}).json()
    assert body["devices"] == {hit: status, spared: "SUCCESS"}
    assert body.get("retry_after_seconds") == retry_after


def test_throttle_fraction_and_minimum_retry_after(make_caller, depsim):
    caller = make_caller(devices=20)
    devices, _ = caller.all_devices()
    depsim.state.set_fault("Test Server", "throttle", {"fraction": 1.0, "retry_after": 1})
    uuid = caller.call("POST", "/profile", PROFILE).json()["profile_uuid"]
    body = caller.call("POST", "/profile/devices",
                       {"profile_uuid": uuid, "devices": [d["serial_number"] for d in devices]}).json()
    assert set(body["devices"].values()) == {"THROTTLED"} and body["retry_after_seconds"] == 10


def test_assign_failed_fault(make_caller, depsim):
    caller = make_caller(devices=2)
    devices, _ = caller.all_devices()
    bad, good = devices[0]["serial_number"], devices[1]["serial_number"]
    depsim.state.set_fault("Test Server", "assign_failed", [bad])
    uuid = caller.call("POST", "/profile", PROFILE).json()["profile_uuid"]
    body = caller.call("PUT", "/profile/devices", {"profile_uuid": uuid, "devices": [bad, good]}).json()
    assert body["devices"] == {bad: "FAILED", good: "SUCCESS"} and "retry_after_seconds" not in body


def test_remove_profile(make_caller):
    caller = make_caller(devices=1)
    (device,), _ = caller.all_devices()
    serial = device["serial_number"]
    uuid = caller.call("POST", "/profile", {**PROFILE, "devices": [serial]}).json()["profile_uuid"]
    _, cursor = caller.all_devices()
    response = caller.call("DELETE", "/profile/devices", {"devices": [serial, "NOTMINE00000"]})
    assert response.json() == {"devices": {serial: "SUCCESS", "NOTMINE00000": "NOT_ACCESSIBLE"}}
    (event,) = caller.call("POST", "/devices/sync", {"cursor": cursor}).json()["devices"]
    assert (event["op_type"], event["profile_status"], event["profile_uuid"]) == ("modified", "removed", uuid)
    response = caller.call("DELETE", "/profile/devices", {"devices": []})
    assert (response.status_code, response.text) == (400, "DEVICE_ID_REQUIRED")


def test_wrong_method_is_405_with_empty_body(make_caller):
    caller = make_caller()
    for method, path in (("GET", "/profile/devices"), ("GET", "/server/devices"), ("POST", "/account"),
                         ("PATCH", "/profile")):
        response = caller.call(method, path)
        assert (response.status_code, response.content) == (405, b""), (method, path)


def test_non_json_bodies_are_malformed(make_caller):
    caller = make_caller()
    for path in ("/server/devices", "/devices/sync", "/devices", "/profile", "/devices/disown"):
        response = caller.call("POST", path, data=b"devices=1", headers={"Content-Type": "text/plain"})
        assert (response.status_code, response.text) == (400, "MALFORMED_REQUEST_BODY"), path
    response = caller.call("POST", "/devices", [1, 2])
    assert response.text == "MALFORMED_REQUEST_BODY"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/json;charset=latin-1"])
def test_json_bodies_must_be_declared_json(make_caller, content_type):
    # reference §2.4: bodies are `application/json` (clients add charset=UTF8); §3.0: the only body error
    caller = make_caller(devices=1)
    uuid = caller.call("POST", "/profile", PROFILE).json()["profile_uuid"]
    (device,), _ = caller.all_devices()
    body = ('{"profile_uuid":"%s","devices":["%s"]}' % (uuid, device["serial_number"])).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    for method, path in (("POST", "/profile/devices"), ("PUT", "/profile/devices"), ("DELETE", "/profile/devices"),
                         ("POST", "/devices"), ("POST", "/devices/disown"), ("POST", "/profile"),
                         ("POST", "/server/devices"), ("POST", "/devices/sync")):
        response = caller.call(method, path, data=body, headers=headers)
        assert (response.status_code, response.text) == (400, "MALFORMED_REQUEST_BODY"), (method, path)
    for accepted in ("application/json", "application/json;charset=UTF8", "application/json; charset=utf-8"):
        response = caller.call("POST", "/profile/devices", data=body, headers={"Content-Type": accepted})
        assert response.status_code == 200, accepted


def test_at_most_1000_serials_per_request(make_caller):
    # Apple asks for ≤1000 devices per call (reference §6.3, §3.8); other device lists: same rule (§9).
    caller = make_caller(devices=1)
    (device,), _ = caller.all_devices()
    uuid = caller.call("POST", "/profile", PROFILE).json()["profile_uuid"]
    full = [device["serial_number"]] + [f"ZZ{i:08d}" for i in range(999)]
    over = full + ["ZZ99999999"]
    bodies = {("POST", "/profile/devices"): {"profile_uuid": uuid}, ("PUT", "/profile/devices"): {"profile_uuid": uuid},
              ("DELETE", "/profile/devices"): {}, ("POST", "/devices"): {}, ("POST", "/devices/disown"): {},
              ("POST", "/profile"): PROFILE}
    for (method, path), extra in bodies.items():
        response = caller.call(method, path, {**extra, "devices": over})
        assert (response.status_code, response.text) == (400, "TOO_MANY_DEVICES"), (method, path)
        response = caller.call(method, path, {**extra, "devices": [device["serial_number"]] * 1001})
        assert (response.status_code, response.text) == (400, "TOO_MANY_DEVICES"), (method, path)  # counted as sent
    for (method, path), extra in bodies.items():  # exactly 1000: answered for each serial (disown last)
        if path == "/devices/disown":
            continue
        response = caller.call(method, path, {**extra, "devices": full})
        assert response.status_code == 200, (method, path)
        assert len(response.json()["devices"]) == 1000
    response = caller.call("POST", "/devices/disown", {"devices": full})
    assert response.status_code == 200 and len(response.json()["devices"]) == 1000


def test_profile_uuids_are_taken_as_sent(make_caller):
    # Apple's UUIDs are 32 upper-case hex (reference §3.6): another spelling is an unknown profile.
    caller = make_caller(devices=1)
    (device,), _ = caller.all_devices()
    uuid = caller.call("POST", "/profile", PROFILE).json()["profile_uuid"]
    for spelling in (uuid.lower(), f" {uuid}", f"{uuid}\n", uuid[:8] + "-" + uuid[8:]):
        response = caller.call("GET", f"/profile?profile_uuid={requests.utils.quote(spelling)}")
        assert (response.status_code, response.text) == (400, "NOT_FOUND"), spelling
        response = caller.call("POST", "/profile/devices", {"profile_uuid": spelling, "devices": [device["serial_number"]]})
        assert (response.status_code, response.text) == (404, "NOT_FOUND"), spelling
    assert caller.call("GET", f"/profile?profile_uuid={uuid}").json()["profile_uuid"] == uuid
    response = caller.call("POST", "/profile/devices", {"profile_uuid": uuid, "devices": [device["serial_number"]]})
    assert response.json()["devices"] == {device["serial_number"]: "SUCCESS"}


def test_limits_in_bytes_of_utf8_are_accepted_at_the_maximum(make_caller):
    caller = make_caller()
    profile = {"profile_name": "é" * 62 + "x", "url": "https://mdm.example.com/" + "é" * 329 + "x" * 2,
               "department": "日" * 41 + "xx", "support_phone_number": "\u0661" * 25,
               "org_magic": "😀" * 64, "support_email_address": "é" * 119 + "@example.com"}
    response = caller.call("POST", "/profile", profile)
    assert response.status_code == 200, response.text
    stored = caller.call("GET", f"/profile?profile_uuid={response.json()['profile_uuid']}").json()
    assert {key: stored[key] for key in profile} == profile
