"""DEP client: pure helpers, then every endpoint and failure mode against the real simulator over HTTP."""

import importlib.metadata
import json
import logging
import re
import time

import pytest
import requests

from portal.apple.client import (AssignResult, DEPClient, DevicePage, backoff_delays, chunked,
                                 default_user_agent, status_map)
from portal.apple.errors import (AccessDenied, AppleError, ClockSkew, CursorExhausted, CursorExpired, CursorInvalid,
                                 CursorRequired, NotFound, ProfileInvalid, TermsNotSigned, Throttled,
                                 TokenRejected, TransientError)

try:  # tests/apple may or may not become a package; import the helpers either way
    from .conftest_client import (FAKE_SECRETS, FakeToken, SleepRecorder, closed_port_url,  # noqa: F401
                                  dep, key_pair, make_client, sim, sim_clock, sim_settings)
except ImportError:
    from conftest_client import (FAKE_SECRETS, FakeToken, SleepRecorder, closed_port_url,  # noqa: F401
                                 dep, key_pair, make_client, sim, sim_clock, sim_settings)

PROFILE = {"profile_name": "Staff iPads", "url": "https://mdm.example.com/enroll",
           "is_supervised": True, "is_mdm_removable": False, "department": "IT",
           "support_phone_number": "+1 555 0100", "support_email_address": "it@example.com",
           "org_magic": "A1B2", "skip_setup_items": ["Siri", "Privacy"]}


# ----- pure helpers -----

def test_chunked_splits_at_1000_and_drops_duplicates():
    serials = [f"S{i:05d}" for i in range(2500)] + ["S00001", "S00002"]
    chunks = chunked(serials)
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    assert sum(chunks, []) == [f"S{i:05d}" for i in range(2500)]
    assert chunked([]) == []
    assert chunked(["A", "B", "C"], size=2) == [["A", "B"], ["C"]]


def test_backoff_schedule_is_exponential_and_capped():
    assert backoff_delays(6, 1.0, 30.0) == [1, 2, 4, 8, 16, 30]
    assert backoff_delays(3, 0.5, 1.0) == [0.5, 1.0, 1.0]
    assert backoff_delays(0, 1.0, 30.0) == []


def test_status_map_accepts_objects_and_lists_of_objects():
    assert status_map({"A": "SUCCESS", "B": "FAILED"}) == {"A": "SUCCESS", "B": "FAILED"}
    assert status_map([{"A": "SUCCESS"}, {"B": "THROTTLED"}]) == {"A": "SUCCESS", "B": "THROTTLED"}
    assert status_map(None) == {} and status_map("junk") == {}


def test_device_page_is_liberal_in_what_it_accepts():
    page = DevicePage.from_response({"cursor": "C2", "more_to_follow": True})
    assert (page.devices, page.cursor, page.more_to_follow, page.fetched_until) == ([], "C2", True, None)
    kept = DevicePage.from_response({"devices": None, "more_to_follow": "false"}, "C1")
    assert (kept.devices, kept.cursor, kept.more_to_follow) == ([], "C1", False)
    page = DevicePage.from_response({"devices": [{"serial_number": "X"}, "junk"],
                                     "fetched_until": "2025-01-01T00:00:00Z"})
    assert page.devices == [{"serial_number": "X"}] and page.fetched_until == "2025-01-01T00:00:00Z"
    assert DevicePage.from_response(None).cursor == ""


def test_assign_result_merges_chunks_and_keeps_the_largest_retry_after():
    result = AssignResult("P1")
    result.merge({"profile_uuid": "P1", "devices": {"A": "SUCCESS"}})
    result.merge({"devices": {"B": "THROTTLED"}, "retry_after_seconds": 30})
    result.merge({"devices": {"C": "THROTTLED"}, "retry_after_seconds": 12})
    result.merge("junk")
    assert result.devices == {"A": "SUCCESS", "B": "THROTTLED", "C": "THROTTLED"}
    assert result.retry_after_seconds == 30


def test_assign_result_reads_a_retry_after_sent_as_a_numeric_string():
    result = AssignResult("P1")
    result.merge({"devices": {"A": "THROTTLED"}, "retry_after_seconds": "45"})
    result.merge({"devices": {"B": "THROTTLED"}, "retry_after_seconds": "soon"})  # unreadable: ignored
    result.merge({"devices": {"C": "THROTTLED"}, "retry_after_seconds": True})
    assert result.retry_after_seconds == 45


def test_user_agent_names_the_installed_version():
    assert default_user_agent() == f"ade-portal/{importlib.metadata.version('ade-portal')}"
    assert DEPClient(FakeToken()).user_agent == default_user_agent()
    assert DEPClient(FakeToken(), user_agent="custom/1").user_agent == "custom/1"


