"""Periodic jobs, declared in one place and reconciled with rq-scheduler.

`periodic_jobs()` says what should run and how often (from the settings); `reconcile()` makes
rq-scheduler hold exactly that: it adds what is missing, replaces what changed and cancels what
is no longer wanted. The scheduler command runs it at start and then every minute (a periodic job
lost in Redis comes back by itself), and the settings page runs it whenever the Server
Synchronization Interval changes.

`PortalScheduler` also rides out Redis being unreachable or slow for a while (a restart, a stall): rq-scheduler's own
loop dies on the first failed call, and with it `flask dev` and everything it started.
"""
from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from uuid import uuid4

import redis
from rq_scheduler import Scheduler

PREFIX = "periodic-"
# The token statuses are worked out from the stored expiry, without a call to Apple: often enough that a token
# running out (About to Expire, Expired) is logged and announced within minutes of it, not up to a day later.
TOKEN_STATUS_EVERY_S = 300
RECONCILE_EVERY_S = 60
KEPT = -1  # result_ttl of a key that never expires
REDIS_AWAY = (redis.ConnectionError, redis.TimeoutError)  # Redis stopped, restarting, stalled or out of reach
RETRY_CAP_S = 60  # the longest wait between two tries while Redis is away: back within a minute of Redis
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

    def __init__(self, *args, wanted: Callable[[], list[Periodic]], reconciled: bool = True, **kwargs):
        """`reconciled`: whether the periodic jobs were just reconciled; if not, the first poll does it."""
        super().__init__(*args, **kwargs)
        self._wanted = wanted
        self._reconciled_at = time.monotonic() if reconciled else -math.inf
        self._failures = 0  # Redis calls failed in a row: the wait before the next try grows with them
        self._stopping = False

    def run(self, burst=False):
        """rq-scheduler's loop, started again after a wait whenever Redis fails it, until SIGTERM or SIGINT."""
        while True:
            try:
                return super().run(burst=burst)
            except REDIS_AWAY as error:
                if self._stopping:  # stopped while Redis was away: its key expires by itself within a poll or two
                    log.warning("Scheduler stopped; Redis could not be told (%s).", error)
                    return None
                self._failures += 1
                wait = min(RETRY_CAP_S, max(1, self._interval) * 2 ** min(self._failures - 1, 6))
                log.warning("Redis cannot be reached or does not answer (%s): the scheduler tries again in %s s.",
                            error, wait)
                time.sleep(wait)  # a SIGTERM here ends the process at once (see _install_signal_handlers)

    def register_birth(self):  # noqa: D102 - rq-scheduler's, which refuses a name whose key is still alive
        try:
            super().register_birth()
        except ValueError:
            # Our own key from before Redis went away (its death could not be written, it has not expired yet): a
            # fresh name starts at once instead of waiting for it; the old key expires by itself.
            self.name = uuid4().hex
            super().register_birth()
        if self._failures:
            log.warning("Redis answers again: the scheduler carries on.")
            self._failures = 0

    def heartbeat(self):  # noqa: D102 - rq-scheduler's, which only extends the key
        if not self.connection.expire(self.key, int(self._interval) + 10):
            # The key is gone (Redis restarted without its data, or was flushed) while no call failed: without it the
            # Background jobs page would say no scheduler runs, for good.
            self.register_birth()

    def register_death(self):  # noqa: D102
        if self._failures:  # Redis failed the last call: no point waiting on it to say what its key's expiry says
            return
        super().register_death()

    def _install_signal_handlers(self):
        """SIGTERM and SIGINT stop the scheduler. rq-scheduler's own handler writes to Redis first: while Redis is away
        that raised a connection error instead, which the retry loop would have taken for one more outage."""
        def stop(signum, _frame):
            self._stopping = True
            log.info("%s: stopping the scheduler.", signal.Signals(signum).name)
            raise SystemExit()  # rq-scheduler's run() then registers the death and removes its lock

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)

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
