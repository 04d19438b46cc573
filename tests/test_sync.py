"""Synchronization: token status rules, sync event handling, and whole syncs against the simulator
(manual, scheduled, incremental, expired cursor, crash and resume, one at a time, retries)."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from rq_scheduler import Scheduler
from sqlalchemy import func, select, update

from jobs.schedule import PREFIX
from portal.extensions import db
from portal.models import ActivityEntry, Device, ManagedServer, SyncRun
from portal.queue import get_queue, get_redis
from portal.token_status import compute_status
from tests.servers_helpers import Identity, TakenJob, post_add_server, server_named

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


# ----- token status -----------------------------------------------------------------------

@pytest.mark.parametrize("expiry,state,expected", [
    (NOW + timedelta(days=200), None, "Valid"),
    (NOW + timedelta(days=30), None, "About to Expire"),
    (NOW + timedelta(days=31), None, "Valid"),
    (NOW + timedelta(seconds=1), None, "About to Expire"),
    (NOW, None, "Expired"),
    (NOW - timedelta(days=1), "terms_not_signed", "Expired"),  # renewing fixes both: say Expired
    (NOW + timedelta(days=200), "terms_not_signed", "Terms Not Accepted"),
    (NOW + timedelta(days=5), "token_rejected", "Token Revoked"),
    (NOW + timedelta(days=200), "access_denied", "Access Denied"),
])
def test_token_status(expiry, state, expected):
    status = compute_status(expiry, state, warning_days=30, now=NOW)
    assert status.label == expected
    assert status.can_sync == (expected in ("Valid", "About to Expire"))
    assert status.remedy


# ----- sync event handling ------------------------------------------------------------------

def _device(serial, **extra):
    return {"serial_number": serial, "model": "iPhone 15", "os": "iOS", "device_family": "iPhone", **extra}


@pytest.fixture
def server(app):
    from portal import vault

    row = ManagedServer(name="Unit", token_ciphertext=vault.encrypt("{}"), key_ciphertext=vault.encrypt("k"),
                        consumer_key="CK_x", token_expiry=NOW + timedelta(days=365))
    db.session.add(row)
    db.session.commit()
    return row


def _devices(server_id):
    db.session.expire_all()
    return {d.serial_number: d for d in db.session.execute(select(Device).where(Device.server_id == server_id)).scalars()}


def test_sync_events_add_update_remove(app, server):
    from portal.devices.store import store_page

    counts = store_page(server.id, [_device("A1"), _device("B2")], 1, NOW)
    assert (counts.added, counts.updated, counts.removed) == (2, 0, 0)
    counts = store_page(server.id, [
        _device("A1", op_type="modified", op_date="2026-11-26T10:00:00Z", profile_status="assigned"),
        _device("C3", op_type="modified", op_date="2026-11-26T10:00:00Z"),  # never seen: counts as added
        {"serial_number": "B2", "op_type": "deleted", "op_date": "2026-11-26T10:00:00Z"},  # minimal record
        {"serial_number": "ZZ", "op_type": "deleted"},  # unknown: nothing to remove
    ], 1, NOW)
    db.session.commit()
    assert (counts.added, counts.updated, counts.removed) == (1, 1, 1)
    assert _kept_count(server.id) == 2  # A1 and C3
    devices = _devices(server.id)
    assert devices["A1"].profile_status == "assigned" and devices["A1"].model == "iPhone 15"
    assert devices["B2"].removed_at is not None and devices["C3"].removed_at is None
    assert "ZZ" not in devices


def test_deleted_is_read_whatever_its_case(app, server):
    """Liberal in what we accept (the reference does not fix the case; nanodep lower-cases it)."""
    from portal.devices.store import store_page

    store_page(server.id, [_device("A1"), _device("B2"), _device("C3")], 1, NOW)
    counts = store_page(server.id, [{"serial_number": "A1", "op_type": "DELETED"},
                                    {"serial_number": "B2", "op_type": " Deleted "}], 1, NOW)
    db.session.commit()
    assert counts.removed == 2 and _kept_count(server.id) == 1
    devices = _devices(server.id)
    assert devices["A1"].removed_at is not None and devices["B2"].removed_at is not None


def test_repeated_serial_keeps_the_latest_record(app, server):
    from portal.devices.store import store_page

    store_page(server.id, [
        _device("A1", op_type="added", op_date="2026-11-26T10:00:00Z", color="RED"),
        _device("A1", op_type="modified", op_date="2026-11-26T11:00:00Z", color="BLUE"),
        _device("A1", op_type="modified", op_date="2026-11-26T09:00:00Z", color="GREEN"),
    ], 1, NOW)
    db.session.commit()
    assert _devices(server.id)["A1"].color == "BLUE"


def test_a_removed_device_that_comes_back_is_added(app, server):
    from portal.devices.store import store_page

    store_page(server.id, [_device("A1")], 1, NOW)
    store_page(server.id, [{"serial_number": "A1", "op_type": "deleted"}], 1, NOW)
    db.session.commit()
    assert _kept_count(server.id) == 0
    counts = store_page(server.id, [_device("A1", op_type="added")], 1, NOW)
    db.session.commit()
    assert counts.added == 1 and _devices(server.id)["A1"].removed_at is None
    assert _kept_count(server.id) == 1


def test_every_sync_repairs_a_drifted_device_count(htmx, apple, paris, run_jobs):
    server = paris(devices=20)
    db.session.execute(update(ManagedServer).where(ManagedServer.id == server.id).values(device_count=7))
    db.session.commit()  # drifted, whatever the cause
    apple.state.add_devices("Paris MDM", 2)
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    assert _runs(server.id)[-1].kind == "incremental"
    assert _kept_count(server.id) == 22


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


def test_unknown_fields_are_kept(app, server):
    from portal.devices.store import store_page

    store_page(server.id, [_device("A1", imei=["123"], is_replacement_device=False, odd=None)], 1, NOW)
    db.session.commit()
    assert _devices(server.id)["A1"].extra["imei"] == ["123"]
    # A later, partial record (no extra fields) keeps what was stored, like every other field.
    store_page(server.id, [{"serial_number": "A1", "op_type": "modified", "profile_status": "pushed"}], 1, NOW)
    db.session.commit()
    device = _devices(server.id)["A1"]
    assert device.extra["imei"] == ["123"] and device.model == "iPhone 15" and device.profile_status == "pushed"


def test_over_long_apple_values_are_cut_to_their_column_not_a_failed_page(app, server):
    """PostgreSQL refuses text longer than its column: one odd record would fail the page, and every
    later sync with it. A serial number too long to be one is left out (cut, it could name another)."""
    from portal.devices.store import store_page

    long_serial = "S" * 65
    counts = store_page(server.id, [
        _device("A1", os="i" * 40, device_family="f" * 40, color="c" * 80, profile_status="p" * 20,
                profile_uuid="u" * 80, model="m" * 300, op_type="o" * 20),
        _device(long_serial),
    ], 1, NOW)
    db.session.commit()
    assert counts.added == 1
    device = _devices(server.id)["A1"]
    assert (len(device.os), len(device.device_family), len(device.color), len(device.profile_status),
            len(device.profile_uuid), len(device.model), len(device.last_op_type)) == (32, 32, 64, 16, 64, 255, 16)
    assert long_serial not in _devices(server.id)


def test_over_long_account_details_are_cut_to_their_column(app, server):
    from jobs.servers import _store_account

    _store_account(server, {"server_name": "n" * 300, "server_uuid": "u" * 100, "org_name": "o" * 300,
                            "org_phone": "1" * 100, "org_address": "a" * 600, "admin_id": "x" * 300})
    db.session.commit()
    db.session.expire_all()
    row = db.session.get(ManagedServer, server.id)
    assert (len(row.apple_server_name), len(row.apple_server_uuid), len(row.org_name), len(row.org_phone),
            len(row.org_address), len(row.admin_id)) == (255, 64, 255, 64, 500, 255)


# ----- whole synchronizations against the simulator ------------------------------------------

@pytest.fixture
def paris(htmx, apple, run_jobs):
    """A managed server 'Paris' added through the UI and synchronized once (devices=N via param)."""
    identity = Identity()

    def make(devices=25, sync=True):
        token = apple.state.issue_token("Paris MDM", identity.certificate_pem, devices=devices)
        assert post_add_server(htmx, "Paris", token, identity.key_pem).status_code == 204
        if sync:
            assert run_jobs() == []
        return server_named("Paris")

    return make


def _device_count(server_id, removed=False):
    """Devices counted in the table; the current ones also checked against the count the lists read."""
    db.session.expire_all()
    condition = Device.removed_at.is_not(None) if removed else Device.removed_at.is_(None)
    counted = db.session.execute(select(func.count()).select_from(Device)
                                 .where(Device.server_id == server_id, condition)).scalar_one()
    if not removed:
        assert _kept_count(server_id) == counted
    return counted


def _kept_count(server_id):
    """The server's current devices as its writers keep them (portal/devices/counts.py)."""
    db.session.expire_all()
    return db.session.execute(select(ManagedServer.device_count).where(ManagedServer.id == server_id)).scalar_one()


