"""Show whether background work can run, and let an admin prove it with a test job."""
from __future__ import annotations

import redis
from flask import render_template, url_for
from rq import Worker

from ..activity.record import record_activity
from ..extensions import db
from ..htmx import polled_job
from ..queue import enqueue, fetch_job, get_queue, get_redis, new_job_id
from . import bp


@bp.route("/")
def index():
    """Redis, workers and queue status."""
    status = {"redis": False, "workers": [], "queued": None, "error": None}
    try:
        conn = get_redis()
        conn.ping()
        status["redis"] = True
        status["workers"] = Worker.all(connection=conn)
        status["queued"] = len(get_queue())
    except (redis.RedisError, OSError, RuntimeError) as exc:
        status["error"] = str(exc)
    return render_template("system/index.html", status=status)


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
def job_status(job_id: str):
    """The status of a job, polled by the page until it ends."""
    return polled_job("system/_job.html", job_id)
