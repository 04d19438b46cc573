"""GET /session (OAuth 1.0a), session tokens on data calls, token replacement and expiry."""
from __future__ import annotations

import time

import pytest
import requests

from .conftest import USER_AGENT, AppleCaller


def test_session_signed_without_realm(make_caller):
    caller = make_caller(login=False)
    response = caller.session()
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json;charset=UTF8"
    body = response.json()
    assert list(body) == ["auth_session_token"] and body["auth_session_token"]
    assert b"realm" not in response.request.headers["Authorization"]


def test_session_signed_with_realm(make_caller):
    caller = make_caller(login=False)
    response = caller.session(realm="ADM")
    assert b'realm="ADM"' in response.request.headers["Authorization"]
    assert response.status_code == 200


def test_session_signature_covers_the_host_the_client_used(make_caller, depsim):
    caller = make_caller(login=False)
    caller.url = depsim.url.replace("127.0.0.1", "localhost")
    assert caller.session().status_code == 200


def test_bad_signature_is_401(make_caller):
    caller = make_caller(login=False)
    response = caller.session(credentials={"access_secret": "AS_" + "0" * 40})
    assert response.status_code == 401
    assert response.text == "oauth_problem_adviceUnauthorized"
    assert response.headers["Content-Type"] == "text/plain;charset=UTF8"


def test_unknown_consumer_key_is_401(make_caller):
    caller = make_caller(login=False)
    assert caller.session(credentials={"consumer_key": "CK_" + "1" * 96}).status_code == 401


def test_unknown_access_token_is_401(make_caller):
    caller = make_caller(login=False)
    assert caller.session(credentials={"access_token": "AT_O1O2O3"}).status_code == 401


def test_replayed_nonce_and_timestamp_is_401(make_caller):
    caller = make_caller(login=False)
    request = requests.Request("GET", caller.url + "/session", auth=caller.oauth(),
                               headers={"User-Agent": USER_AGENT}).prepare()
    assert caller.http.send(request).status_code == 200
    assert caller.http.send(request).status_code == 401


def test_stale_timestamp_is_401(make_caller):
    caller = make_caller(login=False)
    assert caller.session(timestamp=str(int(time.time()) - 3600)).status_code == 401


def test_malformed_authorization_is_400(make_caller):
    caller = make_caller(login=False)
    for header in ("Basic Zm9vOmJhcg==", 'OAuth oauth_consumer_key="CK_1"',
                   'OAuth oauth_consumer_key="a", oauth_consumer_key="b"'):
        response = requests.get(caller.url + "/session",
                                headers={"User-Agent": USER_AGENT, "Authorization": header})
        assert (response.status_code, response.text) == (400, "oauth_problem_adviceBad Request"), header


def test_plaintext_signature_method_is_400(make_caller):
    caller = make_caller(login=False)
    assert caller.session(signature_method="PLAINTEXT").status_code == 400


def test_user_agent_required_everywhere(make_caller):
    caller = make_caller()
    response = caller.session(headers={"User-Agent": ""})
    assert (response.status_code, response.text) == (400, "USER_AGENT_MISSING")
    response = caller.call("GET", "/account", headers={"User-Agent": ""})
    assert (response.status_code, response.text) == (400, "USER_AGENT_MISSING")


@pytest.mark.parametrize("value, token", [("", "PROTOCOL_VERSION_MISSING"), ("ten", "PROTOCOL_VERSION_INVALID"),
                                          ("0", "PROTOCOL_VERSION_INVALID"), ("-3", "PROTOCOL_VERSION_INVALID"),
                                          ("\u00b2", "PROTOCOL_VERSION_INVALID")])
def test_protocol_version_is_required_on_data_calls(make_caller, value, token):
    # Every client sends it (reference §2.4); Apple's answer without it is undocumented (§2.5): refused.
    caller = make_caller(devices=1)
    for method, path, body in (("GET", "/account", None), ("POST", "/server/devices", {}),
                               ("POST", "/devices", {"devices": ["X"]})):
        response = caller.call(method, path, body, headers={"X-Server-Protocol-Version": value})
        assert (response.status_code, response.text) == (400, token), (method, path)
    response = caller.session(headers={"X-Server-Protocol-Version": value})
    assert response.status_code == 200  # /session: Apple's own example sends only the OAuth header (§2.2)


@pytest.mark.parametrize("version", ["", "ten"])
def test_a_bad_session_is_refused_before_a_bad_protocol_version(make_caller, depsim, version):
    # Apple documents no order (reference §2.3, §2.5): authentication first, as HTTP servers usually do,
    # so a client whose session is gone hears 401 (sign in again), not a 400 it cannot act on.
    caller = make_caller()
    good = caller.token
    caller.token = "0" * 48
    headers = {"X-Server-Protocol-Version": version}
    response = caller.call("POST", "/server/devices", {}, headers=headers)
    assert (response.status_code, response.text) == (401, "UNAUTHORIZED")
    depsim.state.update_settings(refused_session_status=403)
    assert caller.call("GET", "/account", headers=headers).status_code == 403
    caller.token = good
    depsim.state.set_fault("Test Server", "terms_not_signed", True)  # the token's refusal comes first too
    response = caller.call("GET", "/account", headers=headers)
    assert (response.status_code, response.text) == (403, "T_C_NOT_SIGNED")
    depsim.state.set_fault("Test Server", "terms_not_signed", False)
    response = caller.call("GET", "/account", headers=headers)
    assert response.status_code == 400 and response.text.startswith("PROTOCOL_VERSION_")