def _runs(server_id):
    db.session.expire_all()
    return list(db.session.execute(select(SyncRun).where(SyncRun.server_id == server_id).order_by(SyncRun.id)).scalars())


def test_incremental_sync_applies_added_moved_released_and_profile_changes(htmx, apple, paris, run_jobs):
    server = paris(devices=30)
    sim = apple.state
    serials = [d["serial"] for d in sim.devices("Paris MDM", limit=100)]
    sim.create_server("Other MDM", devices=3)
    sim.add_devices("Paris MDM", 4)
    sim.release_devices(serials[:2])
    sim.move_devices(serials[2:5], "Other MDM")
    sim.mark_pushed(serials[5:6])
    response = htmx.post(f"/servers/{server.id}/sync")
    assert "started" in response.headers["HX-Trigger"]
    assert run_jobs() == []
    run = _runs(server.id)[-1]
    assert run.status == "succeeded" and run.kind == "incremental"
    assert (run.added, run.removed) == (4, 5)
    assert _device_count(server.id) == 30 + 4 - 5
    assert _device_count(server.id, removed=True) == 5
    apple_serials = {d["serial"] for d in sim.devices("Paris MDM", limit=1000)}
    db.session.expire_all()
    ours = set(db.session.execute(select(Device.serial_number).where(Device.server_id == server.id,
                                                                       Device.removed_at.is_(None))).scalars())
    assert ours == apple_serials