def test_repr_hides_credentials_and_session():
    client = DEPClient(FakeToken(), "http://127.0.0.1:9", session_token="SESSIONSECRET123")
    text = repr(client)
    assert "SESSIONSECRET123" not in text
    assert not any(secret in text for secret in FAKE_SECRETS.values())
    assert "127.0.0.1:9" in text


def test_connection_refused_is_retried_with_backoff_then_transient(caplog):
    sleep = SleepRecorder()
    client = DEPClient(FakeToken(), closed_port_url(), max_retries=5, backoff=0.5,
                       max_backoff=3.0, timeout=(2, 2), sleep=sleep)
    with pytest.raises(TransientError) as info:
        client.account()
    assert sleep.calls == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert isinstance(info.value.__cause__, requests.ConnectionError)
    assert "could not be reached" in info.value.message and info.value.status is None
    assert "ConnectionError" in caplog.text


# ----- against the simulator: session handling -----

def _text_headers(request) -> dict[str, str]:
    # requests-oauthlib turns the signed request's header names and values into bytes.
    def text(value):
        return value.decode() if isinstance(value, bytes) else value
    return {text(k): text(v) for k, v in request.headers.items()}


def test_session_is_signed_with_oauth_and_sent_on_every_data_call(dep):
    bench = dep(devices=2)
    account = bench.client.account()
    assert account["server_name"] == bench.name
    bench.client.account()
    assert bench.calls() == [("GET", "/session", 200), ("GET", "/account", 200), ("GET", "/account", 200)]
    session, first, second = (_text_headers(r.request) for r in bench.wire)
    auth = session["Authorization"]
    assert auth.startswith('OAuth realm="ADM"') and 'oauth_signature_method="HMAC-SHA1"' in auth
    assert f'oauth_consumer_key="{bench.token.consumer_key}"' in auth
    assert "X-ADM-Auth-Session" not in session
    assert first["X-ADM-Auth-Session"] == second["X-ADM-Auth-Session"] == bench.client.session_token
    for headers in (session, first):
        assert headers["User-Agent"] == default_user_agent()
        assert headers["X-Server-Protocol-Version"] == "10"
        assert headers["Accept"] == "application/json"
    assert session["Content-Type"] == "application/json;charset=UTF8"
    assert "Content-Type" not in first  # no body, no Content-Type


def test_json_bodies_are_compact_and_typed(dep):
    bench = dep(devices=3)
    bench.client.fetch_devices(limit=2)
    request = bench.wire[-1].request
    assert request.body == b'{"limit":2}'
    assert request.headers["Content-Type"] == "application/json;charset=UTF8"
    assert bench.client.fetch_devices().devices  # no cursor and no limit: an empty object
    assert bench.wire[-1].request.body == b"{}"


def test_rotated_session_token_replaces_the_stored_one(dep, sim_settings):
    sim_settings.update_settings(session_rotate_every=2)
    bench = dep()
    bench.client.account()
    first = bench.client.session_token
    bench.client.account()  # second call on this session: the answer carries a new token
    rotated = bench.wire[-1].headers["X-ADM-Auth-Session"]
    assert rotated != first and bench.client.session_token == rotated
    bench.client.account()
    assert bench.wire[-1].request.headers["X-ADM-Auth-Session"] == rotated
    assert [c for c in bench.calls() if c[1] == "/session"] == [("GET", "/session", 200)]


def test_expired_session_is_renewed_once_and_the_call_replayed(dep, sim_clock):
    bench = dep(devices=1)
    bench.client.account()
    old = bench.client.session_token
    sim_clock.advance_clock(sim_clock.settings()["session_idle_seconds"] + 60)
    serial = bench.client.fetch_devices().devices[0]["serial_number"]
    assert bench.calls()[-4:] == [("GET", "/account", 200), ("POST", "/server/devices", 401),
                                  ("GET", "/session", 200), ("POST", "/server/devices", 200)]
    assert bench.wire[-1].request.body == bench.wire[-3].request.body == b"{}"  # replayed as sent
    assert bench.client.session_token != old and serial


def test_stale_stored_session_is_replaced(dep):
    bench = dep()
    client, _, wire = bench.new_client(session_token="0" * 48)
    assert client.account()["server_name"] == bench.name
    assert [r.status_code for r in wire] == [401, 200, 200]
    assert client.session_token != "0" * 48



class DictSessionStore:
    """A session store in a dict, as several clients of one token would share it."""

    def __init__(self, session_token=None):
        self.session_token, self.saved = session_token, []

    def load(self):
        return self.session_token

    def save(self, session_token):
        self.session_token = session_token
        self.saved.append(session_token)


def test_a_session_refused_as_forbidden_is_renewed_and_the_call_replayed(dep, sim_settings):
    # Apple documents 403 FORBIDDEN for an invalid session besides 401 for an expired one (§2.3).
    sim_settings.update_settings(refused_session_status=403)
    bench = dep()
    client, _, wire = bench.new_client(session_token="0" * 48)
    assert client.account()["server_name"] == bench.name
    assert [(r.request.path_url, r.status_code) for r in wire] == [
        ("/account", 403), ("/session", 200), ("/account", 200)]

