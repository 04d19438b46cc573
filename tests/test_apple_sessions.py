"""Apple sessions kept between jobs (portal/apple_sessions.py): one sign-in serves the account check,
the sync and Add Devices of a server; a renewed token never uses its predecessor's session; the
kept session is encrypted; without Redis the client simply signs in."""
from __future__ import annotations

import dataclasses

import redis
import requests

import portal.servers  # noqa: F401 - first: portal.apple_link and portal.servers import each other
from portal import vault
from portal.apple.tokens import ServerToken
from portal.apple_link import client_for
from portal.apple_sessions import RedisSessionStore
from portal.queue import get_redis
from tests.assignments_helpers import CallLog, paris, pick  # noqa: F401 - paris is a fixture


class SignInLog(CallLog):
    """Counts the simulator's GET /session requests."""

    def __init__(self, sim_app):
        super().__init__(sim_app)
        self.sign_ins = 0

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/session":
            self.sign_ins += 1
        return super().__call__(environ, start_response)


def _token(server) -> ServerToken:
    return ServerToken.from_json(vault.decrypt(server.token_ciphertext).decode())


def test_the_jobs_of_a_server_sign_in_to_apple_once(htmx, apple, paris, run_jobs):  # noqa: F811
    log = SignInLog(apple.app)
    server, profile = paris(devices=30)  # Add Server: account check, then the first sync
    assert log.sign_ins == 1
    assert pick(htmx, profile, all_matching="1").status_code == 204
    assert htmx.post(f"/servers/{server.id}/sync").status_code in (200, 204, 302)
    assert run_jobs() == []
    assert [call[0] for call in log.calls] == ["POST"]  # Add Devices went out, on the same session
    assert log.sign_ins == 1


def test_a_session_apple_no_longer_knows_is_replaced_for_every_job(htmx, apple, paris, run_jobs):  # noqa: F811
    log = SignInLog(apple.app)
    server, profile = paris(devices=5)
    store = RedisSessionStore(_token(server))
    store.save("0" * 48)  # e.g. expired at Apple
    assert pick(htmx, profile, all_matching="1").status_code == 204
    assert run_jobs() == []
    assert log.sign_ins == 2  # Add Server, then once more after the refusal
    renewed = store.load()
    assert renewed and renewed != "0" * 48
    assert client_for(server).session_token == renewed


def test_the_kept_session_is_encrypted_and_bound_to_the_server_token(app, apple, paris):  # noqa: F811
    server, _ = paris(devices=1)
    token = _token(server)
    session = RedisSessionStore(token).load()
    assert session
    stored = [get_redis().get(key) for key in get_redis().scan_iter("ade:apple-session:*")]
    assert stored and all(session.encode() not in value for value in stored)
    renewed = dataclasses.replace(token, access_token=token.access_token + "X")
    assert RedisSessionStore(renewed).load() is None  # another token: its own sign-in


def test_without_redis_the_client_signs_in(app, apple, paris, monkeypatch):  # noqa: F811
    server, _ = paris(devices=1)
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr("portal.apple_sessions.get_redis", lambda: dead)
    client = client_for(server)
    assert client.session_token is None  # nothing could be loaded
    assert client.account()["server_name"] == "Paris MDM"  # signed in; keeping the session failed quietly


def test_the_configured_user_agent_goes_to_apple(app, apple, paris):  # noqa: F811
    server, _ = paris(devices=1)
    app.config["APPLE_USER_AGENT"] = "acme-mdm/2.1"
    sent = []
    http = requests.Session()
    http.hooks["response"].append(lambda response, *args, **kwargs: sent.append(response.request.headers))
    assert client_for(server, http=http).account()["server_name"] == "Paris MDM"
    assert sent and all(headers["User-Agent"] in ("acme-mdm/2.1", b"acme-mdm/2.1") for headers in sent)
