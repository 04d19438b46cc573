"""When the scheduled synchronizations of a server come: the next one, and the next full one.

The periodic job (jobs.sync.sync_all_servers, declared in jobs/schedule.py) is held by rq-scheduler,
which stores the time it next enqueues it. That time is only "about": the scheduler looks every few
seconds and a worker starts the job when it is free. Without it (no scheduler ever reconciled the
job), the last scheduled synchronization plus the interval is the estimate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import redis
from flask import current_app
from sqlalchemy import func, select

from ..extensions import db
from ..models import ManagedServer, SyncRun

SYNC_JOB_ID = "periodic-server-sync"  # jobs.schedule: PREFIX + "server-sync"


@dataclass(frozen=True)
class SyncSchedule:
    """What the server page says about automatic synchronization."""

    interval: int  # seconds; 0: automatic synchronization is off
    next_at: datetime | None  # about when the next scheduled synchronization starts (None: not known)
    scheduler_running: bool | None  # None: Redis could not be asked
    full_days: int  # FULL_SYNC_DAYS
    last_full_at: datetime | None  # when the last successful full synchronization finished
    full_due_at: datetime | None  # from when a scheduled synchronization is full (full_due_from)
    next_full_at: datetime | None  # about when the first scheduled synchronization from full_due_at starts
    next_is_full: bool  # every device has not been read yet: the next synchronization reads them all

    @property
    def interval_text(self) -> str:
        return interval_text(self.interval)

    @property
    def overdue(self) -> bool:
        return self.next_at is not None and self.next_at < datetime.now(timezone.utc) - timedelta(minutes=1)


def last_full_sync_at(server: ManagedServer) -> datetime | None:
    """When the server's last successful full synchronization finished."""
    return db.session.execute(select(func.max(SyncRun.finished_at)).where(
        SyncRun.server_id == server.id, SyncRun.kind == "full", SyncRun.status == "succeeded")).scalar()


def full_due_from(last_full: datetime | None, full_days: int, interval: int) -> datetime | None:
    """When the scheduled synchronizations become full ones: FULL_SYNC_DAYS after the last full one finished, less
    half an interval. The ticks come every `interval` seconds, and the last full one finished a little after its own
    tick: without the margin, the tick FULL_SYNC_DAYS later finds it that little short of the age, and the full one
    comes a whole interval later (every 8 days with a daily interval, every 14 with a weekly one)."""
    if not full_days or last_full is None:
        return None
    if last_full.tzinfo is None:
        last_full = last_full.replace(tzinfo=timezone.utc)
    return last_full + timedelta(days=full_days) - timedelta(seconds=interval / 2)


def sync_schedule(server: ManagedServer) -> SyncSchedule:
    """The server's synchronization schedule, from the interval, rq-scheduler and its last runs."""
    from ..models.setting import sync_interval_seconds

    interval = sync_interval_seconds()
    full_days = current_app.config["FULL_SYNC_DAYS"]
    next_at, running = (_next_scheduled(interval) if interval else (None, None))
    last_full = last_full_sync_at(server)
    full_due_at = full_due_from(last_full, full_days, interval)
    return SyncSchedule(interval=interval, next_at=next_at, scheduler_running=running, full_days=full_days,
                        last_full_at=last_full, full_due_at=full_due_at, next_full_at=_first_tick_from(full_due_at, next_at, interval),
                        next_is_full=not (server.fetch_complete and server.sync_cursor))


def _next_scheduled(interval: int) -> tuple[datetime | None, bool | None]:
    """When rq-scheduler next enqueues the periodic synchronization, and whether a scheduler runs."""
    from rq_scheduler import Scheduler

    from ..queue import get_redis

    try:
        conn = get_redis()
        score = conn.zscore(Scheduler.scheduled_jobs_key, SYNC_JOB_ID)
        running = any(not conn.hexists(key, "death")
                      for key in conn.scan_iter(match=Scheduler.redis_scheduler_namespace_prefix + "*", count=100))
    except (redis.RedisError, OSError, RuntimeError):
        score, running = None, None
    if score is not None:
        return datetime.fromtimestamp(score, timezone.utc), running
    last = db.session.execute(select(func.max(SyncRun.created_at)).where(SyncRun.trigger == "scheduled")).scalar()
    if last is not None and last.tzinfo is None:
        last = last.replace(tzinfo=timezone.utc)
    return (last + timedelta(seconds=interval) if last else None), running


def _first_tick_from(due: datetime | None, next_at: datetime | None, interval: int) -> datetime | None:
    """The first scheduled synchronization at or after `due` (the ticks are next_at + k × interval)."""
    if due is None or next_at is None or not interval:
        return None
    if due.tzinfo is None:
        due = due.replace(tzinfo=timezone.utc)
    ticks = max(0, math.ceil((due - next_at).total_seconds() / interval))
    return next_at + timedelta(seconds=ticks * interval)


def interval_text(seconds: int) -> str:
    """'86,400 seconds (1 day)', '5,400 seconds (90 minutes)': the setting as typed, and what it means."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{seconds:,} seconds ({count:,} {unit}{'s' if count != 1 else ''})"
    return f"{seconds:,} seconds"
