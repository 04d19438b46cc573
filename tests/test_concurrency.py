"""Device writers of one server at the same time: a sync writing pages, an Add Devices job storing
answers, Delete server, two Add Devices requests. On PostgreSQL their row locks used to deadlock
(one of them killed) and two requests could miss each other; they now take turns (device_locks.py).
On SQLite the database's single writer already makes them wait: the same tests hold there too.

Each test runs the first writer in a thread, holds its transaction open at the harmful moment, and
starts the second one meanwhile."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AssignmentBatch, AssignmentTask, Device, EnrollmentProfile, ManagedServer
from portal.queue import get_redis
from tests.assignments_helpers import (clock, configured_profile, devices_of, latest_batch, paris,  # noqa: F401
                                       pick, tasks_of)
from tests.devices_helpers import _seed, _server

HOLD_S = 0.5  # how long the first writer keeps its transaction open once the second one has started


def _record(serial: str) -> dict:
    return {"serial_number": serial, "model": "iPhone 15", "os": "iOS", "device_family": "iPhone",
            "op_type": "modified", "profile_status": "empty"}


class _SyncWriting:
    """A sync transaction that writes one page, waits, then a second page, and commits.

    The pages are the server's last devices then its first ones: the opposite of the table's order,
    in which a DELETE or an UPDATE of many devices locks them."""

    def __init__(self, app, server_id: int, serials: list[str]):
        self.app, self.server_id, self.serials = app, server_id, serials
        self.first_page_written, self.go_on = threading.Event(), threading.Event()
        self.outcome = None
        self.thread = threading.Thread(target=self._run)

    def __enter__(self):
        self.thread.start()
        assert self.first_page_written.wait(10)
        return self

    def __exit__(self, *exc):
        self.go_on.set()
        self.thread.join(30)

    def _run(self):
        from portal.devices.store import store_page

        with self.app.app_context():
            try:
                now = datetime.now(timezone.utc)
                store_page(self.server_id, [_record(s) for s in self.serials[-50:]], 1, now)
                self.first_page_written.set()
                self.go_on.wait(10)
                store_page(self.server_id, [_record(s) for s in self.serials[:50]], 1, now)
                db.session.commit()
                self.outcome = "committed"
            except Exception as exc:  # noqa: BLE001 - reported by the test
                db.session.rollback()
                self.outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            finally:
                db.session.remove()


def _in_thread(work) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run():
        try:
            result["value"] = work()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            result["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_delete_server_while_a_sync_writes_its_devices(app, admin_client):
    server = _server("Paris")
    _seed(server, *[{"serial_number": f"A{i:04d}"} for i in range(200)])
    server_id = server.id
    token = admin_client.fetch_csrf_token(f"/servers/{server_id}/delete")
    with _SyncWriting(app, server_id, [f"A{i:04d}" for i in range(200)]) as sync:
        thread, deleted = _in_thread(lambda: admin_client.post(
            f"/servers/{server_id}/delete", data={"confirm_name": "Paris", "csrf_token": token}).status_code)
        time.sleep(HOLD_S)  # the delete is waiting for the sync now
    thread.join(30)
    assert sync.outcome == "committed"
    assert deleted == {"value": 302}  # after the sync's commit, not a deadlock (a 500)
    db.session.expire_all()
    assert db.session.get(ManagedServer, server_id) is None
    assert db.session.execute(select(func.count()).select_from(Device)).scalar_one() == 0


def test_an_add_devices_job_stores_its_answers_while_a_sync_writes_the_same_devices(app, htmx, apple, paris,
                                                                                     monkeypatch):
    from portal.assignments import runner, services

    server, profile = paris(devices=200)
    server_id, profile_id = server.id, profile.id
    serials = [d.serial_number for d in sorted(devices_of(server_id).values(), key=lambda d: d.id)]
    monkeypatch.setattr(services, "enqueue", lambda *args, **kwargs: None)  # the job is run by hand below
    batch_id = services.request_matching(server, profile, [], actor="alice").id

    def run_the_job():
        with app.app_context():
            try:
                return runner.run_batch(batch_id)["status"]
            finally:
                db.session.remove()

    with _SyncWriting(app, server_id, serials) as sync:
        thread, job = _in_thread(run_the_job)
        time.sleep(HOLD_S)  # the job has Apple's answers and is waiting to store them
    thread.join(30)
    assert sync.outcome == "committed"
    assert job == {"value": "finished"}
    db.session.expire_all()
    assert db.session.get(AssignmentBatch, batch_id).succeeded == 200
    assert db.session.execute(select(func.count()).select_from(Device).where(
        Device.profile_id == profile_id)).scalar_one() == 200


def test_two_add_devices_requests_at_once_the_later_replaces_the_earlier(app, htmx, apple, paris, monkeypatch):
    """Alice adds devices to Sales while Bob adds the same ones to Kiosk: one action per device."""
    from portal.assignments import services

    server, sales = paris(devices=20)
    kiosk = configured_profile(server, "Kiosk")
    server_id, sales_id, kiosk_id = server.id, sales.id, kiosk.id
    ids = sorted(d.id for d in devices_of(server_id).values())
    monkeypatch.setattr(services, "enqueue", lambda *args, **kwargs: None)
    alice_inserted, bob_started = threading.Event(), threading.Event()
    real_supersede = services._supersede_older

    def alice_pauses_before_her_commit(batch, now):
        if batch.actor == "alice":
            alice_inserted.set()
            bob_started.wait(10)
            time.sleep(HOLD_S)  # Bob's request runs meanwhile, up to wherever it has to wait
        return real_supersede(batch, now)

    monkeypatch.setattr(services, "_supersede_older", alice_pauses_before_her_commit)

    def request(actor: str, profile_id: int):
        with app.app_context():
            try:
                profile = db.session.get(EnrollmentProfile, profile_id)
                return services.request_assignment(db.session.get(ManagedServer, server_id), profile, ids,
                                                   actor=actor).id
            finally:
                db.session.remove()

    alice, alice_result = _in_thread(lambda: request("alice", sales_id))
    assert alice_inserted.wait(10)
    bob, bob_result = _in_thread(lambda: request("bob", kiosk_id))
    bob_started.set()
    alice.join(30)
    bob.join(30)
    assert "value" in alice_result and "value" in bob_result, (alice_result, bob_result)
    db.session.expire_all()
    pairs = db.session.execute(select(AssignmentTask.batch_id, AssignmentTask.state).distinct()).all()
    assert sorted(pairs) == sorted([(alice_result["value"], "superseded"), (bob_result["value"], "queued")])


def test_delete_server_that_stays_busy_says_so_and_deletes_nothing(app, admin_client, monkeypatch):
    """A sync waiting long for Apple with its page not committed yet: the delete gives up after a few
    seconds (well before web timeouts) with a message next to the field, instead of hanging."""
    from portal.servers import services

    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writers wait on the database's own lock (busy timeout)")
    monkeypatch.setattr(services, "DELETE_WAIT_S", 0.2)
    server = _server("Paris")
    _seed(server, *[{"serial_number": f"A{i:04d}"} for i in range(100)])
    server_id = server.id
    token = admin_client.fetch_csrf_token(f"/servers/{server_id}/delete")
    with _SyncWriting(app, server_id, [f"A{i:04d}" for i in range(100)]) as sync:
        response = admin_client.post(f"/servers/{server_id}/delete", data={"confirm_name": "Paris", "csrf_token": token})
    assert sync.outcome == "committed"
    assert response.status_code == 422 and "writing devices right now" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(ManagedServer, server_id) is not None
    assert db.session.execute(select(func.count()).select_from(Device)).scalar_one() == 100


@pytest.mark.parametrize("writer", ["newer request", "retry now"])
def test_writers_of_tasks_wait_for_a_job_storing_answers_instead_of_deadlocking(app, htmx, apple, paris, writer):
    """The job storing answers holds the server's device lock and task rows; the newer request takes
    that lock before touching the older tasks, so the two take turns instead of deadlocking."""
    from sqlalchemy import update

    from portal.assignments.retries import retry_now
    from portal.assignments.services import request_assignment
    from portal.device_locks import lock_device_writes

    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writers wait on the database's own lock (busy timeout)")
    server, sales = paris(devices=3)
    kiosk = configured_profile(server, "Kiosk")
    server_id, kiosk_id, device_ids = server.id, kiosk.id, [d.id for d in devices_of(server.id).values()]
    assert pick(htmx, sales, device_ids).status_code == 204  # the older request, its job not run
    job_has_lock, job_may_commit = threading.Event(), threading.Event()

    def a_job_storing_answers():
        with app.app_context():
            lock_device_writes(server_id)
            job_has_lock.set()
            job_may_commit.wait(10)
            db.session.commit()
            db.session.remove()

    job = threading.Thread(target=a_job_storing_answers)
    job.start()
    assert job_has_lock.wait(10)

    def newer_request():
        with app.app_context():
            try:
                if writer == "retry now":
                    return retry_now(actor="bob")
                return request_assignment(db.session.get(ManagedServer, server_id),
                                          db.session.get(EnrollmentProfile, kiosk_id), device_ids, actor="bob").id
            finally:
                db.session.remove()

    if writer == "retry now":  # the older request's devices wait in the retry queue
        db.session.execute(update(AssignmentTask).values(state="throttled", retry_at=datetime.now(timezone.utc)))
        db.session.commit()
    request, result = _in_thread(newer_request)
    request.join(HOLD_S)
    assert request.is_alive() and result == {}  # waiting for the job's transaction
    job_may_commit.set()
    job.join(10)
    request.join(10)
    assert "value" in result, result
    db.session.expire_all()
    states = dict(db.session.execute(select(AssignmentTask.batch_id, AssignmentTask.state).distinct()).all())
    if writer == "retry now":
        assert result["value"] == 3 and set(states.values()) == {"queued"}
    else:
        assert states[result["value"]] == "queued" and set(states.values()) == {"queued", "superseded"}


# ----- Two Add Devices jobs of one server on two workers: Apple gets them in turn (assignments/turns.py)

def _turn_key(server_id: int) -> str:
    return f"ade:assignment-turn:{server_id}"


def test_a_newer_request_is_sent_only_after_the_older_call_at_apple_is_answered(app, htmx, apple, paris, run_jobs,
                                                                                 monkeypatch):
    """The admin moves a device to Support while the worker sending its Sales request is on its way to
    Apple; a second worker takes the newer request. Apple must end with Support, as the portal does."""
    from portal.assignments import runner
    from portal.assignments.services import request_assignment

    server, sales = paris(devices=3)
    support = configured_profile(server, "Support")
    server_id, support_id = server.id, support.id
    device = next(iter(devices_of(server_id).values()))
    assert pick(htmx, sales, [device.id]).status_code == 204
    older_id = latest_batch().id
    real, calls, seen = runner._call, [], {}

    def second_worker(batch_id):
        with app.app_context():
            try:
                runner.run_batch(batch_id)
            finally:
                db.session.remove()

    def older_call_on_its_way(client, action, uuid, serials):
        calls.append(uuid)
        if len(calls) == 1:
            with app.app_context():
                newer_id = request_assignment(db.session.get(ManagedServer, server_id),
                                              db.session.get(EnrollmentProfile, support_id), [device.id], actor="bob").id
                db.session.remove()
            worker = threading.Thread(target=second_worker, args=(newer_id,))
            worker.start()
            seen["worker"] = worker
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and worker.is_alive():  # ends at once without turns
                page = htmx.get(f"/assignments/{newer_id}/status").get_data(as_text=True)
                if f"Waiting for request #{older_id} of this server to be answered" in page:
                    seen["waiting"] = True
                    break
                time.sleep(0.05)
        return real(client, action, uuid, serials)

    monkeypatch.setattr(runner, "_call", older_call_on_its_way)
    assert run_jobs() == []  # the older job, then the newer one's own RQ job (nothing left to send)
    seen["worker"].join(30)
    assert seen.get("waiting"), "the newer request did not wait for the older call"
    assert calls == [sales.apple_profile_uuid, support.apple_profile_uuid]
    assert apple.state.device(device.serial_number)["profile_uuid"] == support.apple_profile_uuid
    assert devices_of(server_id)[device.serial_number].profile_id == support_id
    assert latest_batch().status == "finished" and latest_batch().error_message is None
    assert get_redis().get(_turn_key(server_id)) is None  # released


def test_a_turn_left_by_a_killed_worker_is_taken_over_at_once(app, htmx, apple, paris, run_jobs):
    server, sales = paris(devices=3)
    get_redis().set(_turn_key(server.id), "41:0123456789abcdef0123456789abcdef:x", px=600_000)  # no such RQ job
    assert pick(htmx, sales, [d.id for d in devices_of(server.id).values()]).status_code == 204
    assert run_jobs() == []
    batch = latest_batch()
    assert (batch.status, batch.succeeded, batch.error_message) == ("finished", 3, None)


def test_a_request_kept_waiting_too_long_is_held_and_sent_later(app, htmx, apple, paris, run_jobs, monkeypatch,
                                                                clock):
    from portal.assignments import retries, turns

    server, sales = paris(devices=3)
    monkeypatch.setattr(turns, "WAIT_LIMIT_S", 0.3)
    get_redis().set(_turn_key(server.id), "41:-:x", px=600_000)  # a holder outside RQ: until the key expires
    assert pick(htmx, sales, [d.id for d in devices_of(server.id).values()]).status_code == 204
    assert run_jobs() == []
    batch = latest_batch()
    assert batch.status == "waiting" and batch.succeeded == 0
    assert batch.error_message.startswith("Waiting for request #41 of this server to be answered")
    page = htmx.get(f"/assignments/{batch.id}").get_data(as_text=True)
    assert "Waiting for request #41 of this server to be answered" in page
    assert all(t.state == "queued" and t.retry_at is not None for t in tasks_of(batch.id).values())

    get_redis().delete(_turn_key(server.id))  # the other request is done
    clock(minutes=2)
    assert retries.retry_due()["started"] == [batch.id]
    assert run_jobs() == []
    batch = latest_batch()
    assert (batch.status, batch.succeeded) == ("finished", 3)


def _wait_for_locks_at_most(seconds: int) -> None:
    """This session gives up on a lock after `seconds` (SQLite: the writer's lock; PostgreSQL: rows),
    instead of the 30 s or forever other writers would wait."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{seconds}s'")
    else:
        connection.exec_driver_sql(f"PRAGMA busy_timeout = {seconds * 1000}")