def test_expired_cursor_falls_back_to_a_full_fetch(htmx, apple, paris, run_jobs):
    server = paris(devices=20)
    apple.state.advance_clock(8 * 86400)
    apple.state.add_devices("Paris MDM", 2)
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    run = _runs(server.id)[-1]
    assert run.status == "succeeded" and run.kind == "full"
    assert _device_count(server.id) == 22


def test_a_second_synchronize_shows_the_running_one(htmx, apple, paris, run_jobs):
    server = paris(devices=5)
    first = htmx.post(f"/servers/{server.id}/sync")
    second = htmx.post(f"/servers/{server.id}/sync")
    assert "started" in first.headers["HX-Trigger"]
    assert "already running" in second.headers["HX-Trigger"]
    assert len([r for r in _runs(server.id) if r.status == "queued"]) == 1
    row = htmx.get(f"/servers/{server.id}/row")
    assert row.status_code == 200 and b'hx-trigger="every 2s"' in row.data  # keeps polling
    run_jobs()
    done = htmx.get(f"/servers/{server.id}/row")
    assert done.status_code == 286 and b"Succeeded" in done.data  # polling stops


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


def test_two_synchronize_requests_at_once_start_one_run(htmx, apple, paris, run_jobs, monkeypatch):
    """B looks for a running sync before A has committed its run, then gets the start lock once A
    has let go of it: B looks again under the lock instead of starting a second run."""
    from portal.servers import services

    server = paris(devices=5)  # synchronized once: no run active
    real = services.active_run
    looks = {"n": 0}

    def a_started_one_right_after_the_first_look(srv):
        looks["n"] += 1
        if looks["n"] == 1:
            assert services.start_sync(srv, trigger="manual", actor="alice")[1]  # request A, start to end
            return None  # what B saw just before
        return real(srv)

    monkeypatch.setattr(services, "active_run", a_started_one_right_after_the_first_look)
    response = htmx.post(f"/servers/{server.id}/sync")  # request B
    assert "already running" in response.headers["HX-Trigger"]
    assert [r.status for r in _runs(server.id)] == ["succeeded", "queued"]
    assert run_jobs() == []


