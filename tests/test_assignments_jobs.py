"""The Add Devices / Remove Devices job against the Apple simulator: calls of at most 1000 serial numbers,
answers committed while Apple is slow to answer the next call, an interrupted job resumed without loss, and a
profile, a server, Retry now or a newer request changing things while a call is at Apple."""
from __future__ import annotations

import re

from sqlalchemy import func, select

from portal.assignments import timing
from portal.extensions import db
from portal.models import AssignmentBatch, AssignmentTask, Device, EnrollmentProfile, ManagedServer
from tests.assignments_helpers import (SIM, CallLog, configured_profile, devices_of, latest_batch, pick, sim_serials,
                                       tasks_of)
from tests.servers_helpers import TakenJob
from tests.assignments_helpers import clock, paris  # noqa: F401 - fixtures


def test_answers_stored_are_committed_while_apple_is_slow_to_answer_the_next_call(htmx, apple, paris, run_jobs,
                                                                                   monkeypatch):
    """Not kept in an open transaction (on SQLite the only write lock) while a call is at Apple."""
    from sqlalchemy import event

    from portal.assignments import runner

    server, profile = paris(devices=2300)  # three calls
    monkeypatch.setattr(runner, "WAIT_NOTICE_S", 0.05)
    monkeypatch.setattr(runner, "COMMIT_EVERY_S", 60)  # the time rule out of the way
    # Each answer: 0.6 s, longer than storing a chunk takes even on a loaded machine (a stored chunk
    # that outlasts the next call leaves no wait to commit in).
    apple.state.set_fault(SIM, "latency", 0.6)
    assert pick(htmx, profile, all_matching="1").status_code == 204
    commits = []
    listener = lambda conn: commits.append(conn)  # noqa: E731
    event.listen(db.engine, "commit", listener)
    try:
        assert run_jobs() == []
    finally:
        event.remove(db.engine, "commit", listener)
    assert latest_batch().succeeded == 2300
    # While each answer was awaited, what was stored was committed: 6 commits in all, against 4 with
    # only the rule that commits while the last call is out.
    assert len(commits) >= 6


def test_more_than_1000_devices_are_sent_in_calls_of_at_most_1000(htmx, apple, paris, run_jobs):
    server, profile = paris(devices=2300)
    log = CallLog(apple.app)
    popup = htmx.get(f"/profiles/{profile.id}/devices/add").get_data(as_text=True)
    assert "Select all 2,300 devices of Paris" in popup
    assert pick(htmx, profile, all_matching="1").status_code == 204
    assert run_jobs() == []
    assert log.calls == [("POST", 1000), ("POST", 1000), ("POST", 300)]
    batch = latest_batch()
    assert (batch.status, batch.total, batch.succeeded) == ("finished", 2300, 2300)
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(Device).where(
        Device.profile_id == profile.id)).scalar_one() == 2300
    section = htmx.get(f"/profiles/{profile.id}/devices").get_data(as_text=True)
    assert "2,300 devices associated" in section and "Page 1 of 46" in section

    # Remove Devices: all associated devices, again in calls of at most 1000.
    confirm = htmx.get(f"/profiles/{profile.id}/devices/remove", query_string={"all": "1"})
    assert confirm.status_code == 200 and "from 2,300 devices" in confirm.get_data(as_text=True)
    assert htmx.post(f"/profiles/{profile.id}/devices/remove", data={"all": "1"}).status_code == 204
    assert run_jobs() == []
    assert log.calls[3:] == [("DELETE", 1000), ("DELETE", 1000), ("DELETE", 300)]
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(Device).where(
        Device.profile_id == profile.id)).scalar_one() == 0
    # The device page says what Apple's last answer did, not "None · <time>" alone.
    removed = db.session.execute(select(Device).where(Device.server_id == server.id).limit(1)).scalar_one()
    page = htmx.get(f"/devices/{removed.id}").get_data(as_text=True)
    assert re.search(r"<dt>Assignment</dt><dd>None · profile removed \d{4}-\d\d-\d\d", page), page


def test_each_call_sends_devices_that_are_neighbours_in_the_device_table(htmx, apple, paris, run_jobs):
    """A request's devices are sent in the order of the device table, not of their serial numbers: each call's
    answers then rewrite neighbouring device rows, a few hundred pages per call instead of most of the table
    (bench/assign.py, 10,000 devices on SQLite: portal / bare client 1.6 → 1.1)."""
    server, profile = paris(devices=2300)
    in_table_order = [d.serial_number for d in sorted(devices_of(server.id).values(), key=lambda d: d.id)]
    assert in_table_order != sorted(in_table_order)  # synchronized in Apple's order, not by serial number
    log = CallLog(apple.app)
    assert pick(htmx, profile, all_matching="1").status_code == 204
    assert run_jobs() == []
    assert log.serials == [in_table_order[:1000], in_table_order[1000:2000], in_table_order[2000:]]
    assert latest_batch().succeeded == 2300