def test_a_session_kept_by_one_client_is_used_by_the_next(dep):
    bench = dep()
    store = DictSessionStore()
    first, _, first_wire = bench.new_client(session_store=store)
    first.account()
    assert [r.request.path_url for r in first_wire] == ["/session", "/account"]
    assert store.saved == [first.session_token]
    second, _, second_wire = bench.new_client(session_store=store)
    second.account()
    assert [r.request.path_url for r in second_wire] == ["/account"]  # no sign-in
    assert second_wire[0].request.headers["X-ADM-Auth-Session"] == store.session_token


def test_a_rotated_session_is_kept_for_the_next_client(dep, sim_settings):
    sim_settings.update_settings(session_rotate_every=2)
    bench = dep()
    store = DictSessionStore()
    client, _, _ = bench.new_client(session_store=store)
    client.account()
    client.account()  # the answer carries a new token
    assert len(store.saved) == 2 and store.session_token == client.session_token == store.saved[-1]


def test_a_refused_session_gives_way_to_one_another_client_kept_meanwhile(dep):
    bench = dep()
    store = DictSessionStore()
    stale, _, stale_wire = bench.new_client(session_store=store, session_token="0" * 48)
    fresh, _, _ = bench.new_client(session_store=store)
    fresh.account()  # another worker signs in and keeps its session
    assert stale.account()["server_name"] == bench.name
    assert [(r.request.path_url, r.status_code) for r in stale_wire] == [("/account", 401), ("/account", 200)]
    assert stale.session_token == fresh.session_token == store.session_token


def test_a_kept_session_apple_refuses_is_replaced_in_the_store(dep):
    bench = dep()
    store = DictSessionStore("0" * 48)
    client, _, wire = bench.new_client(session_store=store)
    assert client.account()["server_name"] == bench.name
    assert [(r.request.path_url, r.status_code) for r in wire] == [
        ("/account", 401), ("/session", 200), ("/account", 200)]
    assert store.saved == [client.session_token] and client.session_token != "0" * 48


def test_jobs_sharing_a_session_that_rotates_on_every_answer_follow_each_other(dep, sim_settings):
    # The strictest reading of reference §2.3: every answer hands out a new session and the old one is
    # refused at once. A job still holding the old one takes the newest kept one instead of signing in.
    sim_settings.update_settings(session_rotate_every=1, session_grace_seconds=0)
    bench = dep()
    store = DictSessionStore()
    first, _, first_wire = bench.new_client(session_store=store)
    first.account()
    second, _, second_wire = bench.new_client(session_store=store)  # takes the kept session...
    first.account()  # ...which this answer rotates away
    assert second.account()["server_name"] == bench.name
    assert [(r.request.path_url, r.status_code) for r in second_wire] == [("/account", 401), ("/account", 200)]
    assert first.account()["server_name"] == bench.name
    assert [(r.request.path_url, r.status_code) for r in first_wire][-2:] == [("/account", 401), ("/account", 200)]
    sign_ins = [r for r in first_wire + second_wire if r.request.path_url == "/session"]
    assert len(sign_ins) == 1 and store.session_token == first.session_token


class RacingSessionStore(DictSessionStore):
    """Another job takes up each session kept after a sign-in and uses it before its signer replays
    its call: with sessions rotating on every answer, the signer's new session is already gone."""

    def __init__(self, bench, session_token=None):
        super().__init__(session_token)
        self.bench, self.racing, self.races = bench, False, 0

    def save(self, session_token):
        super().save(session_token)
        if self.racing or self.races >= 1:
            return
        self.racing, self.races = True, self.races + 1
        try:
            other, _, _ = self.bench.new_client(session_store=self)
            other.account()  # rotates the session just kept; saves the successor
        finally:
            self.racing = False


def test_a_session_rotated_away_between_sign_in_and_replay_gives_way_to_the_newest_kept(dep, sim_settings):
    sim_settings.update_settings(session_rotate_every=1, session_grace_seconds=0)
    bench = dep()
    store = RacingSessionStore(bench, "0" * 48)
    client, _, wire = bench.new_client(session_store=store)
    assert client.account()["server_name"] == bench.name
    assert [(r.request.path_url, r.status_code) for r in wire] == [
        ("/account", 401), ("/session", 200), ("/account", 401), ("/account", 200)]
    assert store.races == 1 and client.session_token == store.session_token


class EverNewSessionStore(DictSessionStore):
    """Other jobs keep saving sessions: each load finds another one (all refused by Apple here)."""

    def load(self):
        self.loads = getattr(self, "loads", 0) + 1
        return f"{self.loads:048d}"


