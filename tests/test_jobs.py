"""Background work: RQ on a real Redis, the app context in workers, scheduler reconciliation."""
from datetime import datetime, timedelta, timezone

import pytest
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


def _next_run(scheduler, name) -> datetime:
    return datetime.fromtimestamp(scheduler.connection.zscore(scheduler.scheduled_jobs_key, PREFIX + name), timezone.utc)


def test_a_new_interval_counts_from_the_last_run_instead_of_running_at_once(app):
    """Saving a new Server Synchronization Interval synchronized every server at once, right after the last run."""
    scheduler = Scheduler(queue_name="default", connection=get_redis())
    reconcile(scheduler, [Periodic("a", "jobs.maintenance.heartbeat", 3600)])
    tick = _next_run(scheduler, "a")  # its first run: now
    assert abs((tick - datetime.now(timezone.utc)).total_seconds()) < 5

    assert reconcile(scheduler, [Periodic("a", "jobs.maintenance.heartbeat", 7200)])["changed"] == ["a"]
    assert _next_run(scheduler, "a") == tick - timedelta(seconds=3600) + timedelta(seconds=7200)
    # Shorter than the time since the last run: overdue, so now.
    reconcile(scheduler, [Periodic("a", "jobs.maintenance.heartbeat", 60)])
    assert abs((_next_run(scheduler, "a") - datetime.now(timezone.utc)).total_seconds()) < 5


def test_a_periodic_job_added_again_runs_an_interval_after_its_last_run(app):
    scheduler = Scheduler(queue_name="default", connection=get_redis())
    recently = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=10)
    reconcile(scheduler, [Periodic("a", "jobs.maintenance.heartbeat", 3600, last_run=recently),
                          Periodic("b", "jobs.maintenance.heartbeat", 60, last_run=recently)])
    assert _next_run(scheduler, "a") == recently + timedelta(hours=1)
    assert abs((_next_run(scheduler, "b") - datetime.now(timezone.utc)).total_seconds()) < 5  # overdue: now


def test_scheduler_leaves_other_scheduled_jobs_alone(app):
    scheduler = Scheduler(queue_name="default", connection=get_redis())
    scheduler.schedule(datetime.now(timezone.utc), "jobs.maintenance.heartbeat", interval=30, id="someone-else")
    reconcile(scheduler, [])
    assert [job.id for job in scheduler.get_jobs()] == ["someone-else"]


def test_periodic_jobs_follow_the_synchronization_interval(app):
    names = {p.name: p.interval for p in periodic_jobs()}
    assert names["server-sync"] == 86400
    # A token running out is logged and announced within minutes of its expiry (it once waited for a daily job).
    assert names["token-status"] <= 300 and names["assignment-retries"] == 60
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


def test_a_worker_that_has_unsubscribed_stops_in_about_a_second_not_a_minute(app):
    """RQ's command listener waited 60 s at a time: a worker ending right after its unsubscribe was read (a burst run,
    a SIGTERM) sat out that wait, and runs of the test suite took a minute longer now and then. The case is made here
    on purpose: the listener has read the unsubscribe and waits; stopping it must not take the minute."""
    import time

    from portal.worker import make_worker

    worker = make_worker(app, ["default"], simple=True)
    worker.subscribe()
    deadline = time.monotonic() + 10
    while not worker.pubsub.subscribed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.pubsub.subscribed
    worker.pubsub.unsubscribe()
    while worker.pubsub.subscribed and time.monotonic() < deadline:  # the listener reads Redis's confirmation
        time.sleep(0.01)
    assert not worker.pubsub.subscribed
    started = time.monotonic()
    worker.unsubscribe()
    assert time.monotonic() - started < 10
    assert not worker.pubsub_thread.is_alive()


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


def test_a_periodic_jobs_key_outlives_a_worker_that_reaches_it_late(app, run_jobs):
    """Its key expired 2 × interval + 60 s after a run: a worker busy or stuck longer than that, and rq-scheduler
    dropped the job for good (the retry queue stopped until the scheduler was restarted)."""
    from rq.job import Job

    from jobs.schedule import reconcile_now

    reconcile_now()
    scheduler = Scheduler(queue_name="default", connection=get_redis())
    list(scheduler.enqueue_jobs())  # every periodic job is due at once: into the queue
    assert run_jobs() == []
    for name in ("assignment-retries", "token-status", "server-sync"):
        key = Job.key_for(PREFIX + name)
        assert get_redis().exists(key) and get_redis().ttl(key) == -1, name  # kept: never expires
    assert set(_scheduled(scheduler)) == {"assignment-retries", "token-status", "server-sync"}


