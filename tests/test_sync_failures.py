"""Synchronizations that fail or are interrupted: killed workers, crashes resumed without loss or
duplicates, a server deleted mid-run, pages committed while Apple is slow, Apple's errors and faults
(terms, unavailable, throttled, a clock far off), retries, and a job queue (Redis) that hangs."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from rq_scheduler import Scheduler
from sqlalchemy import func, select, update

from portal.extensions import db
from portal.models import ActivityEntry, Device, ManagedServer, SyncRun
from portal.queue import fetch_job, get_queue, get_redis
from tests.servers_helpers import TakenJob, server_named
from tests.sync_helpers import _device_count, _devices, _kept_count, _runs
from tests.sync_helpers import paris  # noqa: F401 - the fixture


# ----- killed workers, crashes and interruptions --------------------------------------------------

def test_a_sync_left_running_by_a_killed_worker_is_resumed_by_the_next_synchronize(htmx, apple, paris, run_jobs):
    """RQ marks a killed worker's job failed only at its next clean-up; the worker's own key in
    Redis expires much sooner, and that is what tells a running sync from a dead one."""
    server = paris(devices=5, sync=False)
    htmx.post(f"/servers/{server.id}/sync")
    stuck = _runs(server.id)[-1]
    taken = TakenJob(stuck.job_id)  # taken by a worker...
    taken.alive()
    assert "already running" in htmx.post(f"/servers/{server.id}/sync").headers["HX-Trigger"]

    assert htmx.get(f"/servers/{server.id}/row").status_code == 200  # shown running, polled

    taken.killed()  # ...that was killed outright: its key has expired
    row = htmx.get(f"/servers/{server.id}/row")
    assert row.status_code == 286 and b"worker stopped" in row.data  # said so; polling stops
    again = htmx.post(f"/servers/{server.id}/sync")
    assert "started" in again.headers["HX-Trigger"]
    db.session.expire_all()
    old, new = _runs(server.id)[-2:]
    assert htmx.get(f"/servers/{server.id}/row").status_code == 200  # the new run: a job, not dead
    assert old.id == stuck.id and old.status == "failed" and old.error_code == "interrupted"
    assert run_jobs() == []
    db.session.expire_all()
    assert db.session.get(SyncRun, new.id).status == "succeeded"
    assert _device_count(server.id) == 5


def test_a_retried_sync_left_running_by_a_killed_worker_does_not_block_synchronization_forever(
        htmx, apple, paris, run_jobs):
    """A run waiting for its retry is a job rq-scheduler holds ('scheduled'): alive. Once a worker has
    taken that retry and was killed, the run is as dead as a first attempt's would be."""
    server = paris(devices=5)
    apple.state.set_fault("Paris MDM", "server_error", 50)  # more than the client's own retries
    htmx.post(f"/servers/{server.id}/sync")
    run_jobs()
    retried = _runs(server.id)[-1]
    assert retried.status == "queued" and retried.retries == 1
    apple.state.set_fault("Paris MDM", "server_error", None)
    waiting_row = htmx.get(f"/servers/{server.id}/row")
    assert waiting_row.status_code == 200 and _runs(server.id)[-1].status == "queued"  # waiting: alive, not closed

    scheduler = Scheduler(queue_name="default", connection=get_redis())
    job = next(j for j in scheduler.get_jobs() if j.id == retried.job_id)
    scheduler.cancel(job)  # its time came: rq-scheduler handed it to a worker...
    get_queue().enqueue_job(job)
    TakenJob(retried.job_id).killed()  # ...which started it and was killed outright
    retried.status = "running"
    db.session.commit()

    row = htmx.get(f"/servers/{server.id}/row")
    assert row.status_code == 286 and b"worker stopped" in row.data  # said so; polling stops
    again = htmx.post(f"/servers/{server.id}/sync")
    assert "started" in again.headers["HX-Trigger"]
    assert run_jobs() == []
    assert _runs(server.id)[-1].status == "succeeded"