def test_sessions_refused_again_and_again_end_in_an_error_not_a_loop(dep, sim_settings):
    # Apple refuses every session (here: each one idles out at once), and the store always offers another:
    # one sign-in and three replays at most, then the refusal is the caller's.
    sim_settings.update_settings(session_idle_seconds=-1)
    bench = dep()
    client, _, wire = bench.new_client(session_store=EverNewSessionStore())
    with pytest.raises(AppleError) as refused:
        client.account()
    assert refused.value.status == 401
    assert [r.request.path_url for r in wire] == ["/account", "/account", "/session", "/account", "/account"]


# ----- devices -----

def test_fetch_pages_then_sync_and_cursor_errors(dep):
    bench = dep(devices=25)
    pages = list(bench.client.iter_fetch(limit=10))
    assert [len(p.devices) for p in pages] == [10, 10, 5]
    assert [p.more_to_follow for p in pages] == [True, True, False]
    serials = {d["serial_number"] for p in pages for d in p.devices}
    assert len(serials) == 25 and all(p.fetched_until for p in pages)
    assert "cursor" not in json.loads(bench.wire[1].request.body)  # first page: cursor omitted
    final = pages[-1].cursor
    with pytest.raises(CursorExhausted) as exhausted:
        bench.client.fetch_devices(final)
    assert (exhausted.value.status, exhausted.value.code) == (400, "EXHAUSTED_CURSOR")
    assert bench.client.sync_devices(final).devices == []
    added = bench.state.add_devices(bench.name, count=2)
    changes = [d for p in bench.client.iter_sync(final) for d in p.devices]
    assert {d["serial_number"] for d in changes} == set(added)
    assert {d["op_type"] for d in changes} == {"added"}
    with pytest.raises(CursorInvalid) as invalid:
        bench.client.fetch_devices("not-a-cursor")
    assert invalid.value.code == "INVALID_CURSOR"
    with pytest.raises(CursorRequired):
        bench.client.sync_devices("")


def test_old_sync_cursor_is_expired(dep, sim_clock):
    bench = dep(devices=2)
    cursor = list(bench.client.iter_fetch())[-1].cursor
    sim_clock.advance_clock(8 * 86400)
    with pytest.raises(CursorExpired) as info:
        bench.client.sync_devices(cursor)
    assert info.value.code == "EXPIRED_CURSOR" and "full device fetch" in info.value.message


def test_device_details_keyed_by_serial(dep):
    bench = dep(devices=2)
    serials = [d["serial_number"] for d in bench.client.fetch_devices().devices]
    details = bench.client.device_details(serials + ["NOTMINE0001"])
    assert {s: d["response_status"] for s, d in details.items()} == \
        {serials[0]: "SUCCESS", serials[1]: "SUCCESS", "NOTMINE0001": "NOT_ACCESSIBLE"}
    assert details[serials[0]]["serial_number"] == serials[0]
    assert bench.client.device_details([]) == {}


# ----- profiles -----

def test_define_get_and_unknown_profiles(dep):
    bench = dep(devices=1)
    serial = bench.client.fetch_devices().devices[0]["serial_number"]
    defined = bench.client.define_profile({**PROFILE, "devices": [serial, "NOTMINE0002"]})
    uuid = defined["profile_uuid"]
    assert re.fullmatch(r"[0-9A-F]{32}", uuid)
    assert defined["devices"] == {serial: "SUCCESS", "NOTMINE0002": "NOT_ACCESSIBLE"}
    stored = bench.client.get_profile(uuid)
    assert stored["profile_uuid"] == uuid and "devices" not in stored
    assert {k: stored[k] for k in PROFILE} == PROFILE
    with pytest.raises(NotFound) as missing:
        bench.client.get_profile("0" * 32)
    assert (missing.value.status, missing.value.code) == (400, "NOT_FOUND")
    with pytest.raises(NotFound) as unknown:
        bench.client.assign_profile("F" * 32, [serial])
    assert unknown.value.status == 404


@pytest.mark.parametrize("change, code, field", [
    ({"profile_name": None}, "CONFIG_NAME_REQUIRED", "profile_name"),
    ({"profile_name": "x" * 126}, "CONFIG_NAME_INVALID", "profile_name"),
    ({"url": None}, "CONFIG_URL_REQUIRED", "url"),
    ({"url": "not a url"}, "CONFIG_URL_INVALID", "url"),
    ({"department": ""}, "DEPARTMENT_INVALID", "department"),
    ({"is_supervised": False}, "FLAGS_INVALID", "is_mdm_removable"),
    ({"language": "English"}, "LOCALE_INVALID", "language"),
    ({"org_magic": ""}, "MAGIC_INVALID", "org_magic"),
    ({"support_email_address": "not-an-email"}, "SUPPORT_EMAIL_INVALID", "support_email_address"),
    ({"support_phone_number": ""}, "SUPPORT_PHONE_INVALID", "support_phone_number"),
])
def test_profile_validation_codes(dep, change, code, field):
    bench = dep()
    profile = {k: v for k, v in {**PROFILE, **change}.items() if v is not None}
    with pytest.raises(ProfileInvalid) as info:
        bench.client.define_profile(profile)
    assert (info.value.status, info.value.code, info.value.field) == (400, code, field)
    assert info.value.message and code not in info.value.message