def test_progress_and_result_on_the_server_page(htmx, apple, paris, run_jobs):
    server = paris(devices=2500)
    panel = htmx.get(f"/servers/{server.id}/sync-status")
    assert panel.status_code == 286
    html = panel.get_data(as_text=True)
    assert "2500 added" in html or "2,500 added" in html
    run = _runs(server.id)[-1]
    assert run.pages >= 3 and run.devices_seen == 2500  # fetched page by page (limit 1000)
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "server.synchronized")).scalar_one()
    assert "2,500 added" in entry.summary  # written as everywhere else in the portal
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    panel = page[page.index('id="sync-panel"'):page.index("Synchronization history")]
    assert "Never synchronized" not in panel and "Succeeded" in panel and "2,500 added" in panel


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


def test_exhausted_cursor_on_sync_falls_back_to_a_full_fetch_instead_of_asking_again(
        htmx, apple, paris, run_jobs, monkeypatch):
    # Apple lists EXHAUSTED_CURSOR for /devices/sync too (reference §3.0, §3.3): asking again with the
    # same cursor would get the same answer forever.
    from portal.apple import errors
    from portal.apple.client import DEPClient

    server = paris(devices=20)
    stale = server_named("Paris").sync_cursor
    real = DEPClient.sync_devices
    refused: list[str] = []

    def exhausted_once(self, cursor, *args, **kwargs):
        if cursor == stale:
            refused.append(cursor)
            if len(refused) > 3:  # the bug: the same call again and again (stop it, do not hang)
                raise RuntimeError("sync asked Apple again with the cursor it called exhausted")
            raise errors.CursorExhausted(status=400, code="EXHAUSTED_CURSOR", body="EXHAUSTED_CURSOR")
        return real(self, cursor, *args, **kwargs)

    monkeypatch.setattr(DEPClient, "sync_devices", exhausted_once)
    apple.state.add_devices("Paris MDM", 2)
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    run = _runs(server.id)[-1]
    assert refused == [stale]
    assert run.status == "succeeded" and run.kind == "full"
    assert _device_count(server.id) == 22
    assert server_named("Paris").sync_cursor not in (None, stale)


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
    row = htmx.get("/servers").get_data(as_text=True)
    assert "Apple unavailable or busy: retry 1 scheduled" in row and "retry 1 of 3 in 60 s" in row  # title: when
    again = htmx.post(f"/servers/{server.id}/sync")
    assert "already running" in again.headers["HX-Trigger"]  # the retry is the running sync
    warning = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "server.sync_retry")).scalar_one()
    assert warning.level == "warning"


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
    assert "clock is off: retry 1 scheduled" in row and "Token Revoked" not in row


def test_throttled_sync_waits_at_least_as_long_as_apple_asked(htmx, apple, paris, run_jobs):
    server = paris(devices=5)
    apple.state.set_fault("Paris MDM", "server_error", {"count": 50, "status": 429, "retry_after": 900})
    htmx.post(f"/servers/{server.id}/sync")
    run_jobs()
    run = _runs(server.id)[-1]
    assert run.status == "queued" and "in 900 s" in run.error_message


def test_scheduled_sync_skips_expired_and_broken_servers(htmx, apple, paris, run_jobs):
    from jobs.sync import sync_all_servers

    server = paris(devices=5)
    expired = ManagedServer(name="Old", token_ciphertext=server.token_ciphertext, key_ciphertext=server.key_ciphertext,
                            consumer_key="CK_old", token_expiry=datetime.now(timezone.utc) - timedelta(days=1))
    db.session.add(expired)
    db.session.commit()
    result = sync_all_servers()
    assert result["started"] == [server.id] and expired.id in result["skipped"]
    run_jobs()
    assert _runs(server.id)[-1].trigger == "scheduled" and _runs(server.id)[-1].status == "succeeded"
    assert _runs(expired.id) == []


