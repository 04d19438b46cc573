"""Synchronization jobs: one server, or every server that may sync automatically."""
from __future__ import annotations

from sqlalchemy import select

from portal.apple_link import status_of
from portal.extensions import db
from portal.job_guard import unless_deleted
from portal.models import ManagedServer, SyncRun
from portal.servers.services import start_sync
from portal.servers.sync import run_sync


def sync_server(run_id: int) -> dict:
    """Run one synchronization (see portal.servers.sync); stops if the server is deleted meanwhile."""
    return unless_deleted(SyncRun, run_id, lambda: run_sync(run_id))


def sync_all_servers() -> dict:
    """Periodic: start a sync for every server whose token works; expired ones are skipped."""
    started, skipped = [], []
    for server in db.session.execute(select(ManagedServer).order_by(ManagedServer.id)).scalars():
        if status_of(server).can_sync:
            run, new = start_sync(server, trigger="scheduled", actor="system")
            (started if new else skipped).append(server.id)
        else:
            skipped.append(server.id)
    return {"started": started, "skipped": skipped}