def test_assign_more_than_1000_serials_in_chunks(dep):
    bench = dep(devices=3)
    uuid = bench.client.define_profile(PROFILE)["profile_uuid"]
    mine = [d["serial_number"] for d in bench.client.fetch_devices().devices]
    others = [f"ZZ{i:08d}" for i in range(1497)]
    result = bench.client.assign_profile(uuid, mine + others)
    sent = [json.loads(r.request.body) for r in bench.wire if r.request.url.endswith("/profile/devices")]
    assert [len(body["devices"]) for body in sent] == [1000, 500]
    assert all(r.request.method == "POST" for r in bench.wire if r.request.url.endswith("/profile/devices"))
    assert result.profile_uuid == uuid and result.retry_after_seconds is None
    assert len(result.devices) == 1500
    assert {result.devices[s] for s in mine} == {"SUCCESS"}
    assert {result.devices[s] for s in others} == {"NOT_ACCESSIBLE"}
    details = bench.client.device_details(mine)
    assert {(d["profile_uuid"], d["profile_status"]) for d in details.values()} == {(uuid, "assigned")}


@pytest.mark.parametrize("count, calls", [(1000, [1000]), (1001, [1000, 1])])
def test_every_device_call_stays_within_apples_1000_serials(dep, count, calls):
    # The simulator refuses more than 1000 serials on every device list (README, reference §6.3).
    bench = dep(devices=2)
    mine = [d["serial_number"] for d in bench.client.fetch_devices().devices]
    serials = mine + [f"ZZ{i:08d}" for i in range(count - 2)] + mine  # duplicates are sent once
    uuid = bench.client.define_profile(PROFILE)["profile_uuid"]
    results = {"/devices": bench.client.device_details(serials),
               "/profile/devices": bench.client.assign_profile(uuid, serials).devices}
    results["/profile/devices DELETE"] = bench.client.remove_profile(serials, profile_uuid=uuid)
    results["/devices/disown"] = bench.client.disown_devices(serials)
    assert {name: len(found) for name, found in results.items()} == dict.fromkeys(results, count)
    for method, path in (("POST", "/devices"), ("POST", "/profile/devices"), ("DELETE", "/profile/devices"),
                         ("POST", "/devices/disown")):
        sent = [json.loads(r.request.body) for r in bench.wire
                if (r.request.method, r.request.path_url) == (method, path)]
        assert [len(body["devices"]) for body in sent] == calls, (method, path)
        assert all(r.status_code == 200 for r in bench.wire), bench.calls()


def test_throttled_and_failed_devices_are_results(dep):
    bench = dep(devices=3)
    a, b, c = [d["serial_number"] for d in bench.client.fetch_devices().devices]
    bench.state.set_fault(bench.name, "throttle", {"serials": [a], "retry_after": 45})
    bench.state.set_fault(bench.name, "assign_failed", [b])
    uuid = bench.client.define_profile(PROFILE)["profile_uuid"]
    result = bench.client.assign_profile(uuid, [a, b, c])
    assert result.devices == {a: "THROTTLED", b: "FAILED", c: "SUCCESS"}
    assert result.retry_after_seconds == 45


def test_remove_profile_and_disown(dep):
    bench = dep(devices=2)
    a, b = [d["serial_number"] for d in bench.client.fetch_devices().devices]
    uuid = bench.client.define_profile({**PROFILE, "devices": [a, b]})["profile_uuid"]
    assert bench.client.remove_profile([a, "NOTMINE0003"], profile_uuid=uuid) == \
        {a: "SUCCESS", "NOTMINE0003": "NOT_ACCESSIBLE"}
    request = bench.wire[-1].request
    assert request.method == "DELETE"
    assert json.loads(request.body) == {"devices": [a, "NOTMINE0003"], "profile_uuid": uuid}
    assert bench.client.device_details([a])[a]["profile_status"] == "removed"
    assert bench.client.disown_devices([b]) == {b: "SUCCESS"}
    assert bench.client.device_details([b])[b]["response_status"] == "NOT_ACCESSIBLE"
    assert bench.client.disown_devices([]) == {}


# ----- organisation and token problems -----

@pytest.mark.parametrize("quoted", [False, True])
def test_terms_not_signed(dep, quoted):
    bench = dep()
    bench.client.account()
    bench.state.set_fault(bench.name, "quote_errors", quoted)
    bench.state.set_fault(bench.name, "terms_not_signed", True)
    with pytest.raises(TermsNotSigned) as on_data:  # an open session meets it on a data call
        bench.client.account()
    assert (on_data.value.status, on_data.value.code) == (403, "T_C_NOT_SIGNED")
    assert on_data.value.body == ('"T_C_NOT_SIGNED"' if quoted else "T_C_NOT_SIGNED")
    assert "accept them" in on_data.value.message
    fresh, _, wire = bench.new_client()
    with pytest.raises(TermsNotSigned):  # a new client meets it on /session
        fresh.account()
    assert [(r.request.url.rsplit("/", 1)[-1], r.status_code) for r in wire] == [("session", 403)]