def test_the_scheduler_puts_back_a_periodic_job_lost_in_redis_within_a_minute(app):
    from rq.job import Job

    from jobs.schedule import RECONCILE_EVERY_S, PortalScheduler, reconcile_now

    reconcile_now()
    scheduler = PortalScheduler(queue_name="default", connection=get_redis(), wanted=periodic_jobs)
    get_redis().delete(Job.key_for(PREFIX + "assignment-retries"))  # lost, however
    assert "assignment-retries" not in _scheduled(scheduler)  # rq-scheduler drops what it cannot fetch
    list(scheduler.enqueue_jobs())
    assert "assignment-retries" not in _scheduled(scheduler)  # not at every poll: once a minute
    scheduler._reconciled_at -= RECONCILE_EVERY_S
    list(scheduler.enqueue_jobs())
    assert _scheduled(scheduler)["assignment-retries"] == {"func": "jobs.assignments.retry_due", "interval": 60}

    def broken():
        raise RuntimeError("database away")

    scheduler._wanted, scheduler._reconciled_at = broken, scheduler._reconciled_at - RECONCILE_EVERY_S
    list(scheduler.enqueue_jobs())  # logged, and the scheduler goes on


def test_a_periodic_job_scheduled_with_an_expiring_key_is_replaced(app):
    """As an older version scheduled them: the next start of the scheduler replaces them, keys kept."""
    scheduler = Scheduler(queue_name="default", connection=get_redis())
    periodic = Periodic("a", "jobs.maintenance.heartbeat", 60)
    scheduler.schedule(datetime.now(timezone.utc), periodic.func, interval=60, repeat=None, id=periodic.job_id,
                       meta={"periodic": periodic.signature()}, result_ttl=180)
    assert reconcile(scheduler, [periodic]) == {"added": [], "changed": ["a"], "removed": []}
    assert [job.result_ttl for job in scheduler.get_jobs()] == [-1]
    assert reconcile(scheduler, [periodic]) == {"added": [], "changed": [], "removed": []}


def test_the_page_says_when_jobs_wait_longer_than_usual(app, htmx):
    """A frozen or busy worker went unnoticed: "Workers: 1 running" and a growing count of jobs waiting."""
    from datetime import timedelta

    from portal.queue import enqueue, fetch_job

    enqueue("jobs.maintenance.heartbeat", "late", job_id="late-job")
    html = _page(htmx)
    assert "<dt>Jobs waiting</dt><dd>1 · the oldest for" in html and "Waiting longer than usual" not in html
    job = fetch_job("late-job")
    job.enqueued_at = datetime.now(timezone.utc) - timedelta(minutes=5)
    job.save()
    html = _page(htmx)
    assert "the oldest for 5 min 0 s" in html or "the oldest for 5 min 1 s" in html
    assert "Waiting longer than usual" in html and "No worker is running to take them." in html


def test_the_page_names_a_periodic_job_the_scheduler_does_not_hold(app, htmx):
    from rq.job import Job

    from jobs.schedule import reconcile_now

    reconcile_now()
    assert "Not scheduled" not in _page(htmx)
    get_redis().delete(Job.key_for(PREFIX + "assignment-retries"))
    html = _page(htmx)
    assert ('<span class="badge badge-warning">Not scheduled</span> Assignment retries (the retry queue) (every 60 '
            "seconds (1 minute)): it is scheduled again when the scheduler starts.") in html


@pytest.mark.parametrize("seconds, shown", [(None, "—"), (0.85, "850 ms"), (12.34, "12.3 s"), (125, "2 min 5 s"),
                                            (3 * 3600, "3 h 0 min"), (3 * 3600 + 4 * 60 + 59, "3 h 4 min"),
                                            (86_400, "1 day 0 h"), (2 * 86_400 + 5 * 3600, "2 days 5 h")])
def test_durations_are_written_in_the_units_a_person_reads(seconds, shown):
    """A job waiting for three hours read "180 min 0 s"."""
    from portal.templating import format_duration

    assert format_duration(seconds) == shown


