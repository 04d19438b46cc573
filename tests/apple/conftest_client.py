"""Helpers for the DEP client tests (imported explicitly by test_client.py, not a conftest)."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import pytest
import requests

from portal.apple.client import DEPClient

# Recognisable fake credentials: tests assert these never leak into reprs, messages or logs.
FAKE_SECRETS = {
    "consumer_secret": "CS_" + "5e" * 20,
    "access_token": "AT_O1234567890O" + "a7" * 20 + "O1700000000000",
    "access_secret": "AS_" + "c3" * 20,
}


@dataclass(frozen=True)
class FakeToken:
    """Stands in for ServerToken where no HTTP happens (same four credential attributes)."""

    consumer_key: str = "CK_" + "0f" * 48
    consumer_secret: str = field(default=FAKE_SECRETS["consumer_secret"], repr=False)
    access_token: str = field(default=FAKE_SECRETS["access_token"], repr=False)
    access_secret: str = field(default=FAKE_SECRETS["access_secret"], repr=False)
    access_token_expiry: datetime = datetime.now(timezone.utc) + timedelta(days=365)


class SleepRecorder:
    """Injected instead of time.sleep: records the waits so tests never actually wait."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def closed_port_url() -> str:
    """The URL of a local port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ----- the real simulator over HTTP -----

@dataclass
class Bench:
    """One simulated MDM server with a decrypted token, and a client whose traffic is recorded."""

    sim: object
    name: str
    token: object
    client: DEPClient
    sleep: SleepRecorder
    wire: list  # every requests.Response the client received, in order

    @property
    def state(self):
        return self.sim.state

    def calls(self) -> list[tuple[str, str, int]]:
        """(method, path, status) of every exchange so far."""
        return [(r.request.method, urlsplit(r.request.url).path, r.status_code)
                for r in self.wire]

    def new_client(self, **options) -> tuple[DEPClient, SleepRecorder, list]:
        """Another client for the same token, recorded the same way."""
        return make_client(self.sim, self.token, **options)


def make_client(sim, token, **options) -> tuple[DEPClient, SleepRecorder, list]:
    """A DEPClient on the simulator with an injected sleep and a response-recording session."""
    wire: list = []
    http = requests.Session()
    http.hooks["response"].append(lambda response, *args, **kwargs: wire.append(response))
    sleep = SleepRecorder()
    options = {"timeout": (5, 10), "backoff": 0.25, "max_backoff": 5.0, **options}
    return DEPClient(token, sim.url, http=http, sleep=sleep, **options), sleep, wire


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A simulator on a free localhost port, shared by a test module."""
    from portal.depsim.testing import running_simulator

    with running_simulator(tmp_path_factory.mktemp("depsim-client")) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def key_pair():
    """The portal's key pair whose certificate the simulated Apple encrypts tokens to."""
    from portal.apple.keys import generate_key_pair

    return generate_key_pair("ADE Portal client tests", days=30)


@pytest.fixture
def dep(sim, key_pair, request):
    """Factory: ``dep(devices=N, **client_options)`` → a Bench on a fresh simulated server."""
    from portal.apple.keys import load_private_key
    from portal.apple.tokens import decrypt_token

    private_key = load_private_key(key_pair.private_key_pem)
    made: list[str] = []

    def factory(devices: int = 0, **options) -> Bench:
        base = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:150]
        name = f"{base}-{len(made)}"
        made.append(name)
        token = decrypt_token(sim.state.issue_token(name, key_pair.certificate_pem, devices=devices),
                              private_key)
        client, sleep, wire = make_client(sim, token, **options)
        return Bench(sim, name, token, client, sleep, wire)

    return factory


@pytest.fixture
def sim_clock(sim):
    """The simulator's state; whatever the test does to the clock is undone afterwards."""
    before = sim.state.clock_offset()
    yield sim.state
    sim.state.advance_clock(before - sim.state.clock_offset())


@pytest.fixture
def sim_settings(sim):
    """The simulator's state; simulator-wide settings are restored afterwards."""
    before = sim.state.settings()
    yield sim.state
    sim.state.update_settings(**before)