def test_access_denied(dep):
    bench = dep()
    bench.state.set_fault(bench.name, "access_denied", True)
    with pytest.raises(AccessDenied) as info:
        bench.client.account()
    assert (info.value.status, info.value.code) == (403, "ACCESS_DENIED")


def test_revoked_token_is_rejected_after_one_reauthentication(dep):
    bench = dep()
    bench.client.account()
    bench.state.set_fault(bench.name, "token_revoked", True)
    with pytest.raises(TokenRejected) as info:
        bench.client.account()
    assert bench.calls()[1:] == [("GET", "/account", 200), ("GET", "/account", 403),
                                 ("GET", "/session", 403)]
    assert info.value.code == "FORBIDDEN" and "Download a new token" in info.value.message


def _clock_ahead(monkeypatch, seconds: float) -> None:
    """This machine's clock `seconds` ahead of the real time, for OAuth's timestamp and our own reading."""
    import time

    import oauthlib.oauth1.rfc5849 as rfc5849

    import portal.apple.client as client_module

    monkeypatch.setattr(rfc5849, "generate_timestamp", lambda: str(int(time.time() + seconds)))
    monkeypatch.setattr(client_module, "wall_clock", lambda: time.time() + seconds)


@pytest.mark.parametrize("seconds,words", [(1200, "about 20 minutes ahead of"), (-3600, "about 60 minutes behind")])
def test_a_sign_in_refused_while_the_clock_is_off_blames_the_clock_not_the_token(dep, monkeypatch, seconds, words):
    bench = dep()
    _clock_ahead(monkeypatch, seconds)  # beyond the simulator's 10 minutes, as Apple refuses stale signatures
    with pytest.raises(ClockSkew) as info:
        bench.client.account()
    assert isinstance(info.value, TransientError) and not isinstance(info.value, TokenRejected)
    assert words in info.value.message and "NTP" in info.value.message
    assert bench.calls() == [("GET", "/session", 401)]  # no second try: the clock will not change by itself


def test_a_sign_in_refused_once_is_tried_again_freshly_signed(dep, monkeypatch):
    """A nonce Apple had already seen is refused once; the second, new nonce signs in."""
    import oauthlib.oauth1.rfc5849 as rfc5849

    bench = dep()
    nonces = iter(["same-nonce-twice", "same-nonce-twice", "a-fresh-nonce"])
    monkeypatch.setattr(rfc5849, "generate_nonce", lambda: next(nonces))
    bench.client.authenticate()  # uses the nonce
    bench.client.authenticate()  # reuses it: refused, then signed again with a fresh one
    assert bench.calls() == [("GET", "/session", 200), ("GET", "/session", 401), ("GET", "/session", 200)]


def test_token_replaced_by_a_newer_download(dep, key_pair):
    from portal.apple.keys import load_private_key
    from portal.apple.tokens import decrypt_token

    bench = dep()
    bench.client.account()
    newer = decrypt_token(bench.state.issue_token(bench.name, key_pair.certificate_pem),
                          load_private_key(key_pair.private_key_pem))
    with pytest.raises(TokenRejected) as info:
        bench.client.account()
    assert info.value.status == 403 and info.value.code.startswith("token_rejected")
    client, _, _ = make_client(bench.sim, newer)
    assert client.account()["server_name"] == bench.name


def test_expired_token_is_rejected(dep, sim_clock):
    bench = dep()
    sim_clock.advance_clock(366 * 86400)
    with pytest.raises(TokenRejected) as info:
        bench.client.account()
    assert info.value.code.startswith("token_expired")


def test_a_token_called_expired_while_the_clock_is_far_behind_apples_blames_the_clock(dep, sim_clock, monkeypatch):
    """Apple's 403 token_expired, sent with a Date 400 days ahead of this machine: the expiry this machine
    shows is read on a wrong clock, so the clock is named and the token is not called expired or revoked."""
    import time

    import portal.apple.client as client_module

    bench = dep()
    sim_clock.advance_clock(400 * 86400)  # Apple's date: past the token's expiry
    monkeypatch.setattr(client_module, "wall_clock", lambda: time.time() - 400 * 86400)
    with pytest.raises(ClockSkew) as info:
        bench.client.account()
    assert info.value.status == 403 and info.value.code.startswith("token_expired")
    assert "about 400 days behind Apple's" in info.value.message and "NTP" in info.value.message
    assert bench.calls() == [("GET", "/session", 403)]


