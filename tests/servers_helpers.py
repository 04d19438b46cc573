"""Helpers for managed server tests: key material, tokens from the simulator, form posts."""
from __future__ import annotations

import io
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import select

from portal.apple.keys import generate_key_pair, load_private_key
from portal.extensions import db
from portal.models import ManagedServer


class Identity:
    """A certificate uploaded to (simulated) Apple Business Manager and its private key."""

    def __init__(self, name: str = "portal-test"):
        pair = generate_key_pair(common_name=name, days=365)
        self.certificate_pem = pair.certificate_pem
        self.key_pem = pair.private_key_pem
        self.key = load_private_key(pair.private_key_pem)

    def key_as(self, form: str, password: str | None = None) -> bytes:
        """The private key in one of the forms admins have."""
        enc = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
        if form == "pkcs1":
            return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, enc)
        if form == "pkcs8":
            return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)
        if form == "der":
            return self.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, enc)
        if form == "p12":
            from cryptography import x509

            cert = x509.load_pem_x509_certificate(self.certificate_pem)
            return pkcs12.serialize_key_and_certificates(b"mdm", self.key, cert, None, enc)
        raise ValueError(form)


def add_server_form(name: str, token: bytes | None, key: bytes | None = None, *, filename: str = "key.pem",
                    password: str = "", pasted: str = "", pending_key: int = 0) -> dict:
    """Multipart data for the Add Server form."""
    data = {"name": name, "password": password, "private_key_pem": pasted, "pending_key": str(pending_key)}
    if token is not None:
        data["token"] = (io.BytesIO(token), f"{name}_Token_2026-11-26T10-00-00Z_smime.p7m")
    if key is not None:
        data["private_key"] = (io.BytesIO(key), filename)
    return data


def post_add_server(client, *args, **kwargs):
    return client.post("/servers/add", data=add_server_form(*args, **kwargs), content_type="multipart/form-data")


def post_renew(client, server_id: int, token: bytes, **extra):
    """Renew a server through its form (with the stored key unless `extra` gives one)."""
    data = {"token": (io.BytesIO(token), "renew_smime.p7m"), "pending_key": "0", "password": "",
            "private_key_pem": "", **extra}
    return client.post(f"/servers/{server_id}/renew", data=data, content_type="multipart/form-data")


def server_named(name: str) -> ManagedServer | None:
    db.session.expire_all()
    return db.session.execute(select(ManagedServer).where(ManagedServer.name == name)).scalar_one_or_none()


def field_error(html: str, field_id: str) -> str:
    """The error text shown next to a field (inside the same .field block)."""
    block = re.search(r'<div class="field[^"]*has-error[^"]*">(?:(?!<div class="field).)*?id="%s".*?</div>' % field_id,
                      html, re.S)
    assert block, f"no error next to {field_id}"
    return " ".join(re.findall(r'<p class="error"[^>]*role="alert">(.*?)</p>', block.group(0), re.S))


class TakenJob:
    """An RQ job as a worker on another machine holds it: 'started', with that worker's name.

    `alive()` gives the worker its heartbeat key in Redis; `killed()` names a worker whose key has
    expired, as after `kill -9` or a lost machine (RQ itself notices only at its next clean-up).
    """

    def __init__(self, job_id: str):
        from portal.queue import fetch_job, get_queue

        self.job = fetch_job(job_id)
        get_queue().remove(self.job)
        self.job.set_status("started")

    def alive(self) -> None:
        from portal.queue import get_redis

        self._held_by("worker-on-a-live-machine")
        get_redis().set("rq:worker:worker-on-a-live-machine", "1", ex=60)

    def killed(self) -> None:
        self._held_by("killed-worker")

    def _held_by(self, worker_name: str) -> None:
        self.job.worker_name = worker_name
        self.job.save()


def add_simulated_server(htmx, apple, devices: int, *, run_jobs=None, identity: Identity | None = None,
                         name: str = "Paris", apple_server: str = "Paris MDM") -> ManagedServer:
    """Add Server through the UI with a token of the simulator's `apple_server` holding `devices` devices;
    its first synchronization is run too when `run_jobs` is given (otherwise it stays queued)."""
    identity = identity or Identity()
    token = apple.state.issue_token(apple_server, identity.certificate_pem, devices=devices)
    assert post_add_server(htmx, name, token, identity.key_pem).status_code == 204
    if run_jobs is not None:
        assert run_jobs() == []
    return server_named(name)


# Fixtures: imported by the test modules that use them.

@pytest.fixture
def identity():
    return Identity()


@pytest.fixture
def token(apple, identity):
    """A server token issued by the simulator for `identity`, for a server with 25 devices."""
    return apple.state.issue_token("Paris MDM", identity.certificate_pem, devices=25)
