"""Synchronization jobs: one server, or every server that may sync automatically."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import current_app
from sqlalchemy import select

from portal.apple_link import status_of
from portal.extensions import db
from portal.job_guard import unless_deleted
from portal.models import ManagedServer, SyncRun
from portal.models.setting import sync_interval_seconds
from portal.servers.schedule import full_due_from, last_full_sync_at
from portal.servers.services import start_sync
from portal.servers.sync import run_sync


def sync_server(run_id: int) -> dict:
    """Run one synchronization (see portal.servers.sync); stops if the server is deleted meanwhile."""
    return unless_deleted(SyncRun, run_id, lambda: run_sync(run_id))


def sync_all_servers() -> dict:
    """Periodic: start a sync for every server whose token works; expired ones are skipped. Every
    FULL_SYNC_DAYS it is a full one, which also marks released devices removed."""
    started, skipped, full = [], [], []
    for server in db.session.execute(select(ManagedServer).order_by(ManagedServer.id)).scalars():
        if status_of(server).can_sync:
            due = full_sync_due(server)
            run, new = start_sync(server, trigger="scheduled", actor="system", full=due)
            (started if new else skipped).append(server.id)
            if new and due:
                full.append(server.id)
        else:
            skipped.append(server.id)
    return {"started": started, "skipped": skipped, "full": full}


def full_sync_due(server: ManagedServer, now: datetime | None = None) -> bool:
    """Whether the server's last successful full synchronization is FULL_SYNC_DAYS old (less half an interval, see
    full_due_from). Never fully synchronized: its first synchronization is a full one anyway."""
    due = full_due_from(last_full_sync_at(server), current_app.config["FULL_SYNC_DAYS"], sync_interval_seconds())
    return due is not None and due <= (now or datetime.now(timezone.utc))