def test_the_terms_and_conditions_are_not_blamed_on_the_clock(dep, monkeypatch):
    import time

    import portal.apple.client as client_module

    bench = dep()
    bench.state.set_fault(bench.name, "terms_not_signed", True)
    monkeypatch.setattr(client_module, "wall_clock", lambda: time.time() - 400 * 86400)
    with pytest.raises(TermsNotSigned):
        bench.client.account()


# ----- transient failures -----

def test_server_errors_are_retried_with_backoff(dep):
    bench = dep(backoff=0.25)
    bench.client.account()
    bench.state.set_fault(bench.name, "server_error", {"count": 2, "status": 502})
    assert bench.client.account()["server_name"] == bench.name
    assert [c[2] for c in bench.calls()[2:]] == [502, 502, 200]
    assert bench.sleep.calls == [0.25, 0.5]


def test_server_errors_exhausted_raise_transient_error(dep):
    bench = dep(max_retries=2, backoff=1.0)
    bench.client.account()
    bench.state.set_fault(bench.name, "server_error", {"count": 10, "status": 500})
    with pytest.raises(TransientError) as info:
        bench.client.account()
    assert (info.value.status, info.value.code) == (500, "SERVER_ERROR")
    assert bench.sleep.calls == [1.0, 2.0]
    assert [c[2] for c in bench.calls()[2:]] == [500, 500, 500]


def test_503_retry_after_is_honoured_or_surfaced_as_throttled(dep):
    bench = dep(max_backoff=5.0)
    bench.client.account()
    bench.state.set_fault(bench.name, "server_error", {"count": 1, "status": 503, "retry_after": 3})
    bench.client.account()
    assert bench.sleep.calls == [3.0]
    bench.state.set_fault(bench.name, "server_error", {"count": 5, "status": 503, "retry_after": 120})
    with pytest.raises(Throttled) as info:  # longer than we would wait: hand it to the caller
        bench.client.account()
    assert info.value.retry_after == 120 and info.value.status == 503
    assert bench.sleep.calls == [3.0]


def test_429_too_many_requests_is_waited_out_or_surfaced(dep):
    bench = dep(max_backoff=5.0)
    bench.client.account()
    bench.state.set_fault(bench.name, "server_error", {"count": 1, "status": 429, "retry_after": 2})
    assert bench.client.account()["server_name"]
    assert bench.sleep.calls == [2.0]
    bench.state.set_fault(bench.name, "server_error", {"count": 5, "status": 429, "retry_after": 600})
    with pytest.raises(Throttled) as info:
        bench.client.account()
    assert info.value.status == 429 and info.value.code == "TOO_MANY_REQUESTS" and info.value.retry_after == 600


def test_read_timeout_is_retried_then_transient(dep):
    bench = dep(timeout=(5, 0.2), max_retries=1)
    bench.client.account()
    bench.state.set_fault(bench.name, "latency", 1.0)
    try:
        with pytest.raises(TransientError) as info:
            bench.client.account()
    finally:
        bench.state.set_fault(bench.name, "latency", None)
    assert isinstance(info.value.__cause__, requests.Timeout)
    assert "timed out" in info.value.message and len(bench.sleep.calls) == 1




def test_each_wait_to_retry_is_told_why_first(dep):
    """The synchronization panel said "Apple did not answer" while Apple was answering 503: the client now tells its
    `on_retry` what it is retrying, before each wait."""
    why = []
    bench = dep(max_backoff=5.0, on_retry=why.append, timeout=(5, 0.2), max_retries=1)
    bench.client.account()
    bench.state.set_fault(bench.name, "server_error", {"count": 1, "status": 503, "retry_after": 1})
    bench.client.account()
    bench.state.set_fault(bench.name, "server_error", {"count": 1, "status": 429, "retry_after": 1})
    bench.client.account()
    bench.state.set_fault(bench.name, "latency", 1.0)
    try:
        with pytest.raises(TransientError):
            bench.client.account()
    finally:
        bench.state.set_fault(bench.name, "latency", None)
    assert why == ["Apple answered the last request with an error (HTTP 503)", "Apple asked to slow down (HTTP 429)",
                   "Apple did not answer the last request (timed out)"]
    assert len(bench.sleep.calls) == 3

# ----- a profile definition is never sent twice on a guess -----
# Every POST /profile defines a new profile at Apple (reference §3.6) and Apple has no call to list
# or delete them: resending after an answer that does not say whether Apple acted would leave
# duplicates, and Apple has answered 500 for a profile it will never accept (§3.6, MM#838).

def test_a_profile_definition_answered_with_a_server_error_is_not_sent_again(dep):
    bench = dep(backoff=0.25)
    bench.client.account()
    bench.state.set_fault(bench.name, "server_error", {"count": 1, "status": 500})
    with pytest.raises(TransientError) as info:
        bench.client.define_profile(PROFILE)
    assert info.value.status == 500
    assert [c for c in bench.calls() if c[1] == "/profile"] == [("POST", "/profile", 500)]
    assert bench.sleep.calls == []
    assert bench.client.define_profile(PROFILE)["profile_uuid"]  # the admin's next attempt goes through


