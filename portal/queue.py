"""Redis connection, RQ queues and enqueueing helpers bound to the current app."""
from __future__ import annotations

import uuid

import redis
from flask import Flask, current_app
from rq import Queue, Worker
from rq.job import Job

from .redis_server import embedded_redis_url

CONNECT_TIMEOUT_S = 5
# Every reply within this: a Redis server that accepts connections but hangs (overloaded, paused,
# a half-open network path) fails the web request in seconds instead of holding it forever. An RQ
# worker raises its own connection's limit above its blocking dequeue's wait (rq's
# Worker._set_connection), so waiting for jobs is not cut short.
READ_TIMEOUT_S = 10


def init_app(app: Flask) -> None:
    """Connect lazily: commands like `db upgrade` never start Redis."""
    app.extensions["redis"] = None


def get_redis(app: Flask | None = None) -> redis.Redis:
    """The app's Redis connection (the embedded server unless REDIS_URL is set)."""
    app = app or current_app._get_current_object()
    conn = app.extensions.get("redis")
    if conn is None:
        url = app.config["REDIS_URL"] or embedded_redis_url(app.config["EMBEDDED_REDIS_DIR"])
        # A bounded connect and read: an unreachable or hung server fails a request in seconds
        # instead of hanging it (sign-in then goes on unthrottled, see auth/throttle.py).
        conn = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=READ_TIMEOUT_S)
        app.extensions["redis"] = conn
    return conn


def get_queue(name: str = "default") -> Queue:
    """An RQ queue on the app's Redis."""
    return Queue(name, connection=get_redis())


def new_job_id() -> str:
    """A job id chosen before enqueueing, so it can be stored with the row first."""
    return uuid.uuid4().hex


def enqueue(func: str, *args, job_id: str | None = None, queue: str = "default", **options) -> Job:
    """Enqueue `func` (a dotted path in jobs/) after the caller has committed what it needs.

    Only ids and plain values go into job arguments: never a secret.
    """
    options.setdefault("job_timeout", 3600)
    options.setdefault("result_ttl", 86400)
    options.setdefault("failure_ttl", 7 * 86400)
    return get_queue(queue).enqueue(func, *args, job_id=job_id or new_job_id(), **options)


def fetch_job(job_id: str | None) -> Job | None:
    """Return the RQ job with this id, or None when Redis no longer has it."""
    if not job_id:
        return None
    try:
        return Job.fetch(job_id, connection=get_redis())
    except Exception:  # NoSuchJobError, or a job whose payload can no longer be read
        return None


def job_alive(job: Job | None) -> bool:
    """Whether an RQ job will still run, or is running on a worker that is alive.

    A worker killed outright leaves its job 'started' until RQ's periodic clean-up notices, which
    can take many minutes; its key in Redis expires within its heartbeat interval (about 90 s).
    """
    if job is None:
        return False
    status = job.get_status(refresh=False)
    status = getattr(status, "value", status)
    if status in ("queued", "deferred", "scheduled"):
        return True
    if status == "started":
        return not job.worker_name or bool(get_redis().exists(Worker.redis_worker_namespace_prefix + job.worker_name))
    return False


def schedule_in(seconds: int, func: str, *args, job_id: str | None = None, job_timeout: int | None = None) -> None:
    """Enqueue `func` after a delay (held by rq-scheduler until due); `job_timeout` as enqueue's."""
    from datetime import timedelta

    from rq_scheduler import Scheduler

    Scheduler(queue_name="default", connection=get_redis()).enqueue_in(
        timedelta(seconds=seconds), func, *args, job_id=job_id or new_job_id(),
        **({"timeout": job_timeout} if job_timeout else {}))