def test_crash_in_the_middle_of_a_sync_resumes_without_loss_or_duplicates(htmx, apple, paris, run_jobs, monkeypatch):
    from portal.devices import store
    from portal.servers import sync as engine

    monkeypatch.setattr(engine, "COMMIT_EVERY_S", 0)  # a commit after every page
    server = paris(devices=2500, sync=False)
    real = store.write_page
    calls = {"n": 0}

    def crash_on_second_page(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "write_page", crash_on_second_page)
    failed = run_jobs()
    assert len(failed) == 1  # the job failed loudly, RQ kept it
    first = _runs(server.id)[-1]
    assert first.status == "failed" and first.pages == 1
    assert _device_count(server.id) == 1000  # the committed first page is kept
    monkeypatch.setattr(engine, "write_page", real)

    htmx.post(f"/servers/{server.id}/sync")
    assert len(run_jobs()) == 1  # only the earlier crashed job is in the failed registry
    second = _runs(server.id)[-1]
    assert second.status == "succeeded"
    assert second.added == 1500  # resumed after the committed page: nothing fetched twice as new
    assert _device_count(server.id) == 2500
    db.session.expire_all()
    assert db.session.execute(select(func.count(func.distinct(Device.serial_number)))
                              .where(Device.server_id == server.id)).scalar_one() == 2500


def test_a_crash_loses_only_the_pages_of_the_open_transaction(htmx, apple, paris, run_jobs, monkeypatch):
    """Pages grouped in one transaction are rolled back together with their cursor: the next run
    fetches them again, still without duplicates."""
    from portal.devices import store
    from portal.servers import sync as engine

    monkeypatch.setattr(engine, "COMMIT_EVERY_S", 3600)  # every page in one transaction
    server = paris(devices=2500, sync=False)
    real = store.write_page
    calls = {"n": 0}

    def crash_on_third_page(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "write_page", crash_on_third_page)
    assert len(run_jobs()) == 1
    assert _device_count(server.id) == 0 and server_named("Paris").sync_cursor is None
    monkeypatch.setattr(engine, "write_page", real)

    htmx.post(f"/servers/{server.id}/sync")
    run_jobs()
    second = _runs(server.id)[-1]
    assert second.status == "succeeded" and second.added == 2500
    assert _device_count(server.id) == 2500


def test_a_fetch_stopped_before_its_removals_removes_them_on_the_next_run(htmx, apple, paris, run_jobs, monkeypatch):
    from portal.servers import sync as engine

    server = paris(devices=20)
    sim = apple.state
    sim.advance_clock(8 * 86400)  # the cursor expires: the next sync fetches everything again...
    released = [d["serial"] for d in sim.devices("Paris MDM", limit=2)]
    sim.release_devices(released)  # ...and no longer finds these two
    real = engine.mark_missing_removed
    monkeypatch.setattr(engine, "mark_missing_removed",
                        lambda *args: (_ for _ in ()).throw(RuntimeError("worker killed")))
    htmx.post(f"/servers/{server.id}/sync")
    assert len(run_jobs()) == 1  # stopped after committing the fetch's last page
    assert _device_count(server.id) == 20
    monkeypatch.setattr(engine, "mark_missing_removed", real)

    htmx.post(f"/servers/{server.id}/sync")  # resumes the fetch: Apple says it is exhausted
    assert len(run_jobs()) == 1  # (only the earlier failed job)
    assert _runs(server.id)[-1].status == "succeeded"
    assert _device_count(server.id) == 18 and _kept_count(server.id) == 18
    db.session.expire_all()
    assert all(_devices(server.id)[serial].removed_at is not None for serial in released)


def test_deleting_a_server_while_it_synchronizes_stops_the_job_quietly(app, htmx, apple, paris, run_jobs, monkeypatch):
    from portal.apple.client import DEPClient
    from portal.servers import sync as engine

    monkeypatch.setattr(engine, "COMMIT_EVERY_S", 0)  # the first page is committed before the delete
    server_id = paris(devices=2500, sync=False).id
    real = DEPClient.fetch_devices
    calls = {"n": 0}

    def deleted_before_the_second_page(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            with app.app_context():  # (this runs in the sync's page-fetching thread)
                deleted = htmx.post(f"/servers/{server_id}/delete", data={"confirm_name": "Paris"})
                assert deleted.status_code in (204, 302)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DEPClient, "fetch_devices", deleted_before_the_second_page)
    assert run_jobs() == []  # stopped, not failed: no traceback in RQ's failed registry
    db.session.expire_all()
    assert db.session.get(ManagedServer, server_id) is None
    assert db.session.execute(select(func.count()).select_from(Device)).scalar_one() == 0
    assert db.session.execute(select(func.count()).select_from(SyncRun)).scalar_one() == 0


