"""Background work: RQ on a real Redis, the app context in workers, scheduler reconciliation."""
from datetime import datetime, timezone

from rq_scheduler import Scheduler
from sqlalchemy import select

from jobs.schedule import PREFIX, Periodic, periodic_jobs, reconcile
from portal.extensions import db
from portal.models import ActivityEntry
from portal.models.setting import set_setting
from portal.queue import get_redis


def test_a_job_enqueued_by_a_request_runs_in_a_burst_worker_and_writes_to_the_database(app, htmx, run_jobs):
    response = htmx.post("/system/test-job")
    assert response.status_code == 200
    assert b"Queued" in response.data and b"hx-trigger=\"every 1s\"" in response.data
    job_id = db.session.execute(select(ActivityEntry.details).where(ActivityEntry.action == "system.test_job")).scalar_one()["job_id"]

    assert run_jobs() == []

    db.session.expire_all()
    answered = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "system.heartbeat")).scalar_one()
    assert answered.details["job_id"] == job_id and answered.actor == "system"
    status = htmx.get(f"/system/jobs/{job_id}")
    assert status.status_code == 286  # htmx stops polling
    assert b"Done" in status.data
    worker = answered.details["worker"]  # "host (pid N)"
    assert f"The background worker on {worker} answered." in status.get_data(as_text=True)


def test_system_page_shows_redis_and_workers(htmx):
    html = htmx.get("/system/").get_data(as_text=True)
    assert "Connected" in html and "None running" in html


def test_unknown_job_status_stops_polling(htmx):
    response = htmx.get("/system/jobs/does-not-exist")
    assert response.status_code == 286 and b"no longer known" in response.data


def _scheduled(scheduler):
    return {job.id[len(PREFIX):]: job.meta["periodic"] for job in scheduler.get_jobs() if job.id.startswith(PREFIX)}


def test_scheduler_reconciles_added_changed_and_removed_jobs(app):
    scheduler = Scheduler(queue_name="default", connection=get_redis())
    first = [Periodic("a", "jobs.maintenance.heartbeat", 60), Periodic("b", "jobs.maintenance.heartbeat", 120)]
    assert reconcile(scheduler, first) == {"added": ["a", "b"], "changed": [], "removed": []}
    assert _scheduled(scheduler) == {"a": {"func": "jobs.maintenance.heartbeat", "interval": 60},
                                     "b": {"func": "jobs.maintenance.heartbeat", "interval": 120}}

    assert reconcile(scheduler, first) == {"added": [], "changed": [], "removed": []}

    second = [Periodic("a", "jobs.maintenance.heartbeat", 300), Periodic("c", "jobs.maintenance.heartbeat", 10)]
    assert reconcile(scheduler, second) == {"added": ["c"], "changed": ["a"], "removed": ["b"]}
    assert _scheduled(scheduler) == {"a": {"func": "jobs.maintenance.heartbeat", "interval": 300},
                                     "c": {"func": "jobs.maintenance.heartbeat", "interval": 10}}


def test_scheduler_leaves_other_scheduled_jobs_alone(app):
    scheduler = Scheduler(queue_name="default", connection=get_redis())
    scheduler.schedule(datetime.now(timezone.utc), "jobs.maintenance.heartbeat", interval=30, id="someone-else")
    reconcile(scheduler, [])
    assert [job.id for job in scheduler.get_jobs()] == ["someone-else"]


def test_periodic_jobs_follow_the_synchronization_interval(app):
    names = {p.name: p.interval for p in periodic_jobs()}
    assert names["server-sync"] == 86400
    set_setting("sync_interval_seconds", "3600")
    db.session.commit()
    assert {p.name: p.interval for p in periodic_jobs()}["server-sync"] == 3600
    set_setting("sync_interval_seconds", "0")
    db.session.commit()
    assert "server-sync" not in {p.name for p in periodic_jobs()}


def test_a_worker_waits_for_jobs_longer_than_a_web_request_waits_for_redis(app):
    """get_redis() bounds every reply (READ_TIMEOUT_S); the worker's blocking dequeue must not hit it."""
    from portal.queue import READ_TIMEOUT_S
    from portal.worker import make_worker

    assert get_redis(app).connection_pool.connection_kwargs["socket_timeout"] == READ_TIMEOUT_S
    worker = make_worker(app, ["default"])  # as `flask worker` builds it: on the same connection
    assert worker.connection.connection_pool.connection_kwargs["socket_timeout"] > worker.dequeue_timeout


def _page(htmx) -> str:
    return " ".join(htmx.get("/system/").get_data(as_text=True).split())


def test_jobs_waiting_has_a_thousands_separator(app, htmx):
    from portal.queue import get_queue

    get_redis().rpush(get_queue().key, *[f"job-{i}" for i in range(1234)])  # ids only: no worker takes them here
    assert "<dt>Jobs waiting</dt><dd>1,234</dd>" in _page(htmx)


def test_the_page_says_when_no_scheduler_runs_and_what_waits_for_it(app, htmx):
    """Workers alone run nothing periodic: without rq-scheduler no server synchronizes by itself and the retry
    queue never drains, and the page that says whether background work can run said nothing about it."""
    from jobs.schedule import reconcile_now

    reconcile_now()
    html = _page(htmx)
    assert "This page shows whether both are running." in html
    assert "Not running" in html and "flask --app wsgi scheduler" in html
    assert "Automatic synchronization of every managed server: every 86,400 seconds (1 day)" in html
    assert "Assignment retries (the retry queue): every 60 seconds (1 minute); next when the scheduler runs" in html

    scheduler = Scheduler(queue_name="default", connection=get_redis(), interval=30)
    scheduler.register_birth()
    html = _page(htmx)
    assert '<span class="badge badge-ok">Running</span>' in html and "Not running" not in html
    assert "next when the scheduler runs" not in html
    scheduler.register_death()
    assert "Not running" in _page(htmx)
