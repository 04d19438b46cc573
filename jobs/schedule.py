"""Periodic jobs, declared in one place and reconciled with rq-scheduler.

`periodic_jobs()` says what should run and how often (from the settings); `reconcile()` makes
rq-scheduler hold exactly that: it adds what is missing, replaces what changed and cancels what
is no longer wanted. The scheduler command runs it at start and then every minute (a periodic job
lost in Redis comes back by itself), and the settings page runs it whenever the Server
Synchronization Interval changes.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from rq_scheduler import Scheduler

PREFIX = "periodic-"
# The token statuses are worked out from the stored expiry, without a call to Apple: often enough that a token
# running out (About to Expire, Expired) is logged and announced within minutes of it, not up to a day later.
TOKEN_STATUS_EVERY_S = 300
RECONCILE_EVERY_S = 60
KEPT = -1  # result_ttl of a key that never expires
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    """A job that runs every `interval` seconds; `last_run`: when it last ran, where the portal keeps that (its
    first run after a (re)schedule is then `interval` after it, not at once)."""

    name: str
    func: str
    interval: int
    last_run: datetime | None = None

    @property
    def job_id(self) -> str:
        return PREFIX + self.name

    def signature(self) -> dict:
        return {"func": self.func, "interval": self.interval}


def periodic_jobs() -> list[Periodic]:
    """The periodic jobs the portal wants now (needs an app context for the settings)."""
    from portal.models.setting import sync_interval_seconds

    wanted = [Periodic("token-status", "jobs.servers.refresh_token_statuses", TOKEN_STATUS_EVERY_S),
              # Add Devices / Remove Devices: due retries, and batches whose job died mid-way.
              Periodic("assignment-retries", "jobs.assignments.retry_due", 60)]
    interval = sync_interval_seconds()  # never below the minimum, whatever is stored
    if interval > 0:
        wanted.append(Periodic("server-sync", "jobs.sync.sync_all_servers", interval, _last_scheduled_sync()))
    return wanted


def _last_scheduled_sync() -> datetime | None:
    from sqlalchemy import func, select

    from portal.extensions import db
    from portal.models import SyncRun

    last = db.session.execute(select(func.max(SyncRun.created_at)).where(SyncRun.trigger == "scheduled")).scalar()
    return last.replace(tzinfo=timezone.utc) if last is not None and last.tzinfo is None else last


def reconcile(scheduler: Scheduler, wanted: list[Periodic]) -> dict[str, list[str]]:
    """Make the scheduler hold exactly `wanted`; return the names added, changed and removed."""
    report = {"added": [], "changed": [], "removed": []}
    existing = {job.id: job for job in scheduler.get_jobs() if job.id.startswith(PREFIX)}
    for periodic in wanted:
        job = existing.pop(periodic.job_id, None)
        if job is not None and job.meta.get("periodic") == periodic.signature() and job.result_ttl == KEPT:
            continue  # (one scheduled by an older version, whose key expired, is replaced)
        first_run = _first_run(scheduler, periodic, job)
        if job is not None:
            scheduler.cancel(job)
            job.delete()
        report["changed" if job is not None else "added"].append(periodic.name)
        scheduler.schedule(
            scheduled_time=first_run,
            func=periodic.func,
            interval=periodic.interval,
            repeat=None,
            id=periodic.job_id,
            meta={"periodic": periodic.signature()},
            # Kept for good (one key per periodic job): rq-scheduler drops a job whose key has gone, and a key that
            # expired a while after the last run went while a busy or stuck worker had not reached the next one yet.
            result_ttl=KEPT,
        )
    for job in existing.values():
        scheduler.cancel(job)
        job.delete()
        report["removed"].append(job.id[len(PREFIX):])
    return report


def _first_run(scheduler: Scheduler, periodic: Periodic, job) -> datetime:
    """When a periodic job (re)scheduled runs first: an interval after its last run, or now if that is past or
    unknown. A new Server Synchronization Interval thus counts from the last scheduled synchronization, as the
    server page says, instead of synchronizing every server the moment it is saved."""
    now = datetime.now(timezone.utc)
    last = periodic.last_run
    old_interval = (job.meta.get("periodic") or {}).get("interval") if job is not None else None
    score = scheduler.connection.zscore(scheduler.scheduled_jobs_key, job.id) if old_interval else None
    if score is not None:  # the job being replaced: its next run less its old interval is its last tick
        tick = datetime.fromtimestamp(score - old_interval, timezone.utc)
        last = max(last, tick) if last else tick
    return max(now, last + timedelta(seconds=periodic.interval)) if last else now


class PortalScheduler(Scheduler):
    """rq-scheduler that reconciles the periodic jobs every RECONCILE_EVERY_S as well: whatever removed one from
    Redis (a flush, an operator, a bug), it is scheduled again within a minute instead of never running again."""

    def __init__(self, *args, wanted: Callable[[], list[Periodic]], **kwargs):
        super().__init__(*args, **kwargs)
        self._wanted, self._reconciled_at = wanted, time.monotonic()

    def enqueue_jobs(self):  # noqa: D102 - rq-scheduler hook, called each poll while holding its lock
        jobs = super().enqueue_jobs()
        if time.monotonic() - self._reconciled_at >= RECONCILE_EVERY_S:
            self._reconciled_at = time.monotonic()
            try:
                report = reconcile(self, self._wanted())
            except Exception:  # the database or Redis away for a moment: tried again at the next minute
                log.exception("The periodic jobs could not be checked; tried again in %s s.", RECONCILE_EVERY_S)
            else:
                if any(report.values()):
                    log.warning("Periodic jobs put back: %s", report)
        return jobs


def reconcile_now() -> dict[str, list[str]]:
    """Reconcile with the app's Redis (used by the scheduler command and the settings page)."""
    from portal.queue import get_redis

    return reconcile(Scheduler(queue_name="default", connection=get_redis()), periodic_jobs())