def test_synchronization_interval_setting_reschedules_immediately(htmx, admin_client):
    scheduler = Scheduler(queue_name="default", connection=get_redis())

    def periodic():
        return {job.id[len(PREFIX):]: job.meta["periodic"]["interval"] for job in scheduler.get_jobs()
                if job.id.startswith(PREFIX)}

    page = admin_client.get("/settings/apple").get_data(as_text=True)
    assert 'value="86400"' in page and "Server Synchronization Interval" in page
    assert admin_client.post("/settings/apple", data={"sync_interval": "3600", "warning_days": "30"}).status_code == 302
    always = {"token-status": 86400, "assignment-retries": 60}
    assert periodic() == {**always, "server-sync": 3600}
    admin_client.post("/settings/apple", data={"sync_interval": "0", "warning_days": "45"})
    assert periodic() == always
    bad = admin_client.post("/settings/apple", data={"sync_interval": "-5", "warning_days": "30"})
    assert bad.status_code == 422 and b"Enter 0 (disabled)" in bad.data
    assert periodic() == always  # nothing changed


def test_interval_zero_keeps_manual_synchronize(htmx, apple, paris, run_jobs, admin_client):
    server = paris(devices=5)
    admin_client.post("/settings/apple", data={"sync_interval": "0", "warning_days": "30"})
    response = htmx.post(f"/servers/{server.id}/sync")
    assert "started" in response.headers["HX-Trigger"]
    run_jobs()
    assert _runs(server.id)[-1].status == "succeeded"


def test_daily_status_refresh_records_changes(app, htmx, apple, paris, run_jobs):
    from jobs.servers import refresh_token_statuses

    server = paris(devices=1)
    db.session.execute(ManagedServer.__table__.update().values(token_expiry=datetime.now(timezone.utc) + timedelta(days=3)))
    db.session.commit()
    assert refresh_token_statuses() == {"changed": 1, "reminded": 1}  # 3 days left: the 7-day reminder too
    assert refresh_token_statuses() == {"changed": 0, "reminded": 0}
    assert server_named("Paris").token_status == "about_to_expire"
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "server.token_status")
                               .order_by(ActivityEntry.id.desc())).scalars().first()
    assert "About to Expire" in entry.summary


def test_managed_devices_lists_synced_devices_with_keyset_pages(htmx, apple, paris, run_jobs):
    server = paris(devices=250)
    first = htmx.get(f"/servers/{server.id}/devices").get_data(as_text=True)
    assert "250 devices" in first and "Next page" in first
    import re

    serials = re.findall(r"<td><a class=.device-link.[^>]*><code>([A-Z0-9]+)</code></a></td>", first)
    assert len(serials) == 100 and serials == sorted(serials)
    next_url = re.search(r'href="([^"]*after=[^"]*)"', first).group(1).replace("&amp;", "&")
    second = htmx.get(next_url).get_data(as_text=True)
    more = re.findall(r"<td><a class=.device-link.[^>]*><code>([A-Z0-9]+)</code></a></td>", second)
    assert len(more) == 100 and more[0] > serials[-1]
    prefix = serials[0][:3]
    found = htmx.get(f"/devices?q={prefix.lower()}", headers={"HX-Target": "device-table"})
    assert b"<html" not in found.data
    assert all(s.startswith(prefix) for s in re.findall(r"<td><a class=.device-link.[^>]*><code>([A-Z0-9]+)</code></a></td>", found.get_data(as_text=True)))


