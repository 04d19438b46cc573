"""Helpers for the Add Devices / Remove Devices tests (the test_assignments_* modules, the browser tests and
others): a managed server synchronized from the Apple simulator with a configured profile (the `paris` fixture),
the portal's clock moved without sleeping (`clock`), OK in the pop-up (`pick`), a log of the calls Apple
receives, and readers of devices, requests and their tasks."""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from portal.assignments import timing
from portal.extensions import db
from portal.models import AssignmentBatch, AssignmentTask, Device, EnrollmentProfile, ManagedServer
from portal.models.profile import CONFIGURED
from tests.servers_helpers import Identity, add_simulated_server


SIM = "Paris MDM"


def configured_profile(server: ManagedServer, name: str = "Sales", *, is_default: bool = False) -> EnrollmentProfile:
    """A profile really defined at the simulator (so it knows the UUID), stored as configured."""
    from portal.apple_link import client_for

    uuid = client_for(server).define_profile({"profile_name": name, "url": "https://mdm.example.com/enroll"})["profile_uuid"]
    profile = EnrollmentProfile(server_id=server.id, name=name, status=CONFIGURED, apple_profile_uuid=uuid,
                                configured_at=datetime.now(timezone.utc), is_default=is_default)
    db.session.add(profile)
    db.session.commit()
    return profile


def devices_of(server_id: int) -> dict[str, Device]:
    db.session.expire_all()
    return {d.serial_number: d for d in db.session.execute(select(Device).where(Device.server_id == server_id)).scalars()}


def tasks_of(batch_id: int) -> dict[str, AssignmentTask]:
    db.session.expire_all()
    return {t.serial_number: t for t in db.session.execute(
        select(AssignmentTask).where(AssignmentTask.batch_id == batch_id)).scalars()}


def latest_batch() -> AssignmentBatch:
    db.session.expire_all()
    return db.session.execute(select(AssignmentBatch).order_by(AssignmentBatch.id.desc()).limit(1)).scalar_one()


class CallLog:
    """Records every /profile/devices call the simulator receives: (method, number of serials) in `calls`, the
    serials themselves in `serials`."""

    def __init__(self, sim_app):
        self.calls: list[tuple[str, int]] = []
        self.serials: list[list[str]] = []
        self._inner = sim_app.wsgi_app
        sim_app.wsgi_app = self

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/profile/devices":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            serials = json.loads(body).get("devices", [])
            self.calls.append((environ["REQUEST_METHOD"], len(serials)))
            self.serials.append(serials)
        return self._inner(environ, start_response)


@pytest.fixture
def paris(htmx, apple, run_jobs):
    """A managed server added through the UI and synchronized, with a configured profile."""
    identity = Identity()

    def make(devices=20):
        server = add_simulated_server(htmx, apple, devices, run_jobs=run_jobs, identity=identity, apple_server=SIM)
        return server, configured_profile(server)

    return make


@pytest.fixture
def clock(monkeypatch):
    """The portal's clock, stopped at the test's start and moved forward by the test (the waits of the retry
    queue) without sleeping. Stopped, because on a machine busy enough (CI beside other work) the real seconds
    between Apple's answer and the test's next step could outlast a wait of Apple's, which the test would then
    find over (a THROTTLED device's 45 s did, once)."""
    now = {"value": timing.now()}

    def advance(**delta):
        now["value"] += timedelta(**delta)

    monkeypatch.setattr(timing, "now", lambda: now["value"])
    return advance


def pick(htmx, target, device_ids=(), **data):
    """OK in Select the Managed Devices of the profile `target`."""
    return htmx.post(f"/profiles/{target.id}/devices/add", data={"device": [str(i) for i in device_ids], **data})


def sim_serials(apple, n=1000):
    return [d["serial"] for d in apple.state.devices(SIM, limit=n)]