def test_the_pages_stored_are_committed_while_apple_is_slow_to_send_the_next(htmx, apple, paris, run_jobs,
                                                                            monkeypatch):
    """Not kept in an open transaction (on SQLite the only write lock) while the next page is awaited."""
    from sqlalchemy import event

    import portal.servers.page_feed as page_feed
    import portal.servers.sync as sync_module

    server = paris(devices=5)
    monkeypatch.setattr(sync_module, "PAGE_LIMIT", 1)  # five pages of one device
    monkeypatch.setattr(page_feed, "WAIT_NOTICE_S", 0.05)
    apple.state.set_fault("Paris MDM", "latency", 0.3)  # each page: 0.3 s, well within COMMIT_EVERY_S (1 s)
    htmx.post(f"/servers/{server.id}/full-sync")
    commits = []
    listener = lambda conn: commits.append(time.monotonic())  # noqa: E731
    event.listen(db.engine, "commit", listener)
    try:
        assert run_jobs() == []
    finally:
        event.remove(db.engine, "commit", listener)
    run = _runs(server.id)[-1]
    assert (run.status, run.kind) == ("succeeded", "full") and run.pages >= 5
    # Each wait for a page past the first let the pages before it be committed first: 12 commits in
    # all, against 7 with the time rule alone (a commit a second, over the run's 2 s).
    assert len(commits) >= 10


# ----- Apple's errors and retries -----------------------------------------------------------------

def test_pages_stored_before_an_apple_error_are_kept(htmx, apple, paris, run_jobs, monkeypatch):
    from portal.apple import errors
    from portal.apple.client import DEPClient
    from portal.servers import sync as engine

    monkeypatch.setattr(engine, "COMMIT_EVERY_S", 3600)  # the first pages wait for a later commit
    server = paris(devices=2500, sync=False)
    real = DEPClient.fetch_devices
    calls = {"n": 0}

    def third_page_fails(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise errors.TransientError(status=503)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DEPClient, "fetch_devices", third_page_fails)
    run_jobs()
    first = _runs(server.id)[-1]
    assert first.status == "queued" and first.retries == 1  # retried later...
    assert _device_count(server.id) == 2000  # ...from after the two pages already stored
    assert server_named("Paris").sync_cursor


def test_apple_errors_during_sync_set_the_server_state(htmx, apple, paris, run_jobs):
    server = paris(devices=5)
    apple.state.set_fault("Paris MDM", "terms_not_signed", True)
    htmx.post(f"/servers/{server.id}/sync")
    run_jobs()
    run = _runs(server.id)[-1]
    assert run.status == "failed" and "terms and conditions" in run.error_message
    assert server_named("Paris").apple_state == "terms_not_signed"
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    assert "Terms Not Accepted" in page


def test_transient_errors_are_retried_and_recorded(htmx, apple, paris, run_jobs):
    server = paris(devices=5)
    apple.state.set_fault("Paris MDM", "server_error", 50)  # more than the client's own retries
    htmx.post(f"/servers/{server.id}/sync")
    run_jobs()
    run = _runs(server.id)[-1]
    assert run.status == "queued" and run.retries == 1 and "retry 1 of 3" in run.error_message
    scheduled = [job.func_name for job in Scheduler(queue_name="default", connection=get_redis()).get_jobs()]
    assert "jobs.sync.sync_server" in scheduled
    assert run.retry_at is not None and 55 <= (run.retry_at - datetime.now(timezone.utc)).total_seconds() <= 60
    row = " ".join(htmx.get("/servers").get_data(as_text=True).split())
    assert '<span class="badge badge-warning">Waiting to retry</span>' in row
    assert "Apple unavailable or busy: retry 1 of 3 <span" in row and ">in 1 minute</span>" in row  # when, in words
    assert "retry 1 of 3 in 60 s" in row  # the whole message in the title
    assert 'title="Run the waiting synchronization now">Retry now</button>' in row  # the row's Synchronize, enabled
    panel = htmx.get(f"/servers/{server.id}/sync-status").get_data(as_text=True)
    assert "Retry now" in panel and "otherwise it is tried again in 1 minute by itself" in " ".join(panel.split())
    warning = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "server.sync_retry")).scalar_one()
    assert warning.level == "warning"