def test_the_bulk_upsert_stores_exactly_what_the_model_types_store(app, server):
    """store_page bypasses SQLAlchemy's per-row conversions: the raw stored values must be the ones
    the ORM writes for the same device, so every reader sees the same data either way."""
    from sqlalchemy import text

    from portal.devices.store import parse_time, store_page

    record = _device("FAST1", color="SPACE GRAY", description="IPHONE 15 128GB", asset_tag="A-1",
                     profile_status="pushed", profile_uuid="9145EDB932A42C48A9DD56AD69213C64",
                     profile_assign_time="2026-01-02T03:04:05Z", profile_push_time="2026-01-02T04:05:06Z",
                     device_assigned_date="2025-12-31T23:59:59Z", device_assigned_by="ops@example.com",
                     op_type="added", op_date="2026-11-26T10:00:00Z", imei=["35 123"], odd={"a": 1})
    store_page(server.id, [record], 3, NOW)
    extra = {"imei": ["35 123"], "odd": {"a": 1}}
    db.session.add(Device(
        server_id=server.id, serial_number="ORM1", model="iPhone 15", os="iOS", device_family="iPhone",
        color="SPACE GRAY", description="IPHONE 15 128GB", asset_tag="A-1", profile_status="pushed",
        profile_uuid="9145EDB932A42C48A9DD56AD69213C64", device_assigned_by="ops@example.com",
        profile_assign_time=parse_time("2026-01-02T03:04:05Z"), profile_push_time=parse_time("2026-01-02T04:05:06Z"),
        device_assigned_date=parse_time("2025-12-31T23:59:59Z"), last_op_type="added",
        last_op_date=parse_time("2026-11-26T10:00:00Z"), extra=extra, fetch_generation=3,
        first_seen_at=NOW, updated_at=NOW, removed_at=None))
    db.session.commit()

    columns = [c.name for c in Device.__table__.columns if c.name not in ("id", "serial_number")]
    if db.engine.dialect.name == "postgresql":  # compare what PostgreSQL holds, as text
        selected = ", ".join(f"{name}::text" for name in columns)
    else:
        selected = ", ".join(columns)
    raw = {serial: rest for serial, *rest in db.session.execute(
        text(f"SELECT serial_number, {selected} FROM device WHERE server_id = :s"), {"s": server.id})}
    assert dict(zip(columns, raw["FAST1"])) == dict(zip(columns, raw["ORM1"]))
    fast = _devices(server.id)["FAST1"]
    assert fast.extra == extra and fast.profile_push_time == parse_time("2026-01-02T04:05:06Z")
    assert fast.first_seen_at == NOW and fast.updated_at == NOW


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


def test_full_synchronization_marks_the_devices_apple_stopped_listing_as_removed(htmx, apple, paris, run_jobs):
    server = paris(devices=5)
    gone = sorted(_devices(server.id))[0]
    apple.state.release_devices([gone], silent=True)  # released in ABM: no 'deleted' change (fleet#49268)
    htmx.post(f"/servers/{server.id}/sync")
    run_jobs()
    assert _runs(server.id)[-1].kind == "incremental" and _devices(server.id)[gone].removed_at is None

    dialog = " ".join(htmx.get(f"/servers/{server.id}/full-sync").get_data(as_text=True).split())
    assert "reads every device Apple assigns" in dialog and "5 devices now: about 1 call to Apple" in dialog
    response = htmx.post(f"/servers/{server.id}/full-sync")
    assert response.status_code == 204 and response.headers["HX-Redirect"] == f"/servers/{server.id}"
    run_jobs()
    run = _runs(server.id)[-1]
    assert (run.kind, run.status, run.removed, run.full_requested) == ("full", "succeeded", 1, True)
    assert _devices(server.id)[gone].removed_at is not None and _kept_count(server.id) == 4
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "server.sync_requested")
                               .order_by(ActivityEntry.id.desc()).limit(1)).scalar_one()
    assert entry.summary.startswith("Full synchronization of Paris requested")

    htmx.post(f"/servers/{server.id}/sync")  # and afterwards, changes only again
    run_jobs()
    assert _runs(server.id)[-1].kind == "incremental"


def test_full_synchronization_is_refused_while_the_token_cannot_sync(htmx, apple, paris, run_jobs):
    server = paris(devices=2)
    server.token_expiry = datetime.now(timezone.utc) - timedelta(days=1)
    db.session.commit()
    assert "disabled" in htmx.get(f"/servers/{server.id}/full-sync").get_data(as_text=True)
    runs = len(_runs(server.id))
    assert htmx.post(f"/servers/{server.id}/full-sync").status_code == 204
    assert len(_runs(server.id)) == runs
    assert "cannot be synchronized" in htmx.get(f"/servers/{server.id}").get_data(as_text=True)


def test_an_expired_server_page_offers_renew_a_server_first_and_no_full_synchronization_pop_up(htmx, apple, paris):
    import re

    server = paris(devices=2)
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    toolbar = page[page.index('aria-label="Server actions"'):page.index("</header>")]
    assert re.search(r'<button type="submit" class="primary"\s*>Synchronize', toolbar)
    assert f'href="/servers/{server.id}/full-sync"' in page

    server.token_expiry = datetime.now(timezone.utc) - timedelta(days=1)
    db.session.commit()
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    toolbar = page[page.index('aria-label="Server actions"'):page.index("</header>")]
    assert re.search(r'<a class="button primary" href="/servers/\d+/renew"', toolbar)
    assert toolbar.index("Renew a server") < toolbar.index("Synchronize")
    assert re.search(r'<button type="submit" disabled aria-describedby="sync-off" title="[^"]+">Synchronize', toolbar)
    assert 'class="primary"' not in toolbar
    panel = page[page.index('id="sync-panel"'):page.index("Synchronization history")]
    assert "/full-sync" not in panel  # no pop-up whose button is disabled
    assert re.search(r'<button type="button" class="small" disabled\s+title="Expired: [^"]+">Full synchronization…',
                     panel)
    assert "Not possible while the token status is Expired." in panel