def test_data_call_without_or_with_unknown_session_is_401(make_caller):
    caller = make_caller(login=False)
    response = caller.call("GET", "/account")
    assert response.status_code == 401
    assert response.content == b"UNAUTHORIZED"
    assert response.headers["Content-Type"] == "text/plain;charset=UTF8"
    caller.token = "0" * 48
    assert caller.call("POST", "/server/devices", {}).status_code == 401


def test_unknown_session_can_answer_forbidden_as_apple_documents_too(make_caller, depsim):
    # Apple: 401 for an expired session, 403 FORBIDDEN for an invalid one (reference §2.3).
    depsim.state.update_settings(refused_session_status=403)
    caller = make_caller()
    good = caller.token
    caller.token = "0" * 48
    response = caller.call("GET", "/account")
    assert (response.status_code, response.content) == (403, b"FORBIDDEN")
    caller.token = good
    assert caller.call("GET", "/account").status_code == 200


def test_session_can_rotate_on_every_answer_and_refuse_the_old_one_at_once(make_caller, depsim):
    # The strictest reading of reference §2.3 (rotation and the old session's fate are undocumented).
    depsim.state.update_settings(session_rotate_every=1, session_grace_seconds=0)
    caller = make_caller()
    first = caller.token
    response = caller.call("GET", "/account")
    assert response.status_code == 200 and caller.token != first
    stale = AppleCaller(caller.url, caller.credentials)
    stale.token = first
    assert stale.call("GET", "/account").status_code == 401
    assert caller.call("GET", "/account").status_code == 200


def test_session_rotates_and_old_token_has_a_grace_period(make_caller, depsim):
    depsim.state.update_settings(session_rotate_every=3, session_grace_seconds=60)
    caller = make_caller()
    first = caller.token
    seen = [caller.call("GET", "/account").headers["X-ADM-Auth-Session"] for _ in range(3)]
    assert seen[:2] == [first, first] and seen[2] != first
    assert caller.token == seen[2]
    # The rotated-out token still works for a moment and points at its successor …
    stale = AppleCaller(caller.url, caller.credentials)
    stale.token = first
    response = stale.call("GET", "/account")
    assert response.status_code == 200 and response.headers["X-ADM-Auth-Session"] == seen[2]
    # … and is refused after the grace period, while the new one lives on.
    depsim.state.advance_clock(61)
    stale.token = first
    assert stale.call("GET", "/account").status_code == 401
    assert caller.call("GET", "/account").status_code == 200


def test_session_expires_after_inactivity(make_caller, depsim):
    caller = make_caller()
    assert caller.call("GET", "/account").status_code == 200
    depsim.state.advance_clock(31 * 60)
    assert caller.call("GET", "/account").status_code == 401
    # Clients sign with the wall clock; the shifted simulator clock must not lock them out.
    caller.login()
    assert caller.call("GET", "/account").status_code == 200


def test_new_token_invalidates_the_old_one(make_caller, depsim):
    old = make_caller("Renewed")
    new = AppleCaller(depsim.url, depsim.state.issue_credentials("Renewed"))
    assert new.credentials["consumer_key"] == old.credentials["consumer_key"]  # same admin renewing
    assert new.credentials["access_token"] != old.credentials["access_token"]
    response = old.session()
    assert (response.status_code, response.text) == (403, "token_rejectedForbidden")
    assert old.call("GET", "/account").status_code == 401  # its sessions died with it
    assert new.login()


def test_expired_token_is_refused(make_caller, depsim):
    caller = make_caller(login=False)
    depsim.state.advance_clock(366 * 86400)
    response = caller.session()
    assert (response.status_code, response.text) == (403, "token_expiredForbidden")


def test_terms_and_access_denied_on_session_and_data_calls(make_caller, depsim):
    caller = make_caller("Faulty")
    depsim.state.set_fault("Faulty", "terms_not_signed", True)
    assert (caller.session().status_code, caller.session().text) == (403, "T_C_NOT_SIGNED")
    assert caller.call("GET", "/account").text == "T_C_NOT_SIGNED"
    depsim.state.set_fault("Faulty", "terms_not_signed", False)
    depsim.state.set_fault("Faulty", "access_denied", True)
    response = caller.call("GET", "/account")
    assert (response.status_code, response.text) == (403, "ACCESS_DENIED")
    depsim.state.clear_faults("Faulty")
    assert caller.call("GET", "/account").status_code == 200


def test_revoked_token_answers_forbidden(make_caller, depsim):
    caller = make_caller("Revoked")
    depsim.state.set_fault("Revoked", "token_revoked", True)
    assert (caller.call("GET", "/account").status_code, caller.call("GET", "/account").text) == (403, "FORBIDDEN")
    assert caller.session().status_code == 403