def test_run_a_test_job_without_javascript_comes_back_to_the_page_with_its_state(app, admin_client, run_jobs):
    """A plain form post showed a bare fragment that never updated; reload posted again, back gave 405."""
    response = admin_client.post("/system/test-job")
    assert response.status_code == 302
    job_id = db.session.execute(select(ActivityEntry.details).where(ActivityEntry.action == "system.test_job")).scalar_one()["job_id"]
    assert response.headers["Location"] == f"/system/?job={job_id}"
    html = " ".join(admin_client.get(response.headers["Location"]).get_data(as_text=True).split())
    assert "Test job queued: this page shows whether a worker answered" in html and "<!doctype html>" in html
    assert '<span class="badge badge-info">Queued</span> Waiting for a worker…' in html

    assert run_jobs() == []
    html = " ".join(admin_client.get(response.headers["Location"]).get_data(as_text=True).split())
    assert '<span class="badge badge-ok">Done</span> The background worker on' in html
    assert "Test job queued" not in html  # the message was said once


def test_the_page_shows_no_other_job_as_the_test_job(app, admin_client):
    from portal.queue import enqueue

    enqueue("jobs.sync.sync_all_servers", job_id="not-a-test-job")
    html = admin_client.get("/system/?job=not-a-test-job").get_data(as_text=True)
    assert "The job is no longer known to Redis." in html


def test_a_test_job_no_worker_takes_says_so_and_keeps_polling(app, htmx):
    """It read "Queued – Waiting for a worker…" forever when the workers were frozen or stopped."""
    from portal.queue import fetch_job

    htmx.post("/system/test-job")
    job_id = db.session.execute(select(ActivityEntry.details).where(ActivityEntry.action == "system.test_job")).scalar_one()["job_id"]
    assert b"No worker picked it up" not in htmx.get(f"/system/jobs/{job_id}").data
    job = fetch_job(job_id)
    job.enqueued_at = datetime.now(timezone.utc) - timedelta(seconds=31)
    job.save()
    status = htmx.get(f"/system/jobs/{job_id}")
    html = " ".join(status.get_data(as_text=True).split())
    assert status.status_code == 200 and 'hx-trigger="every 1s"' in html  # taken as soon as a worker runs again
    assert "No worker picked it up in 30 s: check that the workers run (Workers, above)" in html


def test_a_worker_that_stopped_answering_is_not_listed_as_running(app, htmx):
    """A frozen worker (kill -STOP) was listed as "1 running" until its key expired, minutes later."""
    from rq.utils import utcformat

    from portal.worker import WORKER_TTL_S, make_worker

    frozen, alive = make_worker(app, ["default"], name="frozen-one"), make_worker(app, ["default"], name="alive-one")
    frozen.register_birth()
    alive.register_birth()
    assert "2 running: <code>alive-one</code>, <code>frozen-one</code>" in _page(htmx) or \
        "2 running: <code>frozen-one</code>, <code>alive-one</code>" in _page(htmx)
    last = datetime.now(timezone.utc) - timedelta(seconds=WORKER_TTL_S + 5)
    get_redis().hset(frozen.key, "last_heartbeat", utcformat(last))
    html = _page(htmx)
    assert ("1 running: <code>alive-one</code>; <span class=\"badge badge-warning\">Not answering</span> "
            f"<code>frozen-one</code> not answering since <span title=\"{last:%Y-%m-%d %H:%M} UTC\">{last:%H:%M} UTC"
            "</span> (frozen or stopped: see its log, restart it)") in html
    alive.register_death()
    html = _page(htmx)
    assert "running:" not in html and "No worker takes jobs; start one with" in html


def test_the_page_says_when_automatic_synchronization_is_off(app, htmx):
    """With the interval at 0 the line just disappeared from Periodic jobs."""
    from jobs.schedule import reconcile_now

    set_setting("sync_interval_seconds", "0")
    db.session.commit()
    reconcile_now()
    html = _page(htmx)
    assert ('<li>Automatic synchronization: off (set in <a href="/settings/apple">Configuration › Apple</a>)</li>'
            in html)
    set_setting("sync_interval_seconds", "3600")
    db.session.commit()
    assert "Automatic synchronization: off" not in _page(htmx)