def test_a_scheduled_synchronization_is_full_every_full_sync_days(app, htmx, apple, paris, run_jobs):
    from jobs.sync import sync_all_servers

    server = paris(devices=5)
    gone = sorted(_devices(server.id))[0]
    apple.state.release_devices([gone], silent=True)
    assert sync_all_servers()["full"] == []  # its first full synchronization is fresh
    run_jobs()
    assert _runs(server.id)[-1].kind == "incremental"

    for run in _runs(server.id):  # a week later
        run.finished_at = run.finished_at - timedelta(days=7)
    db.session.commit()
    app.config["FULL_SYNC_DAYS"] = 0
    assert sync_all_servers()["full"] == []  # 0: only on request
    run_jobs()
    app.config["FULL_SYNC_DAYS"] = 7
    assert sync_all_servers()["full"] == [server.id]
    run_jobs()
    run = _runs(server.id)[-1]
    assert (run.trigger, run.kind, run.removed) == ("scheduled", "full", 1)
    assert sync_all_servers()["full"] == []  # just done


def _schedule_text(htmx, server_id) -> str:
    import re

    page = htmx.get(f"/servers/{server_id}").get_data(as_text=True)
    block = page[page.index('id="sync-schedule"'):]
    return " ".join(re.sub(r"<[^>]+>", "", block[:block.index("</dl>")]).split())


def test_the_server_page_says_when_the_next_scheduled_and_full_synchronizations_come(app, htmx, apple, paris):
    from jobs.schedule import reconcile_now
    from portal.models.setting import set_setting
    from portal.templating import format_datetime

    server = paris(devices=2)  # its first synchronization is a full one: the next full one is 7 days later
    text = _schedule_text(htmx, server.id)
    assert "Every 86,400 seconds (1 day) (Server Synchronization Interval)." in text
    assert "When the scheduler starts: it has not run yet." in text

    reconcile_now()  # what the scheduler does when it starts; it then enqueues at the stored time
    soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=3)
    get_redis().zadd(Scheduler.scheduled_jobs_key, {PREFIX + "server-sync": soon.timestamp()})
    text = _schedule_text(htmx, server.id)
    assert f"Next scheduled synchronization About {format_datetime(soon)} (in 3 hours)." in text
    assert "No scheduler is running now" in text  # none in the tests
    full = soon + timedelta(days=7)  # the first daily one once the last full one is 7 days old
    assert f"Next full synchronization About {format_datetime(full)} (in 7 days): the first scheduled" in text

    app.config["FULL_SYNC_DAYS"] = 0
    assert "Only with Full synchronization…: scheduled synchronizations read Apple's changes only" in \
        _schedule_text(htmx, server.id)

    server.token_expiry = datetime.now(timezone.utc) - timedelta(days=1)
    db.session.commit()
    text = _schedule_text(htmx, server.id)
    assert "but not Paris while its token status is Expired." in text and "Next scheduled" not in text

    set_setting("sync_interval_seconds", "0")
    db.session.commit()
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    assert "Off: the Server Synchronization Interval is 0." in _schedule_text(htmx, server.id)
    assert '<a href="/settings/apple">Server Synchronization Interval</a>' in page


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
    assert "already running" in htmx.post(f"/servers/{server.id}/sync").headers["HX-Trigger"]  # waiting: alive

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
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    assert _runs(server.id)[-1].status == "succeeded"
    assert len(panels) == 2
    assert "Apple did not answer the last request: trying again in 1 s (retry 1)." in panels[0]
    assert "(retry 2)." in panels[1] and 'class="alert alert-warning sync-retry"' in panels[1]
    assert "sync-retry" not in htmx.get(f"/servers/{server.id}/sync-status").get_data(as_text=True)
