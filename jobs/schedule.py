"""Periodic jobs, declared in one place and reconciled with rq-scheduler.

`periodic_jobs()` says what should run and how often (from the settings); `reconcile()` makes
rq-scheduler hold exactly that: it adds what is missing, replaces what changed and cancels what
is no longer wanted. The scheduler command runs it at start, and the settings page runs it
whenever the Server Synchronization Interval changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from rq_scheduler import Scheduler

PREFIX = "periodic-"


@dataclass(frozen=True)
class Periodic:
    """A job that runs every `interval` seconds."""

    name: str
    func: str
    interval: int

    @property
    def job_id(self) -> str:
        return PREFIX + self.name

    def signature(self) -> dict:
        return {"func": self.func, "interval": self.interval}


def periodic_jobs() -> list[Periodic]:
    """The periodic jobs the portal wants now (needs an app context for the settings)."""
    from portal.models.setting import sync_interval_seconds

    wanted = [Periodic("token-status", "jobs.servers.refresh_token_statuses", 86400),
              # Add Devices / Remove Devices: due retries, and batches whose job died mid-way.
              Periodic("assignment-retries", "jobs.assignments.retry_due", 60)]
    interval = sync_interval_seconds()  # never below the minimum, whatever is stored
    if interval > 0:
        wanted.append(Periodic("server-sync", "jobs.sync.sync_all_servers", interval))
    return wanted


def reconcile(scheduler: Scheduler, wanted: list[Periodic]) -> dict[str, list[str]]:
    """Make the scheduler hold exactly `wanted`; return the names added, changed and removed."""
    report = {"added": [], "changed": [], "removed": []}
    existing = {job.id: job for job in scheduler.get_jobs() if job.id.startswith(PREFIX)}
    for periodic in wanted:
        job = existing.pop(periodic.job_id, None)
        if job is not None and job.meta.get("periodic") == periodic.signature():
            continue
        if job is not None:
            scheduler.cancel(job)
            job.delete()
        report["changed" if job is not None else "added"].append(periodic.name)
        scheduler.schedule(
            scheduled_time=datetime.now(timezone.utc),
            func=periodic.func,
            interval=periodic.interval,
            repeat=None,
            id=periodic.job_id,
            meta={"periodic": periodic.signature()},
            result_ttl=periodic.interval * 2 + 60,
        )
    for job in existing.values():
        scheduler.cancel(job)
        job.delete()
        report["removed"].append(job.id[len(PREFIX):])
    return report


def reconcile_now() -> dict[str, list[str]]:
    """Reconcile with the app's Redis (used by the scheduler command and the settings page)."""
    from portal.queue import get_redis

    return reconcile(Scheduler(queue_name="default", connection=get_redis()), periodic_jobs())
