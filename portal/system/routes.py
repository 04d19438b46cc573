"""Show whether background work can run, and let an admin prove it with a test job."""
from __future__ import annotations

from datetime import datetime, timezone

import redis
from flask import flash, redirect, render_template, request, url_for
from rq import Worker
from rq_scheduler import Scheduler

from jobs.schedule import PREFIX, periodic_jobs

from ..activity.record import record_activity
from ..extensions import db
from ..htmx import is_htmx, part_of, polled_job
from ..models.setting import sync_interval_seconds
from ..queue import enqueue, fetch_job, get_queue, get_redis, new_job_id
from ..servers.schedule import interval_text
from ..worker import WORKER_TTL_S
from . import bp


TEST_JOB = "jobs.maintenance.heartbeat"
NO_WORKER_HINT_S = 30  # a test job still queued after this: no worker takes jobs (an idle one takes it at once)
SLOW_QUEUE_S = 120  # the oldest job waiting longer than this: the workers are busy with long work, or stuck
# What each periodic job of jobs/schedule.py does, in the admin's words (the page says what stops without a scheduler).
PERIODIC_WORDS = {"server-sync": "Automatic synchronization of every managed server",
                  "assignment-retries": "Assignment retries (the retry queue)",
                  "token-status": "Token status check and expiry reminders"}


@bp.route("/")
def index():
    """Redis, workers, the scheduler and its periodic jobs, and queue status."""
    status = {"redis": False, "workers": [], "queued": None, "error": None, "scheduler": False, "periodic": [],
              "missing": [], "oldest_wait_s": None, "sync_off": False}
    test_job_id = request.args.get("job")  # the test job a plain form post (no JavaScript) came back with
    test_job = None
    try:
        conn = get_redis()
        conn.ping()
        status["redis"] = True
        now = datetime.now(timezone.utc)
        status["workers"] = [(w, silent_since(w, now)) for w in Worker.all(connection=conn)]
        status["queued"] = len(get_queue())
        status["oldest_wait_s"] = oldest_wait_seconds()
        status["scheduler"] = scheduler_running(conn)
        status["periodic"] = periodic_runs(conn)
        held = {name for name, _, _ in status["periodic"]}
        status["missing"] = [p for p in periodic_jobs() if p.name not in held]
        test_job = _test_job(test_job_id)
    except (redis.RedisError, OSError, RuntimeError) as exc:
        status["error"] = str(exc)
    status["sync_off"] = sync_interval_seconds() == 0  # no periodic job says so: the line would just be missing
    return render_template("system/index.html", status=status, periodic_words=PERIODIC_WORDS,
                           interval_text=interval_text, slow_queue_s=SLOW_QUEUE_S,
                           test_job=test_job, test_job_id=test_job_id)


def silent_since(worker: Worker, now: datetime) -> datetime | None:
    """When a worker last answered, if that is longer ago than its heartbeats allow (frozen, or killed before it could
    say goodbye: its key lingers a minute more); None while it answers."""
    last = worker.last_heartbeat
    if last is None:
        return None
    last = last.replace(tzinfo=timezone.utc) if last.tzinfo is None else last
    return last if (now - last).total_seconds() > WORKER_TTL_S else None


def _test_job(job_id: str | None):
    """The test job named in the address, if it is one (the page shows no other job's result)."""
    job = fetch_job(job_id)
    return job if job is not None and job.func_name == TEST_JOB else None


@bp.context_processor
def _job_words() -> dict:
    return {"waited_s": waited_s, "no_worker_hint_s": NO_WORKER_HINT_S}


def waited_s(job) -> float:
    """How long a job has waited in its queue (0 when RQ did not note when it was queued)."""
    if job is None or job.enqueued_at is None:
        return 0
    return (datetime.now(timezone.utc) - job.enqueued_at.replace(tzinfo=timezone.utc)).total_seconds()


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
    """Enqueue a heartbeat job that a worker answers by writing to the activity log. Without JavaScript (a plain form
    post) the page comes back with a message and the job's state, so a reload does not post again."""
    job_id = new_job_id()
    record_activity("system.test_job", summary="Test job queued", details={"job_id": job_id})
    db.session.commit()
    error = None
    try:
        enqueue(TEST_JOB, job_id, job_id=job_id)
    except (redis.RedisError, OSError, RuntimeError):
        error = "Redis cannot be reached: background work cannot run."
    if not is_htmx():
        flash(error or "Test job queued: this page shows whether a worker answered (with JavaScript on, it follows "
                       "the job by itself; reload it to see).", "error" if error else "success")
        return redirect(url_for("system.index", **({} if error else {"job": job_id})))
    if error:
        return render_template("system/_job.html", job=None, job_id=job_id, error=error), 503
    return render_template("system/_job.html", job=fetch_job(job_id), job_id=job_id, error=None)


@bp.route("/jobs/<job_id>")
@part_of(lambda job_id: url_for("system.index"))
def job_status(job_id: str):
    """The status of a job, polled by the page until it ends."""
    return polled_job("system/_job.html", job_id)