def test_a_profile_definition_that_timed_out_is_not_defined_twice(dep):
    bench = dep(timeout=(5, 0.3), max_retries=2)
    bench.client.account()
    bench.state.set_fault(bench.name, "latency", 1.0)
    try:
        with pytest.raises(TransientError) as info:
            bench.client.define_profile(PROFILE)
        time.sleep(2.5)  # the simulator finishes what it was sent after the client gave up waiting
    finally:
        bench.state.set_fault(bench.name, "latency", None)
    assert isinstance(info.value.__cause__, requests.Timeout) and bench.sleep.calls == []
    assert len(bench.state.profiles(bench.name)) == 1


def test_a_profile_definition_is_retried_when_apple_surely_did_not_act():
    sleep = SleepRecorder()  # nothing listens: the request never left this machine
    client = DEPClient(FakeToken(), closed_port_url(), max_retries=2, backoff=0.5, timeout=(2, 2),
                       sleep=sleep, session_token="ab" * 24)
    with pytest.raises(TransientError):
        client.define_profile(PROFILE)
    assert sleep.calls == [0.5, 1.0]


def test_a_profile_definition_refused_with_429_is_waited_out(dep):
    bench = dep(max_backoff=5.0)
    bench.client.account()
    bench.state.set_fault(bench.name, "server_error", {"count": 1, "status": 429, "retry_after": 2})
    assert bench.client.define_profile(PROFILE)["profile_uuid"]
    assert bench.sleep.calls == [2.0] and len(bench.state.profiles(bench.name)) == 1


def test_other_calls_are_still_retried_after_a_server_error(dep):
    bench = dep(devices=1, backoff=0.25)
    bench.client.account()
    uuid = bench.client.define_profile(PROFILE)["profile_uuid"]
    serial = bench.client.fetch_devices().devices[0]["serial_number"]
    bench.state.set_fault(bench.name, "server_error", {"count": 1, "status": 502})
    assert bench.client.get_profile(uuid)["profile_uuid"] == uuid
    bench.state.set_fault(bench.name, "server_error", {"count": 1, "status": 502})
    assert bench.client.assign_profile(uuid, [serial]).devices == {serial: "SUCCESS"}
    assert bench.sleep.calls == [0.25, 0.25]



class CannedAdapter(requests.adapters.BaseAdapter):
    """Answers every request with the same status and body: for answers the simulator never gives."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__()
        self.status, self.body, self.requests = status, body, []

    def send(self, request, **kwargs):
        self.requests.append(request)
        response = requests.Response()
        response.status_code, response._content, response.request = self.status, self.body, request
        response.headers["Content-Type"] = "application/json;charset=UTF8"
        return response

    def close(self) -> None:
        pass


@pytest.mark.parametrize("body", [b'{"devices":{}}', b'{"profile_uuid":""}', b'{"profile_uuid":42}', b""])
def test_a_profile_definition_answered_without_a_uuid_is_an_error(body):
    http = requests.Session()
    http.mount("http://", CannedAdapter(200, body))
    client = DEPClient(FakeToken(), "http://apple.invalid", http=http, session_token="ab" * 24,
                       sleep=SleepRecorder())
    with pytest.raises(AppleError) as info:  # nothing to assign: "configured" would be a lie
        client.define_profile(PROFILE)
    assert "profile UUID" in info.value.message
    assert len(http.adapters["http://"].requests) == 1  # not sent again: Apple may have defined it


# ----- secrets -----

def test_secrets_stay_out_of_logs_reprs_and_errors(dep, sim_settings, caplog):
    caplog.set_level(logging.DEBUG)
    sim_settings.update_settings(session_rotate_every=2)
    bench = dep(devices=1)
    bench.client.account()
    bench.client.fetch_devices()
    bench.client.session_token = "ab" * 24  # stale: forces a re-authentication
    bench.client.account()
    bench.state.set_fault(bench.name, "terms_not_signed", True)
    with pytest.raises(TermsNotSigned) as info:
        bench.client.account()
    sessions = {r.headers.get("X-ADM-Auth-Session") for r in bench.wire} - {None}
    sessions |= {json.loads(r.content)["auth_session_token"] for r in bench.wire
                 if r.request.url.endswith("/session") and r.status_code == 200}
    secrets = {bench.token.consumer_secret, bench.token.access_token, bench.token.access_secret,
               *sessions}
    assert len(sessions) >= 2 and "GET /account -> 200" in caplog.text
    exposed = [caplog.text, repr(bench.client), str(bench.client), repr(info.value),
               str(info.value), info.value.body, repr(bench.token)]
    for secret in secrets:
        assert not any(secret in text for text in exposed)