def test_synchronize_while_a_retry_waits_runs_it_now_once(htmx, apple, paris, run_jobs):
    """Apple back before the retry time: Synchronize (or the panel's Retry now) answered "already running" and
    the admin waited out 60 + 300 + 1,800 s. It now runs the waiting synchronization at once, and only once."""
    server = paris(devices=5)
    apple.state.set_fault("Paris MDM", "server_error", 50)
    htmx.post(f"/servers/{server.id}/sync")
    run_jobs()
    waiting = _runs(server.id)[-1]
    assert waiting.waiting_to_retry
    apple.state.set_fault("Paris MDM", "server_error", None)  # Apple is back

    response = htmx.post(f"/servers/{server.id}/sync")
    assert "retried now, before its retry time" in response.headers["HX-Trigger"]
    scheduled = [job.func_name for job in Scheduler(queue_name="default", connection=get_redis()).get_jobs()]
    assert "jobs.sync.sync_server" not in scheduled  # taken from rq-scheduler: it will not run a second time
    assert run_jobs() == []
    runs = _runs(server.id)  # the first synchronization (Add Server's), then the one retried now: no other
    assert [(r.trigger, r.status) for r in runs] == [("added", "succeeded"), ("manual", "succeeded")]
    assert runs[-1].id == waiting.id and runs[-1].retry_at is None
    assert _device_count(server.id) == 5
    again = htmx.post(f"/servers/{server.id}/sync")  # nothing waits now: a new synchronization, as usual
    assert "started" in again.headers["HX-Trigger"] and len(_runs(server.id)) == 3
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.summary.like("%retried now%"))).scalar_one()
    assert entry.action == "server.sync_requested" and entry.actor != "system"


def test_the_panel_says_apple_is_retried_while_the_client_waits(htmx, apple, paris, run_jobs, monkeypatch, app):
    """Apple answers 503 twice: while the client waits to try again, the running sync's panel says so
    (it read as stuck: "Running, 0 pages"), and the notice is gone once the run ends."""
    from portal.servers import sync_notices

    server = paris(devices=5)
    apple.state.set_fault("Paris MDM", "server_error", 2)
    panels = []

    def look_at_the_panel(seconds):
        panels.append(htmx.get(f"/servers/{server.id}/sync-status").get_data(as_text=True))

    monkeypatch.setattr(sync_notices, "_sleep", look_at_the_panel)
    # The notice counts down to the try: with the clock still, the panel says the whole wait, however long it
    # takes to answer (over a second on a busy machine: "asking again now").
    monkeypatch.setattr(sync_notices, "_now", lambda: 1_000_000.0)
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    assert _runs(server.id)[-1].status == "succeeded"
    assert len(panels) == 2
    assert "Apple answered the last request with an error (HTTP 500): asking again in 1 s (try 2)." in panels[0]
    assert "(try 3)." in panels[1] and 'class="alert alert-warning sync-retry"' in panels[1]
    assert "sync-retry" not in htmx.get(f"/servers/{server.id}/sync-status").get_data(as_text=True)


def test_a_clock_far_off_apples_is_retried_and_named_not_taken_for_a_revoked_token(htmx, apple, paris, run_jobs,
                                                                                   monkeypatch):
    import time

    import oauthlib.oauth1.rfc5849 as rfc5849

    import portal.apple.client as client_module

    server = paris(devices=5)
    apple.state.advance_clock(1801)  # the session the server's first jobs opened has expired: a new sign-in
    monkeypatch.setattr(rfc5849, "generate_timestamp", lambda: str(int(time.time() - 1800)))
    monkeypatch.setattr(client_module, "wall_clock", lambda: time.time() - 1800)
    htmx.post(f"/servers/{server.id}/sync")
    run_jobs()
    run = _runs(server.id)[-1]
    assert run.status == "queued" and run.retries == 1
    assert "clock is about 30 minutes behind Apple's" in run.error_message
    assert server_named("Paris").apple_state is None  # the token is not called revoked
    row = htmx.get("/servers").get_data(as_text=True)
    assert "clock is off: retry 1 of 3" in row and "Token Revoked" not in row


def test_throttled_sync_waits_at_least_as_long_as_apple_asked(htmx, apple, paris, run_jobs):
    server = paris(devices=5)
    apple.state.set_fault("Paris MDM", "server_error", {"count": 50, "status": 429, "retry_after": 900})
    htmx.post(f"/servers/{server.id}/sync")
    run_jobs()
    run = _runs(server.id)[-1]
    assert run.status == "queued" and "in 900 s" in run.error_message


def test_sync_now_while_redis_hangs_says_so_instead_of_an_error_page(app, htmx, apple, paris, monkeypatch):
    import socket

    import portal.queue

    server = paris(devices=2)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepted by the kernel, never answered
    try:
        monkeypatch.setattr(portal.queue, "READ_TIMEOUT_S", 0.3)
        app.config["REDIS_URL"] = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        app.extensions["redis"] = None
        response = htmx.post(f"/servers/{server.id}/sync")
    finally:
        listener.close()
    html = response.get_data(as_text=True)
    assert response.status_code == 503
    assert "job queue (Redis) did not answer" in html and "Traceback" not in html