def _write_meanwhile(app, outcome: dict, key: str, write) -> None:
    """Another writer, giving up on locks after 5 s: outcome[key] = write(), or outcome["error"]."""
    with app.app_context():
        try:
            _wait_for_locks_at_most(5)
            outcome[key] = write()
        except Exception as exc:  # noqa: BLE001 - the test's assertion shows it
            outcome["error"] = repr(exc)
            db.session.rollback()
        finally:
            if db.session.connection().dialect.name == "sqlite":
                db.session.connection().exec_driver_sql("PRAGMA busy_timeout = 30000")
            db.session.remove()


def test_answers_stored_before_a_slow_call_to_apple_are_committed_without_waiting_for_it(
        app, htmx, apple, paris, run_jobs, monkeypatch):
    """Apple can take minutes over one call (its retries, a 5xx with backoff, read timeouts). The
    answers stored before it must not keep the database locked meanwhile (SQLite: every writer,
    Add Devices requests included; PostgreSQL: the devices and tasks answered)."""
    from portal.assignments import runner, timing
    from portal.assignments.services import request_assignment

    server, sales = paris(devices=3)
    kiosk = configured_profile(server, "Kiosk")
    server_id, kiosk_id = server.id, kiosk.id
    monkeypatch.setattr(timing, "CHUNK_SIZE", 1)
    assert pick(htmx, sales, [d.id for d in devices_of(server_id).values()]).status_code == 204
    first = min(tasks_of(latest_batch().id).values(), key=lambda t: t.id)
    real, calls, bob = runner._call, [], {}

    def bob_moves_the_first_device_while_apple_answers_the_second_call(client, action, uuid, serials):
        calls.append(list(serials))
        if len(calls) == 2:
            time.sleep(HOLD_S)  # Apple takes its time; the job has stored the first answer meanwhile
            _write_meanwhile(app, bob, "batch", lambda: request_assignment(  # (in the job's calling thread)
                db.session.get(ManagedServer, server_id), db.session.get(EnrollmentProfile, kiosk_id),
                [first.device_id], actor="bob").id)
        return real(client, action, uuid, serials)

    monkeypatch.setattr(runner, "_call", bob_moves_the_first_device_while_apple_answers_the_second_call)
    assert run_jobs() == []
    assert "batch" in bob, bob
    assert len(calls) == 4  # the three devices, then Bob's
    assert devices_of(server_id)[first.serial_number].profile_id == kiosk_id


