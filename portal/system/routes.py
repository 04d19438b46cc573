"""Show whether background work can run, and let an admin prove it with a test job."""
from __future__ import annotations

from datetime import datetime, timezone

import redis
from flask import render_template, url_for
from rq import Worker
from rq_scheduler import Scheduler

from jobs.schedule import PREFIX, periodic_jobs

from ..activity.record import record_activity
from ..extensions import db
from ..htmx import part_of, polled_job
from ..queue import enqueue, fetch_job, get_queue, get_redis, new_job_id
from ..servers.schedule import interval_text
from . import bp


SLOW_QUEUE_S = 120  # the oldest job waiting longer than this: the workers are busy with long work, or stuck
# What each periodic job of jobs/schedule.py does, in the admin's words (the page says what stops without a scheduler).
PERIODIC_WORDS = {"server-sync": "Automatic synchronization of every managed server",
                  "assignment-retries": "Assignment retries (the retry queue)",
                  "token-status": "Token status check and expiry reminders"}


@bp.route("/")
def index():
    """Redis, workers, the scheduler and its periodic jobs, and queue status."""
    status = {"redis": False, "workers": [], "queued": None, "error": None, "scheduler": False, "periodic": [],
              "missing": [], "oldest_wait_s": None}
    try:
        conn = get_redis()
        conn.ping()
        status["redis"] = True
        status["workers"] = Worker.all(connection=conn)
        status["queued"] = len(get_queue())
        status["oldest_wait_s"] = oldest_wait_seconds()
        status["scheduler"] = scheduler_running(conn)
        status["periodic"] = periodic_runs(conn)
        held = {name for name, _, _ in status["periodic"]}
        status["missing"] = [p for p in periodic_jobs() if p.name not in held]
    except (redis.RedisError, OSError, RuntimeError) as exc:
        status["error"] = str(exc)
    return render_template("system/index.html", status=status, periodic_words=PERIODIC_WORDS,
                           interval_text=interval_text, slow_queue_s=SLOW_QUEUE_S)


def oldest_wait_seconds() -> int | None:
    """How long the job at the head of the queue has waited for a worker (None: none, or not a job RQ knows)."""
    for job_id in get_queue().get_job_ids(0, 1):
        job = fetch_job(job_id)
        if job is not None and job.enqueued_at is not None:
            return max(0, int((datetime.now(timezone.utc) - job.enqueued_at.replace(tzinfo=timezone.utc)).total_seconds()))
    return None


def scheduler_running(conn) -> bool:
    """Whether an rq-scheduler process is alive: its key (refreshed each poll, gone a little after) without a death."""
    for key in conn.scan_iter(match=Scheduler.redis_scheduler_namespace_prefix + "*"):
        if not conn.hexists(key, "death"):
            return True
    return False


def periodic_runs(conn) -> list[tuple[str, int, datetime]]:
    """The periodic jobs rq-scheduler holds: (name, interval in seconds, next run in UTC), in the order they run."""
    runs = []
    for job, when in Scheduler(queue_name="default", connection=conn).get_jobs(with_times=True):
        if job.id.startswith(PREFIX):
            runs.append((job.id[len(PREFIX):], int(job.meta.get("interval") or 0), when.replace(tzinfo=timezone.utc)))
    return runs


@bp.route("/test-job", methods=["POST"])
def test_job():
    """Enqueue a heartbeat job that a worker answers by writing to the activity log."""
    job_id = new_job_id()
    record_activity("system.test_job", summary="Test job queued", details={"job_id": job_id})
    db.session.commit()
    try:
        enqueue("jobs.maintenance.heartbeat", job_id, job_id=job_id)
    except (redis.RedisError, OSError, RuntimeError):
        return render_template("system/_job.html", job=None, job_id=job_id,
                               error="Redis cannot be reached: background work cannot run."), 503
    return render_template("system/_job.html", job=fetch_job(job_id), job_id=job_id, error=None)


@bp.route("/jobs/<job_id>")
@part_of(lambda job_id: url_for("system.index"))
def job_status(job_id: str):
    """The status of a job, polled by the page until it ends."""
    return polled_job("system/_job.html", job_id)