def test_a_profile_deleted_while_its_devices_are_at_apple(app, htmx, apple, paris, run_jobs, monkeypatch):
    """Apple's answers already given are kept (the devices have Apple's profile, no association, as
    a deleted profile's devices do); the devices not sent yet are never sent with its old UUID."""
    from portal.assignments import runner

    server, profile = paris(devices=12)
    uuid, profile_id = profile.apple_profile_uuid, profile.id
    monkeypatch.setattr(timing, "CHUNK_SIZE", 3)
    real = runner._call
    calls = []

    def deleted_during_the_first_call(*args, **kwargs):
        calls.append(len(args[3]))
        if len(calls) == 1:
            with app.app_context():  # (this runs in the job's calling thread)
                assert htmx.post(f"/profiles/{profile_id}/delete").status_code in (204, 302)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "_call", deleted_during_the_first_call)
    assert pick(htmx, profile, all_matching="1").status_code == 204
    batch_id = latest_batch().id
    failed = run_jobs()
    assert failed == [], failed[0].exc_info
    assert calls == [3]  # the first call only: the rest were never sent
    db.session.expire_all()
    assert db.session.get(EnrollmentProfile, profile_id) is None
    tasks = tasks_of(batch_id)
    assert sorted(t.state for t in tasks.values()) == ["done"] * 3 + ["superseded"] * 9
    assert {t.detail for t in tasks.values() if t.state == "superseded"} == {
        "The profile was deleted before Apple assigned it."}
    devices = devices_of(server.id)
    assigned = [s for s, t in tasks.items() if t.state == "done"]
    assert all(devices[s].profile_id is None and devices[s].profile_uuid == uuid for s in assigned)
    assert [d["profile_uuid"] for d in apple.state.devices(SIM) if d["serial"] in assigned] == [uuid] * 3
    batch = latest_batch()
    assert batch.status == "finished" and batch.succeeded == 3
    page = htmx.get(f"/assignments/{batch.id}").get_data(as_text=True)
    assert "the profile was deleted" in page


def test_a_server_deleted_while_its_devices_are_at_apple_stops_the_job_quietly(app, htmx, apple, paris, run_jobs,
                                                                                monkeypatch):
    from portal.assignments import runner

    server, profile = paris(devices=6)
    server_id = server.id
    monkeypatch.setattr(timing, "CHUNK_SIZE", 3)
    real = runner._call

    def server_deleted_meanwhile(*args, **kwargs):
        with app.app_context():  # (this runs in the job's calling thread)
            if db.session.get(ManagedServer, server_id) is not None:
                deleted = htmx.post(f"/servers/{server_id}/delete", data={"confirm_name": "Paris"})
                assert deleted.status_code in (204, 302)
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "_call", server_deleted_meanwhile)
    assert pick(htmx, profile, all_matching="1").status_code == 204
    assert run_jobs() == []  # stopped, not failed
    db.session.expire_all()
    assert db.session.get(ManagedServer, server_id) is None
    assert db.session.execute(select(func.count()).select_from(AssignmentBatch)).scalar_one() == 0


def test_an_interrupted_job_is_resumed_without_loss(htmx, apple, paris, run_jobs, monkeypatch, clock):
    from portal.assignments import runner
    from portal.assignments.retries import retry_due

    server, profile = paris(devices=2500)
    real = runner._call
    calls = {"n": 0}

    def killed_on_second_call(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "_call", killed_on_second_call)
    assert pick(htmx, profile, all_matching="1").status_code == 204
    assert len(run_jobs()) == 1  # the job failed loudly; RQ keeps it
    batch = latest_batch()
    states = {state: n for state, n in db.session.execute(select(AssignmentTask.state, func.count()).where(
        AssignmentTask.batch_id == batch.id).group_by(AssignmentTask.state)).all()}
    # The first answers are kept; the chunk in the failed call is left 'sending' (Apple may or may
    # not have acted on it) and the next one, read but never sent, is still queued.
    assert batch.status == "interrupted" and states == {"done": 1000, "sending": 1000, "queued": 500}
    page = htmx.get(f"/assignments/{batch.id}").get_data(as_text=True)
    assert "Interrupted" in page and "Retry now" in page

    monkeypatch.setattr(runner, "_call", real)
    log = CallLog(apple.app)
    assert retry_due()["started"] == [batch.id]  # its RQ job is dead: resumed by the periodic job
    assert len(run_jobs()) == 1  # only the earlier failed job
    assert log.calls == [("POST", 1000), ("POST", 500)]  # the unanswered 1000 again, then the rest
    tasks = tasks_of(batch.id)
    assert {t.state for t in tasks.values()} == {"done"} and len(tasks) == 2500
    assert sorted({t.attempts for t in tasks.values()}) == [1, 2]
    assert latest_batch().status == "finished"
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(Device).where(
        Device.profile_id == profile.id)).scalar_one() == 2500

    # A worker killed outright (no exception handler ran): tasks left 'sending', its worker gone.
    from portal.queue import fetch_job, get_queue

    assert pick(htmx, profile, [devices_of(server.id)[s].id for s in sim_serials(apple, 3)]).status_code == 204
    stuck = latest_batch()
    TakenJob(stuck.job_id).killed()
    db.session.execute(AssignmentTask.__table__.update().where(AssignmentTask.batch_id == stuck.id).values(state="sending"))
    stuck.status = "running"
    db.session.commit()
    assert retry_due()["started"] == [stuck.id]
    assert len(run_jobs()) == 1  # still only the first failed job
    assert {t.state for t in tasks_of(stuck.id).values()} == {"done"}

    # A request whose job is not in Redis yet is given time to get there before it is restarted.
    assert pick(htmx, profile, [devices_of(server.id)[s].id for s in sim_serials(apple, 2)]).status_code == 204
    young = latest_batch()
    get_queue().remove(fetch_job(young.job_id))
    fetch_job(young.job_id).delete()
    assert retry_due()["started"] == []
    clock(minutes=3)
    assert retry_due()["started"] == [young.id]
    assert len(run_jobs()) == 1
    assert {t.state for t in tasks_of(young.id).values()} == {"done"}