def test_pages_written_before_a_slow_page_from_apple_are_committed_without_waiting_for_it(
        app, htmx, apple, paris, run_jobs, monkeypatch):
    """Pages share a transaction for up to a second, not for as long as Apple takes over the next
    one: meanwhile another writer of the server's devices (an Add Devices job storing its answers,
    Delete server; on SQLite any writer) would wait for Apple too."""
    from sqlalchemy import update

    from portal.apple.client import DEPClient
    from portal.device_locks import lock_device_writes
    from portal.servers import sync as engine

    server, _ = paris(devices=3)
    server_id = server.id
    known = next(iter(devices_of(server_id)))
    new = apple.state.add_devices("Paris MDM", 5)
    monkeypatch.setattr(engine, "PAGE_LIMIT", 2)
    real, calls, job = DEPClient.sync_devices, [], {}

    def another_writer_while_apple_takes_its_time(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # (this runs in the sync's page-fetching thread)
            time.sleep(HOLD_S)  # Apple is slow with this page; the first one is written meanwhile
            def store():
                lock_device_writes(server_id)
                db.session.execute(update(Device).where(Device.server_id == server_id, Device.serial_number == known)
                                   .values(assignment_state="assigned"))
                db.session.commit()
                return True

            _write_meanwhile(app, job, "stored", store)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DEPClient, "sync_devices", another_writer_while_apple_takes_its_time)
    htmx.post(f"/servers/{server_id}/sync")
    assert run_jobs() == []
    assert job == {"stored": True}
    after = devices_of(server_id)
    assert set(new) <= set(after) and after[known].assignment_state == "assigned"


