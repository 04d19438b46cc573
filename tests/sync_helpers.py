"""Helpers for synchronization tests: a simulated server added and synchronized through the UI, and reads
of its devices, device count and sync runs."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Device, ManagedServer, SyncRun
from tests.servers_helpers import Identity, post_add_server, server_named


@pytest.fixture
def paris(htmx, apple, run_jobs):
    """A managed server 'Paris' added through the UI and synchronized once (devices=N via param)."""
    identity = Identity()

    def make(devices=25, sync=True):
        token = apple.state.issue_token("Paris MDM", identity.certificate_pem, devices=devices)
        assert post_add_server(htmx, "Paris", token, identity.key_pem).status_code == 204
        if sync:
            assert run_jobs() == []
        return server_named("Paris")

    return make


def _devices(server_id):
    db.session.expire_all()
    return {d.serial_number: d for d in db.session.execute(select(Device).where(Device.server_id == server_id)).scalars()}


def _device_count(server_id, removed=False):
    """Devices counted in the table; the current ones also checked against the count the lists read."""
    db.session.expire_all()
    condition = Device.removed_at.is_not(None) if removed else Device.removed_at.is_(None)
    counted = db.session.execute(select(func.count()).select_from(Device)
                                 .where(Device.server_id == server_id, condition)).scalar_one()
    if not removed:
        assert _kept_count(server_id) == counted
    return counted


def _kept_count(server_id):
    """The server's current devices as its writers keep them (portal/devices/counts.py)."""
    db.session.expire_all()
    return db.session.execute(select(ManagedServer.device_count).where(ManagedServer.id == server_id)).scalar_one()


def _runs(server_id):
    db.session.expire_all()
    return list(db.session.execute(select(SyncRun).where(SyncRun.server_id == server_id).order_by(SyncRun.id)).scalars())