def test_retry_now_while_the_batch_is_at_apple_never_gives_a_device_an_answer_it_was_not_sent_for(
        app, htmx, apple, paris, run_jobs, monkeypatch, clock):
    from portal.assignments import runner
    from portal.assignments.retries import retry_due, retry_now

    server, profile = paris(devices=4)
    devices = devices_of(server.id)
    assert pick(htmx, profile, [d.id for d in devices.values()][:2]).status_code == 204
    first, second = sorted(tasks_of(latest_batch().id).values(), key=lambda t: t.id)
    apple.state.set_fault(SIM, "assign_failed", [first.serial_number])
    apple.state.set_fault(SIM, "throttle", {"serials": [second.serial_number], "retry_after": 45})
    assert run_jobs() == []
    batch = latest_batch()
    assert {t.serial_number: t.state for t in tasks_of(batch.id).values()} == {
        first.serial_number: "failed", second.serial_number: "throttled"}

    # The throttled device is sent again; while Apple answers, the admin uses Retry now, which puts
    # the failed device (a lower id, so inside the chunk's range) back in the queue.
    apple.state.set_fault(SIM, "throttle", None)
    apple.state.set_fault(SIM, "assign_failed", None)
    clock(seconds=46)
    real, sent = runner._call, []

    def retry_now_meanwhile(client, action, uuid, serials):
        sent.append(list(serials))
        if len(sent) == 1:
            with app.app_context():
                retry_now(db.session.get(AssignmentBatch, batch.id), actor="alice")
        return real(client, action, uuid, serials)

    monkeypatch.setattr(runner, "_call", retry_now_meanwhile)
    assert retry_due()["requeued"] == 1
    assert run_jobs() == []
    # The device put back was not in that call, so it got no answer from it: the same run went
    # back for it once Apple had answered, in a call of its own.
    assert sent == [[second.serial_number], [first.serial_number]]
    tasks = tasks_of(batch.id)
    assert (tasks[second.serial_number].state, tasks[second.serial_number].attempts) == ("done", 2)
    assert (tasks[first.serial_number].state, tasks[first.serial_number].attempts) == ("done", 2)
    assert latest_batch().status == "finished"


def test_a_device_requested_again_while_its_call_is_at_apple_keeps_only_the_newer_request(
        app, htmx, apple, paris, run_jobs, monkeypatch):
    from portal.assignments import runner
    from portal.assignments.services import request_assignment

    server, sales = paris(devices=3)
    support = configured_profile(server, "Support")
    device = next(iter(devices_of(server.id).values()))
    assert pick(htmx, sales, [device.id]).status_code == 204
    older = latest_batch()
    real, calls = runner._call, []

    def moved_meanwhile(client, action, uuid, serials):
        calls.append(uuid)
        if len(calls) == 1:  # the admin moves the device to Support while Apple answers for Sales
            with app.app_context():
                request_assignment(db.session.get(ManagedServer, server.id),
                                   db.session.get(EnrollmentProfile, support.id), [device.id], actor="bob")
        return real(client, action, uuid, serials)

    monkeypatch.setattr(runner, "_call", moved_meanwhile)
    assert run_jobs() == []
    assert calls == [sales.apple_profile_uuid, support.apple_profile_uuid]
    # Sales' answer arrived after the task was superseded: it is not recorded on the device.
    old_task = tasks_of(older.id)[device.serial_number]
    assert (old_task.state, old_task.result) == ("superseded", None)
    assert tasks_of(latest_batch().id)[device.serial_number].state == "done"
    assert devices_of(server.id)[device.serial_number].profile_id == support.id
    assert apple.state.device(device.serial_number)["profile_uuid"] == support.apple_profile_uuid