def test_two_profiles_made_the_default_at_once_leave_one_default(app, htmx, apple, paris):
    """Two admins each make a profile the default for every family at the same moment: the later save sees the
    earlier one and takes its place, rather than both staying defaults (and both being assigned to new devices)."""
    from portal.profiles import services

    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's writers wait on the database's own lock (busy timeout)")
    server, _ = paris(devices=1)
    server_id = server.id
    alice_saved, alice_may_commit = threading.Event(), threading.Event()

    def save(name: str, hold: bool):
        def work():
            with app.app_context():
                try:
                    profile = services.create_profile(db.session.get(ManagedServer, server_id),
                                                      {"name": name, "is_default": True})
                    if hold:
                        alice_saved.set()
                        alice_may_commit.wait(10)
                    db.session.commit()
                    return profile.id
                finally:
                    db.session.remove()
        return work

    alice, alice_result = _in_thread(save("Alice's", hold=True))
    assert alice_saved.wait(10)
    bob, bob_result = _in_thread(save("Bob's", hold=False))
    bob.join(HOLD_S)
    assert bob.is_alive() and bob_result == {}  # waiting for Alice's save
    alice_may_commit.set()
    alice.join(10)
    bob.join(10)
    assert "value" in alice_result and "value" in bob_result, (alice_result, bob_result)
    db.session.expire_all()
    defaults = db.session.execute(select(EnrollmentProfile.name).where(
        EnrollmentProfile.server_id == server_id, EnrollmentProfile.is_default.is_(True))).scalars().all()
    assert defaults == ["Bob's"]