def test_a_poll_while_retry_now_enqueues_its_job_does_not_close_the_run(htmx, apple, paris, run_jobs, monkeypatch):
    """The panel and the row poll every 2 s: one that came after Retry now took the job from rq-scheduler and
    before the new one was in the queue found no job for a run created long ago, and closed it as interrupted."""
    from portal.servers import services

    server = paris(devices=5)
    apple.state.set_fault("Paris MDM", "server_error", 50)
    htmx.post(f"/servers/{server.id}/sync")
    run_jobs()
    waiting = _runs(server.id)[-1]
    old_job = waiting.job_id
    db.session.execute(update(SyncRun).where(SyncRun.id == waiting.id).values(
        created_at=datetime.now(timezone.utc) - timedelta(hours=1)))  # long before: no grace of a new run
    db.session.commit()
    apple.state.set_fault("Paris MDM", "server_error", None)
    polled = []
    enqueue = services.enqueue

    def poll_first(*args, **kwargs):
        polled.append(htmx.get(f"/servers/{server.id}/sync-status").get_data(as_text=True))
        assert fetch_job(old_job) is not None  # not deleted before the new job is in the queue
        return enqueue(*args, **kwargs)

    monkeypatch.setattr(services, "enqueue", poll_first)
    response = htmx.post(f"/servers/{server.id}/sync")
    assert "retried now, before its retry time" in response.headers["HX-Trigger"]
    assert polled and "interrupted" not in polled[0] and "Failed" not in polled[0]
    assert fetch_job(old_job) is None
    assert run_jobs() == []
    assert _runs(server.id)[-1].id == waiting.id and _runs(server.id)[-1].status == "succeeded"


def test_a_retry_past_its_time_says_it_waits_for_a_worker(htmx, apple, paris, run_jobs):
    """A busy worker (or no rq-scheduler): the run still said "Waiting to retry · retry 1 of 3 5 minutes ago" and
    "tried again 5 minutes ago by itself"."""
    server = paris(devices=5)
    apple.state.set_fault("Paris MDM", "server_error", 50)
    htmx.post(f"/servers/{server.id}/sync")
    run_jobs()
    waiting = _runs(server.id)[-1]
    db.session.execute(update(SyncRun).where(SyncRun.id == waiting.id).values(
        retry_at=datetime.now(timezone.utc) - timedelta(minutes=5)))
    db.session.commit()
    row = " ".join(htmx.get("/servers").get_data(as_text=True).split())
    assert "Waiting to retry" not in row
    assert '<span class="badge badge-info">Queued</span>' in row and "retry 1 of 3 starting" in row
    assert ">Retry now</button>" in row  # rq-scheduler may not run: the way to start it
    panel = " ".join(htmx.get(f"/servers/{server.id}/sync-status").get_data(as_text=True).split())
    assert "it was due 5 minutes ago, and starts as soon as a background worker is free" in panel
    assert "tried again" not in panel
    apple.state.set_fault("Paris MDM", "server_error", None)
    assert "retried now, before its retry time" in htmx.post(f"/servers/{server.id}/sync").headers["HX-Trigger"]
    assert run_jobs() == [] and _runs(server.id)[-1].status == "succeeded"


def test_the_retry_notice_counts_down_to_the_next_try(app, monkeypatch):
    """It said "asking again in 15 s" for all of the 15 s the panel polled it."""
    from portal.servers import sync_notices

    clock = [1_000_000.0]
    monkeypatch.setattr(sync_notices, "_now", lambda: clock[0])
    seen = []

    def wait(seconds):
        for _ in range(3):
            seen.append(sync_notices.retry_notice(41))
            clock[0] += seconds / 2
    monkeypatch.setattr(sync_notices, "_sleep", wait)
    sync_notices.sleep_with_notice(41)(15)
    assert seen == ["Apple did not answer the last request: asking again in 15 s (try 2).",
                    "Apple did not answer the last request: asking again in 8 s (try 2).",
                    "Apple did not answer the last request: asking again now (try 2)."]
    get_redis().set(sync_notices.KEY.format(41), "Apple did not answer: asking again in 3 s (try 2).")
    assert sync_notices.retry_notice(41) == "Apple did not answer: asking again in 3 s (try 2)."  # older workers
    sync_notices.clear_notice(41)
    assert sync_notices.retry_notice(41) is None
