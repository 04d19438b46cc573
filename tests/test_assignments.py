"""Add Devices / Remove Devices through the web UI against the Apple simulator: per-device results
(success, not accessible, failed, throttled), retries after Apple's wait, Retry now, calls of at most
1000 serials, an interrupted job resumed without loss, the pop-up's filters, default profile, 404s."""
from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, update

from portal.assignments import timing
from portal.extensions import db
from portal.models import ActivityEntry, AssignmentBatch, AssignmentTask, Device, EnrollmentProfile, ManagedServer
from portal.models.profile import CONFIGURED, NOT_CONFIGURED
from tests.servers_helpers import Identity, TakenJob, add_simulated_server, server_named

SIM = "Paris MDM"


# ----- helpers (also used by the browser test) ---------------------------------------------

def configured_profile(server: ManagedServer, name: str = "Sales", *, is_default: bool = False) -> EnrollmentProfile:
    """A profile really defined at the simulator (so it knows the UUID), stored as configured."""
    from portal.apple_link import client_for

    uuid = client_for(server).define_profile({"profile_name": name, "url": "https://mdm.example.com/enroll"})["profile_uuid"]
    profile = EnrollmentProfile(server_id=server.id, name=name, status=CONFIGURED, apple_profile_uuid=uuid,
                                configured_at=datetime.now(timezone.utc), is_default=is_default)
    db.session.add(profile)
    db.session.commit()
    return profile


def devices_of(server_id: int) -> dict[str, Device]:
    db.session.expire_all()
    return {d.serial_number: d for d in db.session.execute(select(Device).where(Device.server_id == server_id)).scalars()}


def _filtered(client, query: str) -> list[str]:
    """Serial numbers on the Managed Devices list with this filter."""
    return re.findall(r"<td><a class=.device-link.[^>]*><code>([^<]+)</code></a></td>", client.get(f"/devices?{query}").get_data(as_text=True))


def tasks_of(batch_id: int) -> dict[str, AssignmentTask]:
    db.session.expire_all()
    return {t.serial_number: t for t in db.session.execute(
        select(AssignmentTask).where(AssignmentTask.batch_id == batch_id)).scalars()}


def latest_batch() -> AssignmentBatch:
    db.session.expire_all()
    return db.session.execute(select(AssignmentBatch).order_by(AssignmentBatch.id.desc()).limit(1)).scalar_one()


class CallLog:
    """Records every /profile/devices call the simulator receives (method, number of serials)."""

    def __init__(self, sim_app):
        self.calls: list[tuple[str, int]] = []
        self._inner = sim_app.wsgi_app
        sim_app.wsgi_app = self

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/profile/devices":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            environ["wsgi.input"] = io.BytesIO(body)
            self.calls.append((environ["REQUEST_METHOD"], len(json.loads(body).get("devices", []))))
        return self._inner(environ, start_response)


@pytest.fixture
def paris(htmx, apple, run_jobs):
    """A managed server added through the UI and synchronized, with a configured profile."""
    identity = Identity()

    def make(devices=20):
        server = add_simulated_server(htmx, apple, devices, run_jobs=run_jobs, identity=identity, apple_server=SIM)
        return server, configured_profile(server)

    return make


@pytest.fixture
def clock(monkeypatch):
    """Move the portal's clock forward (the waits of the retry queue) without sleeping."""
    offset = {"value": timedelta(0)}
    real = timing.now

    def advance(**delta):
        offset["value"] += timedelta(**delta)

    monkeypatch.setattr(timing, "now", lambda: real() + offset["value"])
    return advance


def pick(htmx, target, device_ids=(), **data):
    """OK in Select the Managed Devices of the profile `target`."""
    return htmx.post(f"/profiles/{target.id}/devices/add", data={"device": [str(i) for i in device_ids], **data})


def sim_serials(apple, n=1000):
    return [d["serial"] for d in apple.state.devices(SIM, limit=n)]


# ----- Add Devices: per-device results -------------------------------------------------------

def test_add_devices_with_mixed_results_then_retries_after_the_wait(htmx, apple, paris, run_jobs, clock):
    server, profile = paris(devices=12)
    serials = sim_serials(apple)
    ok, gone, failing, throttled = serials[0], serials[1], serials[2], serials[3]
    apple.state.create_server("Other MDM")
    apple.state.move_devices([gone], "Other MDM")  # the portal has not synchronized the move yet
    apple.state.set_fault(SIM, "assign_failed", [failing])
    apple.state.set_fault(SIM, "throttle", {"serials": [throttled], "retry_after": 45})
    devices = devices_of(server.id)

    popup = htmx.get(f"/profiles/{profile.id}/devices/add")
    html = popup.get_data(as_text=True)
    assert popup.status_code == 200 and "Select the Managed Devices" in html
    assert all(s in html for s in serials)  # every synchronized device, with its serial number
    response = pick(htmx, profile, [devices[s].id for s in (ok, gone, failing, throttled)])
    assert response.status_code == 204 and "closeModal" in response.headers["HX-Trigger"]
    batch = latest_batch()
    assert (batch.total, batch.status, batch.actor, batch.action) == (4, "queued", "alice", "assign")
    queued = devices_of(server.id)[ok]
    assert queued.assignment_state is None  # the device row waits for Apple's answer ...
    row = htmx.get(f"/devices?q={ok}").get_data(as_text=True)
    assert re.search(r"<td>Queued</td>", row)  # ... and shows as queued from its task
    assert ok in _filtered(htmx, "assignment=queued") and ok not in _filtered(htmx, "assignment=none")
    assert htmx.get(f"/assignments/{batch.id}/status").status_code == 200  # keeps polling while queued

    assert run_jobs() == []
    final = htmx.get(f"/assignments/{batch.id}/status")
    assert final.status_code == 286  # polling stops
    tasks = tasks_of(batch.id)
    assert {s: (tasks[s].state, tasks[s].result) for s in (ok, gone, failing, throttled)} == {
        ok: ("done", "SUCCESS"), gone: ("not_accessible", "NOT_ACCESSIBLE"),
        failing: ("failed", "FAILED"), throttled: ("throttled", "THROTTLED")}
    now = timing.now()
    assert timedelta(hours=23) < tasks[failing].retry_at - now <= timedelta(hours=24)
    assert timedelta(seconds=30) < tasks[throttled].retry_at - now <= timedelta(seconds=45)
    assert tasks[gone].retry_at is None  # final
    after = devices_of(server.id)
    assert after[ok].profile_id == profile.id and after[ok].assignment_state == "assigned"
    assert after[failing].profile_id is None and after[failing].assignment_state == "failed"
    assert after[gone].assignment_state == "not_accessible" and after[throttled].assignment_state == "throttled"
    at_apple = apple.state.device(ok)
    assert at_apple["profile_status"] == "assigned" and at_apple["profile_uuid"] == profile.apple_profile_uuid
    assert apple.state.device(failing)["profile_status"] != "assigned"

    page = htmx.get(f"/assignments/{batch.id}").get_data(as_text=True)
    assert "Not accessible" in page and "Throttled" in page and "retried after 24 hours" in page
    section = htmx.get(f"/profiles/{profile.id}/devices").get_data(as_text=True)
    assert ok in section and failing not in section.split("Latest requests")[0]
    assert "retry queue" in section
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "assignment.assign_finished")).scalar_one()
    assert "1 assigned, 1 not accessible, 1 failed" in entry.summary and "1 throttled" in entry.summary
    assert entry.level == "warning"

    queue = htmx.get("/assignments/retries").get_data(as_text=True)
    assert failing in queue and throttled in queue and gone not in queue and ok not in queue

    # Not before Apple's wait is over.
    from portal.assignments.retries import retry_due
    assert retry_due()["requeued"] == 0
    apple.state.set_fault(SIM, "throttle", None)
    clock(seconds=46)
    assert retry_due()["requeued"] == 1  # the throttled device only: FAILED waits 24 hours
    assert run_jobs() == []
    tasks = tasks_of(batch.id)
    assert (tasks[throttled].state, tasks[throttled].attempts) == ("done", 2)
    assert tasks[failing].state == "failed" and tasks[failing].attempts == 1
    assert devices_of(server.id)[throttled].profile_id == profile.id

    clock(hours=24)
    assert retry_due()["requeued"] == 1
    assert run_jobs() == []
    tasks = tasks_of(batch.id)
    assert (tasks[failing].state, tasks[failing].attempts) == ("failed", 2)  # Apple still fails it
    assert tasks[failing].retry_at - timing.now() > timedelta(hours=23)
    apple.state.set_fault(SIM, "assign_failed", None)
    clock(hours=24, seconds=1)
    retry_due()
    assert run_jobs() == []
    assert tasks_of(batch.id)[failing].state == "done" and latest_batch().status == "finished"
    assert "Nothing to retry" in htmx.get("/assignments/retries").get_data(as_text=True)


def test_the_retry_queue_follows_retry_now_until_apple_answered(htmx, apple, paris, run_jobs):
    """After Retry now the queue page said "Nothing to retry" for good, though Apple throttled the devices again a
    second later: it refreshed once, while they were on their way. It now says they are being sent, and polls."""
    server, profile = paris(devices=3)
    throttled = sorted(devices_of(server.id))[0]
    apple.state.set_fault(SIM, "throttle", [throttled])
    pick(htmx, profile, [devices_of(server.id)[throttled].id])
    assert run_jobs() == []
    queue = htmx.get("/assignments/retries").get_data(as_text=True)
    assert throttled in queue and "every 2s" not in queue

    assert htmx.post("/assignments/retries/retry").status_code == 204  # Retry now, warning accepted
    sending = " ".join(htmx.get("/assignments/retries").get_data(as_text=True).split())
    assert "Sending 1 device to Apple now" in sending and "Nothing to retry" not in sending
    assert re.search(r'<div id="retry-table" hx-get="/assignments/retries\?" hx-trigger="every 2s"', sending)

    assert run_jobs() == []  # Apple throttles it again
    queue = htmx.get("/assignments/retries").get_data(as_text=True)
    assert throttled in queue and "every 2s" not in queue and "Sending" not in queue


def test_a_new_request_for_devices_apple_asked_to_wait_for_keeps_the_wait(htmx, apple, paris, run_jobs, clock):
    """Add Devices again (or moving to another profile) is no way around retry_after_seconds or the
    24 hours after FAILED: the devices wait in the retry queue, and Retry now (with its warning) sends them."""
    from portal.assignments.retries import retry_due

    server, profile = paris(devices=6)
    labs = configured_profile(server, "Labs")
    serials = sim_serials(apple)
    failing, throttled, fine = serials[0], serials[1], serials[2]
    devices = devices_of(server.id)
    apple.state.set_fault(SIM, "assign_failed", [failing])
    apple.state.set_fault(SIM, "throttle", {"serials": [throttled], "retry_after": 45})
    pick(htmx, profile, [devices[s].id for s in (failing, throttled)])
    assert run_jobs() == []
    first = latest_batch()
    apple.state.set_fault(SIM, "assign_failed", None)
    apple.state.set_fault(SIM, "throttle", None)

    # The admin selects them again (one to another profile), with a device that has no wait.
    log = CallLog(apple.app)
    response = pick(htmx, profile, [devices[s].id for s in (failing, throttled, fine)])
    assert response.status_code == 204 and "2 of them wait for the retry time Apple asked for" in json.dumps(
        json.loads(response.headers["HX-Trigger"]))
    again = latest_batch()
    assert run_jobs() == []
    assert log.calls == [("POST", 1)]  # the device without a wait only
    tasks = tasks_of(again.id)
    now = timing.now()
    assert tasks[fine].state == "done"
    assert tasks[failing].state == "queued" and timedelta(hours=23) < tasks[failing].retry_at - now
    assert tasks[throttled].state == "queued" and tasks[throttled].retry_at - now <= timedelta(seconds=45)
    assert {t.state for t in tasks_of(first.id).values()} == {"superseded"}
    assert latest_batch().status == "waiting"
    queue = htmx.get("/assignments/retries").get_data(as_text=True)
    assert failing in queue and throttled in queue and "Apple asked to wait" in queue
    pick(htmx, labs, [devices[failing].id])  # moved meanwhile: still Apple's 24 hours
    moved = latest_batch()
    assert run_jobs() == [] and len(log.calls) == 1
    assert timedelta(hours=23) < tasks_of(moved.id)[failing].retry_at - timing.now()

    # Apple's wait for the throttled device is over: sent by the periodic job.
    clock(seconds=46)
    assert retry_due()["started"] == [again.id]
    assert run_jobs() == []
    assert log.calls == [("POST", 1), ("POST", 1)] and tasks_of(again.id)[throttled].state == "done"

    # Retry now sends the failed one before its 24 hours, after the warning.
    assert "24 hours" in htmx.get(f"/assignments/{moved.id}/retry").get_data(as_text=True)
    assert htmx.post(f"/assignments/{moved.id}/retry").status_code == 204
    assert run_jobs() == []
    assert len(log.calls) == 3 and tasks_of(moved.id)[failing].state == "done"
    assert devices_of(server.id)[failing].profile_id == labs.id


def test_a_call_failing_as_a_whole_never_shortens_the_wait_apple_asked_for_a_device(htmx, apple, paris, run_jobs,
                                                                                     clock):
    from portal.assignments.retries import retry_due

    server, profile = paris(devices=4)
    serials = sim_serials(apple)
    failing, fine = serials[0], serials[1]
    devices = devices_of(server.id)
    apple.state.set_fault(SIM, "assign_failed", [failing])
    pick(htmx, profile, [devices[failing].id])
    assert run_jobs() == []
    apple.state.set_fault(SIM, "assign_failed", None)

    apple.state.set_fault(SIM, "server_error", 50)  # the next request's call fails as a whole
    pick(htmx, profile, [devices[s].id for s in (failing, fine)])
    assert run_jobs() == []
    batch = latest_batch()
    tasks, now = tasks_of(batch.id), timing.now()
    assert "HTTP 500" in tasks[fine].detail and tasks[fine].retry_at - now <= timedelta(minutes=1)
    assert "Apple asked to wait" in tasks[failing].detail and tasks[failing].retry_at - now > timedelta(hours=23)

    apple.state.set_fault(SIM, "server_error", None)
    clock(minutes=2)
    retry_due()
    assert run_jobs() == []
    tasks = tasks_of(batch.id)
    assert tasks[fine].state == "done"
    assert tasks[failing].state == "queued" and tasks[failing].retry_at - timing.now() > timedelta(hours=23)


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


def test_whole_call_errors_keep_devices_queued_with_a_reason(htmx, apple, paris, run_jobs, clock):
    from portal.assignments.retries import retry_due

    server, profile = paris(devices=5)
    ids = [d.id for d in devices_of(server.id).values()]
    apple.state.set_fault(SIM, "server_error", 50)  # more than the client's own retries
    pick(htmx, profile, ids)
    assert run_jobs() == []
    batch = latest_batch()
    tasks = tasks_of(batch.id)
    assert batch.status == "waiting" and {t.state for t in tasks.values()} == {"queued"}
    assert len(tasks) == 5 and all(t.retry_at and "HTTP 500" in t.detail and "Sent again in 1 min" in t.detail
                                   for t in tasks.values())
    queue = htmx.get("/assignments/retries").get_data(as_text=True)
    assert "5 devices waiting for a retry" in queue

    apple.state.set_fault(SIM, "server_error", {"count": 50, "status": 429, "retry_after": 120})
    clock(minutes=2)
    retry_due()
    assert run_jobs() == []
    tasks = tasks_of(batch.id)
    assert all(t.state == "queued" and "limiting requests" in t.detail for t in tasks.values())
    assert all(timedelta(seconds=100) < t.retry_at - timing.now() <= timedelta(seconds=120) for t in tasks.values())

    apple.state.set_fault(SIM, "server_error", None)
    apple.state.set_fault(SIM, "terms_not_signed", True)
    clock(seconds=121)
    retry_due()
    assert run_jobs() == []
    assert server_named("Paris").apple_state == "terms_not_signed"
    assert all("terms and conditions" in t.detail for t in tasks_of(batch.id).values())

    # Retry now cannot help while Apple refuses the token: it says why and sends nothing.
    confirm = htmx.get(f"/assignments/{batch.id}/retry").get_data(as_text=True)
    assert "is Terms Not Accepted" in confirm and ">Retry now</button>" not in confirm
    refused = htmx.post(f"/assignments/{batch.id}/retry")
    assert refused.status_code == 204 and "Until then nothing can be sent to Apple" in refused.headers["HX-Trigger"]
    assert run_jobs() == [] and {t.state for t in tasks_of(batch.id).values()} == {"queued"}

    # Once a token check succeeds, the held devices are sent at once, not at the end of their 15-minute wait.
    apple.state.set_fault(SIM, "terms_not_signed", None)
    htmx.post(f"/servers/{server.id}/check")
    assert run_jobs() == []
    assert {t.state for t in tasks_of(batch.id).values()} == {"done"}
    assert latest_batch().status == "finished" and latest_batch().error_message is None


# ----- Retry now -------------------------------------------------------------------------------

def test_retry_now_for_a_request_and_for_the_whole_queue(htmx, apple, paris, run_jobs):
    server, profile = paris(devices=6)
    serials = sim_serials(apple)
    devices = devices_of(server.id)
    apple.state.set_fault(SIM, "assign_failed", serials[:2])
    pick(htmx, profile, [devices[s].id for s in serials[:3]])
    run_jobs()
    first = latest_batch()
    apple.state.set_fault(SIM, "throttle", {"serials": serials[3:4], "retry_after": 600})
    pick(htmx, profile, [devices[serials[3]].id])
    run_jobs()
    second = latest_batch()

    confirm = htmx.get(f"/assignments/{first.id}/retry")
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "2 devices of request" in html and "24 hours" in html
    apple.state.set_fault(SIM, "assign_failed", None)
    response = htmx.post(f"/assignments/{first.id}/retry")
    assert response.status_code == 204 and "closeModal" in response.headers["HX-Trigger"]
    assert run_jobs() == []
    assert {t.state for t in tasks_of(first.id).values()} == {"done"}
    assert tasks_of(second.id)[serials[3]].state == "throttled"  # another request: untouched

    apple.state.set_fault(SIM, "throttle", None)
    assert "1 device of the retry queue" in htmx.get("/assignments/retries/retry").get_data(as_text=True)
    assert htmx.post("/assignments/retries/retry").status_code == 204
    assert run_jobs() == []
    assert tasks_of(second.id)[serials[3]].state == "done"
    entries = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "assignment.retry_now")).scalars().all()
    assert len(entries) == 2 and all(e.actor == "alice" for e in entries)

    # Again from a second tab, the queue now empty: said so, nothing written, no job started.
    finished_at = latest_batch().finished_at
    for url, words in ((f"/assignments/{first.id}/retry", f"Nothing to retry in request #{first.id}"),
                       ("/assignments/retries/retry", "Nothing to retry: the retry queue is empty")):
        again = htmx.post(url)
        assert again.status_code == 204 and words in json.dumps(json.loads(again.headers["HX-Trigger"]))
    assert run_jobs() == []
    assert len(db.session.execute(select(ActivityEntry).where(
        ActivityEntry.action == "assignment.retry_now")).scalars().all()) == 2
    assert latest_batch().finished_at == finished_at


def test_a_requests_device_list_follows_the_job_and_a_retry_now(htmx, apple, paris, run_jobs):
    """Results appear in the request's list as the job stores them: each poll of the status panel while the
    job runs refreshes the list (batchProgress); after Retry now the panel polls again until that run ends."""
    server, profile = paris(devices=3)
    serials = sim_serials(apple)
    apple.state.set_fault(SIM, "assign_failed", serials[:1])
    pick(htmx, profile, [d.id for d in devices_of(server.id).values()])
    batch = latest_batch()
    page = htmx.get(f"/assignments/{batch.id}").get_data(as_text=True)
    tasks_div = re.search(r'<div id="batch-tasks"[^>]*>', page).group(0)
    assert "batchProgress from:body" in tasks_div
    polled = htmx.get(f"/assignments/{batch.id}/status")
    assert polled.status_code == 200 and json.loads(polled.headers["HX-Trigger"]) == {"batchProgress": True}

    assert run_jobs() == []
    final = htmx.get(f"/assignments/{batch.id}/status")
    assert final.status_code == 286 and "batchProgress" not in final.headers["HX-Trigger"]
    assert 'hx-trigger="batchRetried from:body"' in final.get_data(as_text=True)  # waits for a Retry now

    apple.state.set_fault(SIM, "assign_failed", None)
    retried = htmx.post(f"/assignments/{batch.id}/retry")
    assert "batchRetried" in retried.headers["HX-Trigger"]
    again = htmx.get(f"/assignments/{batch.id}/status")  # what batchRetried fetches
    assert again.status_code == 200 and 'hx-trigger="every 2s"' in again.get_data(as_text=True)
    assert run_jobs() == []
    assert htmx.get(f"/assignments/{batch.id}/status").status_code == 286
    assert latest_batch().status == "finished" and {t.state for t in tasks_of(batch.id).values()} == {"done"}


def test_retry_now_on_the_retry_queue_of_one_profile_sends_that_profiles_devices_only(htmx, apple, paris, run_jobs):
    """The profile page links to the retry queue shown for that profile: its Retry now is that queue's,
    as the count it warns about, not every profile's of every server."""
    server, sales = paris(devices=4)
    labs = configured_profile(server, "Labs")
    serials = sim_serials(apple)
    devices = devices_of(server.id)
    apple.state.set_fault(SIM, "assign_failed", serials[:2])
    pick(htmx, sales, [devices[serials[0]].id])
    pick(htmx, labs, [devices[serials[1]].id])
    assert run_jobs() == []
    apple.state.set_fault(SIM, "assign_failed", None)

    queue = htmx.get(f"/assignments/retries?profile={sales.id}").get_data(as_text=True)
    assert serials[0] in queue and serials[1] not in queue
    link = f"/assignments/retries/retry?profile={sales.id}"
    assert f'href="{link}"' in queue
    assert "Send 1 device of the retry queue of “Sales” to Apple" in htmx.get(link).get_data(as_text=True)
    log = CallLog(apple.app)
    response = htmx.post(link)
    assert response.status_code == 204
    assert "1 device of the retry queue of “Sales”" in json.loads(response.headers["HX-Trigger"])["toast"]["message"]
    assert run_jobs() == []
    assert log.calls == [("POST", 1)]
    after = devices_of(server.id)
    assert after[serials[0]].profile_id == sales.id and after[serials[1]].assignment_state == "failed"
    assert "Send 1 device of the retry queue to Apple" in htmx.get("/assignments/retries/retry").get_data(as_text=True)


def test_retry_now_without_javascript_is_a_page_and_a_redirect(admin_client, apple, paris, run_jobs):
    server, profile = paris(devices=3)
    serials = sim_serials(apple)
    apple.state.set_fault(SIM, "assign_failed", serials[:1])
    admin_client.environ_base.pop("HTTP_HX_REQUEST", None)
    admin_client.post(f"/profiles/{profile.id}/devices/add", data={"device": [str(devices_of(server.id)[serials[0]].id)]})
    run_jobs()
    batch = latest_batch()
    page = admin_client.get(f"/assignments/{batch.id}/retry")
    assert page.status_code == 200 and "<h1>Retry now</h1>" in page.get_data(as_text=True)
    done = admin_client.post(f"/assignments/{batch.id}/retry")
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/assignments/{batch.id}")


def test_the_navigation_marks_a_profiles_requests_as_enrollment_profiles_not_the_retry_queue(
        admin_client, apple, paris, run_jobs):
    """A request's page sits under its profile (the breadcrumbs say so): the retry queue was marked current."""
    server, profile = paris(devices=3)
    admin_client.environ_base.pop("HTTP_HX_REQUEST", None)
    admin_client.post(f"/profiles/{profile.id}/devices/add", data={"device": [str(devices_of(server.id)[
        sim_serials(apple)[0]].id)]})
    run_jobs()
    batch = latest_batch()
    for url in (f"/assignments/{batch.id}", f"/assignments/{batch.id}/retry", f"/profiles/{profile.id}/devices",
                f"/profiles/{profile.id}/devices/add", f"/profiles/{profile.id}/devices/remove"):
        page = admin_client.get(url).get_data(as_text=True)
        current = re.findall(r'<a href="[^"]*" aria-current="page">([^<]+)</a>', page)
        assert current == ["Enrollment Profiles"], (url, current)
    for url in ("/assignments/retries", "/assignments/retries/retry"):
        page = admin_client.get(url).get_data(as_text=True)
        assert re.findall(r'<a href="[^"]*" aria-current="page">([^<]+)</a>', page) == ["Assignment retry queue"], url


def test_a_requests_breadcrumbs_pass_through_the_servers_enrollment_profiles(admin_client, apple, paris, run_jobs):
    """As the profile's own page does: Device Assignment › Paris › Enrollment Profiles › Sales › Add Devices #N."""
    server, profile = paris(devices=3)
    admin_client.environ_base.pop("HTTP_HX_REQUEST", None)
    admin_client.post(f"/profiles/{profile.id}/devices/add", data={"device": [str(devices_of(server.id)[
        sim_serials(apple)[0]].id)]})
    run_jobs()
    batch = latest_batch()
    page = admin_client.get(f"/assignments/{batch.id}").get_data(as_text=True)
    trail = page[page.index('<nav class="breadcrumbs"'):]
    trail = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", trail[:trail.index("</nav>")]))
    assert trail.strip() == f"Device Assignment › Paris › Enrollment Profiles › {profile.name} › Add Devices #{batch.id}"
    assert f'<a href="/servers/{server.id}/profiles">Enrollment Profiles</a>' in page


# ----- Select the Managed Devices: search, filters, select all matching ---------------------

def test_pop_up_search_filters_and_select_all_matching(htmx, apple, paris, run_jobs):
    server, profile = paris(devices=30)
    other = configured_profile(server, "Labs")
    devices = devices_of(server.id)
    by_family: dict[str, list[Device]] = {}
    for d in devices.values():
        by_family.setdefault(d.device_family, []).append(d)
    family, members = max(by_family.items(), key=lambda kv: len(kv[1]))
    assert 0 < len(members) < 30

    # A device already on another profile is listed, with that profile's name.
    pick(htmx, other, [members[0].id])
    run_jobs()
    html = htmx.get(f"/profiles/{profile.id}/devices/add").get_data(as_text=True)
    row = re.search(r"<tr>(?:(?!</tr>).)*%s(?:(?!</tr>).)*</tr>" % members[0].serial_number, html, re.S).group(0)
    assert "Labs" in row

    listed = htmx.get(f"/profiles/{profile.id}/devices/add", query_string={"family": family},
                      headers={"HX-Target": "pick-list"})
    part = listed.get_data(as_text=True)
    assert listed.status_code == 200 and part.lstrip().startswith('<div id="pick-list" ')  # only the list
    assert all(m.serial_number in part for m in members)
    assert not any(d.serial_number in part for d in devices.values() if d.device_family != family)
    assert f"Select all {len(members)} device" in part and "matching the filter" in part

    target = members[1].serial_number
    searched = htmx.get(f"/profiles/{profile.id}/devices/add", query_string={"q": target, "device": str(members[2].id)},
                        headers={"HX-Target": "pick-list"}).get_data(as_text=True)
    assert target in searched and members[3].serial_number not in searched
    assert f'<input type="hidden" name="device" value="{members[2].id}">' in searched  # ticked elsewhere: kept

    none = htmx.get(f"/profiles/{profile.id}/devices/add", query_string={"profile": str(other.id)},
                    headers={"HX-Target": "pick-list"}).get_data(as_text=True)
    assert members[0].serial_number in none and members[1].serial_number not in none

    # All devices matching "family, no profile yet": the one on Labs is left out.
    assert pick(htmx, profile, all_matching="1", family=family, profile="none").status_code == 204
    assert latest_batch().total == len(members) - 1
    run_jobs()
    after = devices_of(server.id)
    assert {s for s, d in after.items() if d.profile_id == profile.id} == {m.serial_number for m in members[1:]}
    assert after[members[0].serial_number].profile_id == other.id


def test_add_devices_by_pasted_serial_numbers(htmx, apple, paris, run_jobs):
    """A column pasted from a spreadsheet (heading, any case, commas, blank lines, repeats) adds its
    devices to the ticked ones."""
    server, profile = paris(devices=8)
    serials = sorted(devices_of(server.id))
    ticked = devices_of(server.id)[serials[0]].id
    pasted = f"Serial Number\n{serials[1].lower()}\n\n{serials[2]}, {serials[3]};{serials[1]}\t{serials[0]}\n"
    assert "Add by serial number" in htmx.get(f"/profiles/{profile.id}/devices/add").get_data(as_text=True)
    assert pick(htmx, profile, [ticked], serials=pasted).status_code == 204
    assert latest_batch().total == 4
    assert run_jobs() == []
    after = devices_of(server.id)
    assert {s for s, d in after.items() if d.profile_id == profile.id} == set(serials[:4])

    # With "Select all matching": the matching devices and the pasted ones.
    other = configured_profile(server, "Labs")
    family = after[serials[4]].device_family
    matching = {s for s, d in after.items() if d.device_family == family}
    assert pick(htmx, other, all_matching="1", family=family, serials=serials[5]).status_code == 204
    assert latest_batch().total == len(matching | {serials[5]})


def test_pasted_serial_numbers_that_are_not_devices_of_the_server_change_nothing(htmx, apple, paris):
    server, profile = paris(devices=3)
    serials = sorted(devices_of(server.id))
    pasted = f"{serials[0]}\nNOTMINE1\nnotmine2"  # (a hyphen is no serial number's: its line is named as such)
    response = pick(htmx, profile, serials=pasted)
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "These 2 serial numbers are not a device of Paris: NOTMINE1, NOTMINE2." in text
    assert f">{pasted}</textarea>" in text  # kept for the admin to fix
    assert 'aria-describedby="pick-serials-help pick-serials-error"' in text and "<details class=\"paste-serials\" open" in text
    assert db.session.execute(select(func.count()).select_from(AssignmentBatch)).scalar_one() == 0

    many = "\n".join(f"S{i:07d}" for i in range(10_001))
    response = pick(htmx, profile, serials=many)
    assert response.status_code == 422 and "10,001 serial numbers were pasted; at most 10,000" in response.get_data(
        as_text=True)
    assert db.session.execute(select(func.count()).select_from(AssignmentBatch)).scalar_one() == 0


def test_nothing_selected_or_profile_not_configured_is_refused_plainly(htmx, apple, paris):
    server, profile = paris(devices=3)
    empty = pick(htmx, profile, [])
    assert empty.status_code == 422 and "No device was selected" in empty.get_data(as_text=True)
    stranger = pick(htmx, profile, [999999])
    assert stranger.status_code == 422
    draft = EnrollmentProfile(server_id=server.id, name="Draft", status=NOT_CONFIGURED)
    db.session.add(draft)
    db.session.commit()
    popup = htmx.get(f"/profiles/{draft.id}/devices/add").get_data(as_text=True)
    assert "not configured at Apple yet" in popup and ">OK<" not in popup
    refused = pick(htmx, draft, [d.id for d in devices_of(server.id).values()])
    assert refused.status_code == 422 and "not configured at Apple yet" in refused.get_data(as_text=True)
    section = htmx.get(f"/profiles/{draft.id}/devices").get_data(as_text=True)
    assert "disabled" in section and "Configure profile" in section
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(AssignmentBatch)).scalar_one() == 0


# ----- Remove Devices, moving between profiles, superseding ----------------------------------

def test_remove_devices_by_pasted_serial_numbers(htmx, apple, paris, run_jobs):
    server, profile = paris(devices=6)
    serials = sorted(devices_of(server.id))
    pick(htmx, profile, [devices_of(server.id)[s].id for s in serials[:4]])
    run_jobs()
    url = f"/profiles/{profile.id}/devices/remove"

    # One of them is not associated with the profile, another is no device of the server: nothing changes.
    refused = htmx.post(url, data={"serials": f"{serials[0]}\n{serials[5]}"})
    assert refused.status_code == 422
    assert f"This serial number is not associated with “Sales”: {serials[5]}." in refused.get_data(as_text=True)
    refused = htmx.post(url, data={"serials": f"{serials[0]} NOPE"})
    assert refused.status_code == 422 and "not a device of Paris: NOPE." in refused.get_data(as_text=True)
    assert latest_batch().action == "assign"
    too_many = htmx.post(url, data={"serials": "\n".join(f"S{i:07d}" for i in range(10_001))})
    assert too_many.status_code == 422
    assert "at most 10,000 can be removed at once. Split the list." in too_many.get_data(as_text=True)
    assert latest_batch().action == "assign"

    # Ticked rows and pasted serials together.
    ticked = devices_of(server.id)[serials[0]].id
    assert htmx.post(url, data={"device": [str(ticked)], "serials": f"{serials[1].lower()},{serials[2]}"}).status_code == 204
    batch = latest_batch()
    assert (batch.action, batch.total) == ("remove", 3)
    assert run_jobs() == []
    after = devices_of(server.id)
    assert {s for s, d in after.items() if d.profile_id == profile.id} == {serials[3]}


def test_one_device_or_serial_number_is_spoken_of_in_the_singular(htmx, apple, paris, run_jobs):
    """"Remove “Sales” from 1 device at Apple? They will no longer get…" and "…if Apple Business Manager assigned
    them a moment ago" about one serial number read wrong."""
    server, profile = paris(devices=3)
    devices = devices_of(server.id)
    one = sorted(devices)[0]
    pick(htmx, profile, [devices[one].id])
    run_jobs()
    confirm = htmx.get(f"/profiles/{profile.id}/devices/remove", query_string={"device": [str(devices[one].id)]})
    text = " ".join(confirm.get_data(as_text=True).split())
    assert "from 1 device at Apple? It will no longer get an enrollment profile during setup, so it will not" in text
    assert "until you add it to a profile again." in text and "They will" not in text
    refused = " ".join(pick(htmx, profile, serials="NOPE").get_data(as_text=True).split())
    assert "Remove it from the list, or synchronize Paris first if Apple Business Manager assigned it a moment ago." \
        in refused


def test_remove_devices_with_nothing_chosen_says_so_next_to_the_serial_numbers(htmx, apple, paris, run_jobs):
    """With nothing ticked, the pasted serial numbers are the pop-up's only field: the message sits next to it."""
    from tests.servers_helpers import field_error

    server, profile = paris(devices=2)
    pick(htmx, profile, [d.id for d in devices_of(server.id).values()])
    run_jobs()
    nothing = htmx.post(f"/profiles/{profile.id}/devices/remove", data={"serials": " \n"})
    assert nothing.status_code == 422
    assert "Select the devices to remove first" in field_error(nothing.get_data(as_text=True), "remove-serials")
    assert db.session.execute(select(func.count()).select_from(AssignmentBatch)
                              .where(AssignmentBatch.action == "remove")).scalar_one() == 0


def test_remove_devices_with_per_device_results(htmx, apple, paris, run_jobs):
    server, profile = paris(devices=5)
    serials = sim_serials(apple)
    devices = devices_of(server.id)
    pick(htmx, profile, [d.id for d in devices.values()])
    run_jobs()
    section = htmx.get(f"/profiles/{profile.id}/devices").get_data(as_text=True)
    assert "5 devices associated" in section and "Remove Devices" in section

    nothing = htmx.get(f"/profiles/{profile.id}/devices/remove")  # nothing ticked: serial numbers can be pasted
    assert nothing.status_code == 200 and '<details class="paste-serials" open' in nothing.get_data(as_text=True)
    nothing = htmx.post(f"/profiles/{profile.id}/devices/remove", data={"serials": " \n"})
    assert nothing.status_code == 422 and "Select the devices to remove first" in nothing.get_data(as_text=True)
    chosen = [devices[s].id for s in serials[:3]]
    confirm = htmx.get(f"/profiles/{profile.id}/devices/remove", query_string={"device": [str(i) for i in chosen]})
    html = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "from 3 devices" in html and serials[0] in html
    apple.state.set_fault(SIM, "assign_failed", serials[2:3])
    response = htmx.post(f"/profiles/{profile.id}/devices/remove", data={"device": [str(i) for i in chosen]})
    assert response.status_code == 204
    assert run_jobs() == []
    batch = latest_batch()
    tasks = tasks_of(batch.id)
    assert batch.action == "remove" and (tasks[serials[0]].result, tasks[serials[2]].result) == ("SUCCESS", "FAILED")
    after = devices_of(server.id)
    assert after[serials[0]].profile_id is None and after[serials[0]].assignment_state is None
    assert after[serials[2]].profile_id == profile.id and after[serials[2]].assignment_state == "failed"
    assert after[serials[3]].profile_id == profile.id
    assert apple.state.device(serials[0])["profile_status"] == "removed"
    assert "4 devices associated" not in htmx.get(f"/profiles/{profile.id}/devices").get_data(as_text=True)
    assert "3 devices associated" in htmx.get(f"/profiles/{profile.id}/devices").get_data(as_text=True)


def test_moving_a_device_to_another_profile_and_newer_requests_supersede_older_ones(htmx, apple, paris, run_jobs):
    server, sales = paris(devices=4)
    labs = configured_profile(server, "Labs")
    serials = sim_serials(apple)
    device = devices_of(server.id)[serials[0]]
    pick(htmx, sales, [device.id])
    run_jobs()
    assert devices_of(server.id)[serials[0]].profile_id == sales.id

    # One action moves it: assigning Labs replaces Sales, at Apple and here.
    pick(htmx, labs, [device.id])
    run_jobs()
    assert devices_of(server.id)[serials[0]].profile_id == labs.id
    assert apple.state.device(serials[0])["profile_uuid"] == labs.apple_profile_uuid
    assert serials[0] not in htmx.get(f"/profiles/{sales.id}/devices").get_data(as_text=True)

    # Two requests before the worker runs: the newer one wins, the older is superseded.
    pick(htmx, sales, [device.id])
    older = latest_batch()
    pick(htmx, labs, [device.id])
    newer = latest_batch()
    task = tasks_of(older.id)[serials[0]]
    assert task.state == "superseded" and f"#{newer.id}" in task.detail
    assert run_jobs() == []
    assert devices_of(server.id)[serials[0]].profile_id == labs.id
    assert tasks_of(newer.id)[serials[0]].state == "done"
    assert "Superseded" in htmx.get(f"/assignments/{older.id}").get_data(as_text=True)


def test_drift_a_profile_removed_or_replaced_outside_the_portal_is_flagged(htmx, apple, paris, run_jobs):
    """Apple's profile for a device changes outside this portal (another tool with the server's token,
    a re-configure): the next sync shows the device will not enroll with the profile set up here."""
    from portal.apple_link import client_for
    from portal.models import ServerConfiguration

    server, profile = paris(devices=4)
    configuration = ServerConfiguration(name="Production MDM", url="https://mdm.example.com/enroll")
    db.session.add(configuration)
    db.session.flush()
    server.configuration_id = configuration.id
    db.session.commit()
    serials = sorted(devices_of(server.id))
    pick(htmx, profile, [d.id for d in devices_of(server.id).values()])
    assert run_jobs() == []
    assert "will fail to enroll" not in htmx.get(f"/servers/{server.id}").get_data(as_text=True)

    apple_side = client_for(server)
    apple_side.remove_profile([serials[0]])
    elsewhere = apple_side.define_profile({"profile_name": "Elsewhere", "url": "https://other.example.com"})
    apple_side.assign_profile(elsewhere["profile_uuid"], [serials[1]])
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []

    removed, replaced, fine = (devices_of(server.id)[s] for s in serials[:3])
    assert removed.profile_id == replaced.profile_id == profile.id  # still associated here
    page = htmx.get(f"/devices/{removed.id}").get_data(as_text=True)
    assert "Apple holds no enrollment profile for it (profile status: removed)" in page
    page = htmx.get(f"/devices/{replaced.id}").get_data(as_text=True)
    assert f"Apple holds another enrollment profile for it than the current “Sales” (UUID {elsewhere['profile_uuid']})" in page
    assert "Enrolls with a profile not as set up here" in page
    assert "Will enroll automatically" in htmx.get(f"/devices/{fine.id}").get_data(as_text=True)
    server_page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    assert "1 device will fail to enroll automatically" in server_page
    listed = htmx.get(f"/servers/{server.id}/devices", query_string={"enroll": "no"}).get_data(as_text=True)
    assert serials[0] in listed and serials[1] not in listed and serials[2] not in listed

    # Add Devices again repairs both.
    pick(htmx, profile, [removed.id, replaced.id])
    assert run_jobs() == []
    assert "will fail to enroll" not in htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    assert "Will enroll automatically" in htmx.get(f"/devices/{replaced.id}").get_data(as_text=True)


# ----- default profile, re-assignment ----------------------------------------------------------

def test_default_profile_assigns_new_devices(htmx, apple, paris, run_jobs):
    from portal.assignments.auto import assign_to_default_profile

    server, profile = paris(devices=6)
    serials = sim_serials(apple)
    assert assign_to_default_profile(server.id, serials[:2]) == []  # no default profile: nothing
    profile.is_default = True
    db.session.commit()
    [batch] = assign_to_default_profile(server.id, serials[:2] + ["NOT-A-DEVICE"])
    assert (batch.origin, batch.actor, batch.total) == ("default profile", "system", 2)
    assert assign_to_default_profile(server.id, ["NOT-A-DEVICE"]) == []
    assert run_jobs() == []
    after = devices_of(server.id)
    assert {s for s, d in after.items() if d.profile_id == profile.id} == set(serials[:2])
    profile.status = "configuring"
    db.session.commit()
    assert assign_to_default_profile(server.id, serials[2:3]) == []  # not configured: no default


def test_devices_new_in_a_sync_get_the_default_profile(htmx, apple, paris, run_jobs):
    """The sync engine hands the serials that appeared to the default profile (end to end)."""
    server, profile = paris(devices=5)
    profile.is_default = True
    db.session.commit()
    existing = set(devices_of(server.id))
    new = apple.state.add_devices(SIM, 3)
    assert htmx.post(f"/servers/{server.id}/sync").status_code == 200
    assert run_jobs() == []  # the sync, then the batch it queued
    after = devices_of(server.id)
    assert {s for s, d in after.items() if d.profile_id == profile.id} == set(new)  # not the existing fleet
    assert all(after[s].profile_id is None for s in existing)
    assert {apple.state.device(s)["profile_uuid"] for s in new} == {profile.apple_profile_uuid}
    batch = db.session.execute(select(AssignmentBatch).where(AssignmentBatch.origin == "default profile")).scalar_one()
    assert (batch.total, batch.succeeded, batch.actor) == (3, 3, "system")


def test_devices_new_in_a_sync_get_the_default_profile_of_their_family(htmx, apple, paris, run_jobs):
    """iPhones to the profile for iPhones, every other family to the profile for every family."""
    server, everything = paris(devices=5)
    everything.is_default = True
    phones = configured_profile(server, "Phones")
    phones.is_default, phones.default_families = True, ["iPhone"]
    db.session.commit()
    existing = set(devices_of(server.id))
    new = apple.state.add_devices(SIM, 24)
    assert htmx.post(f"/servers/{server.id}/sync").status_code == 200
    assert run_jobs() == []  # the sync, then the batches it queued
    after = devices_of(server.id)
    iphones = {s for s in new if after[s].device_family == "iPhone"}
    others = set(new) - iphones
    assert iphones and others  # both kinds arrived: each route is exercised
    assert {s for s, d in after.items() if d.profile_id == phones.id} == iphones
    assert {s for s, d in after.items() if d.profile_id == everything.id} == others
    assert all(after[s].profile_id is None for s in existing)
    assert {apple.state.device(s)["profile_uuid"] for s in iphones} == {phones.apple_profile_uuid}
    batches = db.session.execute(select(AssignmentBatch).where(AssignmentBatch.origin == "default profile")
                                 .order_by(AssignmentBatch.id)).scalars().all()
    assert [(b.profile_id, b.total) for b in batches] == [(everything.id, len(others)), (phones.id, len(iphones))]


def test_a_family_whose_default_profile_is_not_configured_waits_rather_than_taking_the_other_default(
        htmx, apple, paris, run_jobs):
    from portal.assignments.auto import assign_to_default_profile

    server, everything = paris(devices=30)
    everything.is_default = True
    phones = EnrollmentProfile(server_id=server.id, name="Phones", is_default=True, default_families=["iPhone"])
    db.session.add(phones)
    db.session.commit()
    devices = devices_of(server.id)
    iphones = [s for s, d in devices.items() if d.device_family == "iPhone"]
    others = [s for s, d in devices.items() if d.device_family != "iPhone"]
    assert iphones and others
    [batch] = assign_to_default_profile(server.id, iphones + others)
    assert (batch.profile_id, batch.total) == (everything.id, len(others))
    warning = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "assignment.default_skipped")
                                 ).scalar_one()
    count = len(iphones)
    assert warning.summary.startswith(f"{count:,} new iPhone device{'s' if count != 1 else ''} of Paris did not get "
                                      "the default profile “Phones”: it is not configured at Apple.")


def test_devices_new_in_a_fetch_after_the_cursor_expired_get_the_default_profile(htmx, apple, paris, run_jobs):
    """Apple's cursors expire after about a week: the fetch that follows finds the known fleet
    again and the devices that arrived meanwhile, which are new arrivals all the same."""
    server, profile = paris(devices=5)
    profile.is_default = True
    db.session.commit()
    existing = set(devices_of(server.id))
    apple.state.advance_clock(8 * 86400)
    new = apple.state.add_devices(SIM, 3)
    assert htmx.post(f"/servers/{server.id}/sync").status_code == 200
    assert run_jobs() == []
    after = devices_of(server.id)
    assert {s for s, d in after.items() if d.profile_id == profile.id} == set(new)
    assert all(after[s].profile_id is None for s in existing)
    runs = server_named("Paris").sync_runs
    assert runs[0].kind == "full" and runs[0].added == 3  # it was a full fetch


def test_devices_new_in_pages_stored_before_an_apple_error_still_get_the_default_profile(
        htmx, apple, paris, run_jobs, monkeypatch):
    """A sync that fails keeps the pages it wrote: their new devices are queued for the default
    profile then, since the retry finds them known and no longer new."""
    from portal.apple import errors
    from portal.apple.client import DEPClient
    from portal.servers import sync as engine

    server, profile = paris(devices=5)
    profile.is_default = True
    db.session.commit()
    new = apple.state.add_devices(SIM, 3)
    monkeypatch.setattr(engine, "PAGE_LIMIT", 2)
    monkeypatch.setattr(engine, "COMMIT_EVERY_S", 3600)  # the first page waits for a later commit
    real, calls = DEPClient.sync_devices, {"n": 0}

    def second_page_fails(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise errors.TransientError(status=503)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DEPClient, "sync_devices", second_page_fails)
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    run = server_named("Paris").sync_runs[0]
    assert (run.status, run.retries, run.added) == ("queued", 1, 2)  # the first page is kept; retried later

    from jobs.sync import sync_server

    assert sync_server(run.id)["status"] == "succeeded"  # the retry, come its time
    assert run_jobs() == []
    after = devices_of(server.id)
    assert {s for s, d in after.items() if d.profile_id == profile.id} == set(new)


class _WorkerKilled(BaseException):
    """What `kill -9` does to a job body: nothing after it runs, not even `except Exception`."""


def test_devices_found_by_a_worker_killed_before_queuing_the_default_profile_get_it_next_sync(
        htmx, apple, paris, run_jobs, monkeypatch):
    """The page with the new devices is committed, then the worker dies before it queues their
    default profile: the next synchronization queues it (the serials were committed with the page)."""
    from portal.servers import sync as engine
    from portal.servers.sync import run_sync

    server, profile = paris(devices=5)
    profile.is_default = True
    db.session.commit()
    new = apple.state.add_devices(SIM, 3)
    htmx.post(f"/servers/{server.id}/sync")
    run = server_named("Paris").sync_runs[0]
    job = TakenJob(run.job_id)
    real = engine._assign_default_profile

    def killed(*args, **kwargs):
        raise _WorkerKilled()

    monkeypatch.setattr(engine, "_assign_default_profile", killed)
    with pytest.raises(_WorkerKilled):
        run_sync(run.id)
    job.killed()
    db.session.rollback()
    assert set(server_named("Paris").awaiting_default_profile) == set(new)
    assert all(devices_of(server.id)[s].profile_id is None for s in new)  # stored, not assigned

    monkeypatch.setattr(engine, "_assign_default_profile", real)
    assert htmx.post(f"/servers/{server.id}/sync").status_code == 200  # the dead run is closed, a new one starts
    assert run_jobs() == []
    after = devices_of(server.id)
    assert {s for s, d in after.items() if d.profile_id == profile.id} == set(new)
    assert server_named("Paris").awaiting_default_profile is None
    batch = db.session.execute(select(AssignmentBatch).where(AssignmentBatch.origin == "default profile")).scalar_one()
    assert (batch.total, batch.succeeded) == (3, 3)


def test_a_default_profile_not_configured_is_reported_not_skipped_silently(htmx, apple, paris, run_jobs):
    server, profile = paris(devices=5)
    profile.is_default, profile.status = True, "changed"
    db.session.commit()
    assert "not applied until configured" in htmx.get(f"/profiles/{profile.id}").get_data(as_text=True)
    new = apple.state.add_devices(SIM, 2)
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    assert all(devices_of(server.id)[s].profile_id is None for s in new)
    assert db.session.execute(select(func.count()).select_from(AssignmentBatch).where(
        AssignmentBatch.origin == "default profile")).scalar_one() == 0
    entry = db.session.execute(select(ActivityEntry).where(
        ActivityEntry.action == "assignment.default_skipped")).scalar_one()
    assert entry.level == "warning" and "2 new devices of Paris" in entry.summary and "Sales" in entry.summary
    assert "did not get the default profile" in htmx.get("/activity/").get_data(as_text=True)


def test_reassign_profile_devices_after_a_new_uuid(htmx, apple, paris, run_jobs):
    from portal.apple_link import client_for
    from portal.assignments.services import reassign_profile_devices

    server, profile = paris(devices=4)
    serials = sim_serials(apple)
    pick(htmx, profile, [d.id for s, d in devices_of(server.id).items() if s in serials[:3]])
    run_jobs()
    profile.apple_profile_uuid = client_for(server).define_profile(
        {"profile_name": "Sales", "url": "https://mdm.example.com/v2"})["profile_uuid"]
    db.session.commit()
    batch = reassign_profile_devices(profile, "alice")
    assert (batch.origin, batch.total) == ("reassign", 3)
    assert run_jobs() == []
    assert {apple.state.device(s)["profile_uuid"] for s in serials[:3]} == {profile.apple_profile_uuid}


# ----- pages and 404s -------------------------------------------------------------------------

def test_pages_without_javascript_and_empty_states(admin_client, apple, paris):
    server, profile = paris(devices=3)
    admin_client.environ_base.pop("HTTP_HX_REQUEST", None)
    page = admin_client.get(f"/profiles/{profile.id}/devices/add")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<h1>Select the Managed Devices</h1>" in html
    section = admin_client.get(f"/profiles/{profile.id}/devices").get_data(as_text=True)
    assert "No devices yet" in section and "Add Devices" in section
    done = admin_client.post(f"/profiles/{profile.id}/devices/add",
                             data={"device": [str(d.id) for d in devices_of(server.id).values()]})
    assert done.status_code == 302 and re.search(r"/assignments/\d+$", done.headers["Location"])
    results = admin_client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Add Devices #" in results and 'hx-trigger="every 2s"' in results


@pytest.mark.parametrize("url", ["/assignments/999999", "/assignments/999999/status", "/assignments/999999/retry",
                                 "/profiles/999999/devices", "/profiles/999999/devices/add",
                                 "/profiles/999999/devices/remove", "/profiles/999999/devices/requests"])
def test_missing_ids_are_404_pages(admin_client, url):
    response = admin_client.get(url)
    assert response.status_code == 404 and "Page not found" in response.get_data(as_text=True)


def test_a_profiles_device_count_leaves_out_devices_apple_no_longer_assigns(htmx, apple, paris, run_jobs):
    """Profile list, status card and Delete dialog count the devices its device list shows."""
    server, profile = paris(devices=6)
    assert pick(htmx, profile, all_matching="1").status_code == 204
    assert run_jobs() == []
    released = sim_serials(apple, 2)
    apple.state.release_devices(released)
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    assert "4 devices associated" in htmx.get(f"/profiles/{profile.id}/devices").get_data(as_text=True)
    card = htmx.get(f"/profiles/{profile.id}").get_data(as_text=True)
    assert re.search(r"<dt>Associated devices</dt><dd>4</dd>", card)
    dialog = htmx.get(f"/profiles/{profile.id}/delete").get_data(as_text=True)
    assert re.search(r"<strong>4 devices</strong> are associated", dialog)


def test_ok_with_only_devices_no_longer_on_the_server_says_so(htmx, apple, paris, run_jobs):
    server, profile = paris(devices=3)
    gone = devices_of(server.id)[sim_serials(apple, 1)[0]]
    apple.state.release_devices([gone.serial_number])
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    response = pick(htmx, profile, [gone.id])
    assert response.status_code == 422
    assert "None of the ticked devices is still assigned to Paris" in response.get_data(as_text=True)
    assert db.session.execute(select(func.count()).select_from(AssignmentBatch)).scalar_one() == 0


def test_a_request_page_reads_the_words_of_its_action(htmx, paris, run_jobs):
    server, profile = paris(devices=2)
    pick(htmx, profile, [d.id for d in devices_of(server.id).values()][:1])
    batch = latest_batch()
    assert run_jobs() == []
    page = " ".join(htmx.get(f"/assignments/{batch.id}").get_data(as_text=True).split())
    assert re.search(rf"› Add Devices #{batch.id}</nav>", page)  # the breadcrumb names it as the heading does
    tabs = page.split('<nav class="tabs" aria-label="Show">')[1].split("</nav>")[0]
    assert ">Assigned</a>" in tabs and "Succeeded" not in tabs  # the tab reads like its rows' badges
    popup = htmx.get(f"/profiles/{profile.id}/devices/add").get_data(as_text=True)
    assert ">Device family</label>" in popup and '<span class="muted">None</span>' in popup  # as in Managed Devices
    assert "No (won’t enroll)" in htmx.get("/devices").get_data(as_text=True)  # as the table's badge says


def test_a_device_apple_keeps_throttling_waits_longer_each_time_and_fills_no_log(htmx, apple, paris, run_jobs, clock):
    from portal.assignments.retries import retry_due

    server, profile = paris(devices=3)
    throttled, fine = sorted(devices_of(server.id))[:2]
    apple.state.set_fault(SIM, "throttle", {"serials": [throttled], "retry_after": 45})
    pick(htmx, profile, [devices_of(server.id)[s].id for s in (throttled, fine)])
    batch = latest_batch()
    assert run_jobs() == []
    waits = []
    for _ in range(4):
        task = tasks_of(batch.id)[throttled]
        assert task.state == "throttled"
        waits.append(round((task.retry_at - task.updated_at).total_seconds()))  # as stored: no clock drift
        clock(seconds=waits[-1] + 1)
        assert retry_due()["requeued"] == 1
        assert run_jobs() == []
    assert waits == [45, 90, 180, 360]  # Apple's wait, then twice as long after each attempt
    assert "attempt 5, retried after 720 s" in tasks_of(batch.id)[throttled].detail
    summaries = db.session.execute(select(ActivityEntry.summary).where(
        ActivityEntry.action == "assignment.assign_finished")).scalars().all()
    assert len(summaries) == 1 and "1 assigned" in summaries[0]  # the retries throttled again add no line

    apple.state.set_fault(SIM, "throttle", None)
    clock(seconds=721)
    assert retry_due()["requeued"] == 1 and run_jobs() == []
    assert tasks_of(batch.id)[throttled].state == "done"
    assert db.session.execute(select(func.count()).select_from(ActivityEntry).where(
        ActivityEntry.action == "assignment.assign_finished")).scalar_one() == 2  # the retry that assigned it


@pytest.mark.parametrize("retry_after, attempts, wait", [
    (45, 1, 45), (45, 2, 90), (None, 1, 60), (None, 3, 240), (60, 10, 3600), (7200, 1, 7200), (7200, 4, 7200)])
def test_throttled_wait_starts_at_apples_and_doubles_up_to_an_hour(retry_after, attempts, wait):
    assert timing.throttled_wait(retry_after, attempts) == wait


def test_the_retry_queue_links_its_devices_and_profiles_and_refreshes_its_retry_now(htmx, apple, paris, run_jobs):
    server, profile = paris(devices=2)
    throttled = sorted(devices_of(server.id))[0]
    device = devices_of(server.id)[throttled]
    apple.state.set_fault(SIM, "throttle", [throttled])
    pick(htmx, profile, [device.id])
    assert run_jobs() == []
    page = " ".join(htmx.get("/assignments/retries").get_data(as_text=True).split())
    assert "<h1>Assignment retry queue</h1>" in page  # the menu's words
    assert f'<a href="/devices/{device.id}"><code>{throttled}</code></a>' in page
    assert f'<a href="/profiles/{profile.id}">{profile.name}</a>' in page
    # Retry now is part of what the table's refresh replaces, so it goes once nothing waits any more.
    table = page.split('<div id="retry-table"')[1]
    assert "Retry now</a>" in table and "Retry now</a>" not in page.split('<div id="retry-table"')[0]


def test_a_profile_apple_no_longer_knows_waits_for_configure_instead_of_hourly_calls(htmx, apple, paris, run_jobs,
                                                                                      clock):
    from portal.assignments.retries import retry_due

    server, profile = paris(devices=2)
    profile.apple_profile_uuid = "0D0C0B0A09080706050403020100FFEE"  # deleted at Apple, say
    db.session.commit()
    device = sorted(devices_of(server.id).values(), key=lambda d: d.serial_number)[0]
    log = CallLog(apple.app)
    pick(htmx, profile, [device.id])
    batch = latest_batch()
    assert run_jobs() == []
    assert log.calls == [("POST", 1)]
    task = tasks_of(batch.id)[device.serial_number]
    assert task.state == "queued" and "does not know the profile “Sales” any more" in task.detail
    db.session.expire_all()
    changed = db.session.get(EnrollmentProfile, profile.id)
    assert changed.status == "changed" and "profile not found" in changed.status_detail
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "profile.unknown_at_apple")).scalar_one()
    assert entry.level == "warning" and "Configure profile again" in entry.summary

    clock(minutes=10)
    retry_due()
    assert run_jobs() == []
    assert log.calls == [("POST", 1)]  # no call to Apple until the profile is configured again
    assert tasks_of(batch.id)[device.serial_number].state == "queued"


def test_select_all_matching_keeps_the_devices_ticked_under_another_filter(htmx, paris):
    server, profile = paris(devices=12)
    by_family: dict[str, list[Device]] = {}
    for device in sorted(devices_of(server.id).values(), key=lambda d: d.serial_number):
        by_family.setdefault(device.device_family, []).append(device)
    family, members = max(by_family.items(), key=lambda item: len(item[1]))
    elsewhere = next(d for f, ds in by_family.items() if f != family for d in ds)
    # Ticked while the list showed another family, then every device of this family selected: both are sent.
    assert pick(htmx, profile, [elsewhere.id], all_matching="1", family=family).status_code == 204
    assert latest_batch().total == len(members) + 1
    assert elsewhere.serial_number in tasks_of(latest_batch().id)


def test_select_all_of_the_associated_devices_counts_one_device_in_the_singular(htmx, apple, paris, run_jobs):
    server, profile = paris(devices=2)
    pick(htmx, profile, [devices_of(server.id)[sim_serials(apple)[0]].id])
    assert run_jobs() == []
    section = " ".join(htmx.get(f"/profiles/{profile.id}/devices").get_data(as_text=True).split())
    assert "Select all 1 associated device</label>" in section


def test_a_pasted_line_that_is_not_serial_numbers_is_named_as_pasted_with_its_number(htmx, apple, paris, run_jobs):
    """"bad serial!" split on its space would be named as two serial numbers the admin never typed ("BAD",
    "SERIAL!"): the line is named as pasted, with its number, next to the list, which is kept."""
    from tests.servers_helpers import field_error

    server, profile = paris(devices=3)
    serials = sorted(devices_of(server.id))
    pick(htmx, profile, [devices_of(server.id)[serials[0]].id])
    assert run_jobs() == []
    before = latest_batch().id
    pasted = f"Serial Number\n{serials[0]}\n\nbad serial!\n{serials[1]}; C02 (cracked screen)"
    expected = ("These 2 lines have something other than serial numbers: line 4 “bad serial!”, line 5 "
                f"“{serials[1]}; C02 (cracked screen)”.")
    for url, data, field in [(f"/profiles/{profile.id}/devices/add", {}, "pick-serials"),
                             (f"/profiles/{profile.id}/devices/remove", {}, "remove-serials"),
                             (f"/servers/{server.id}/devices/release", {"confirmation": "RELEASE"}, "serials")]:
        response = htmx.post(url, data={"serials": pasted, **data})
        html = response.get_data(as_text=True)
        assert response.status_code == 422, url
        assert field_error(html, field).startswith(expected), url
        assert "BAD" not in html and "SERIAL!" not in html
        kept = re.search(r"<textarea[^>]*>\r?\n?(.*?)</textarea>", html, re.S).group(1)
        assert kept == pasted, url  # kept as typed
    assert latest_batch().id == before

    # Every separator accepted before still is: commas, semicolons, tabs and spaces, on one line or several.
    assert htmx.post(f"/profiles/{profile.id}/devices/add",
                     data={"serials": f"{serials[1]},{serials[2].lower()}\t{serials[0]} ; {serials[1]}"}).status_code == 204
    assert latest_batch().total == 3
    # A column copied from a CSV file keeps its quotes: "Serial Number", "C02…", straight or curly.
    assert htmx.post(f"/profiles/{profile.id}/devices/add",
                     data={"serials": f'"Serial Number"\n"{serials[1]}"\n\'{serials[2]}\'\n“{serials[0]}”'}).status_code == 204
    assert latest_batch().total == 3


def test_the_retry_queue_refreshes_its_next_retry_times_while_devices_wait(htmx, apple, paris, run_jobs):
    """"Next retry: in 1 minute" went stale on an open page: the table polls every 30 s while devices wait, so
    the relative times are drawn again, and stops (286) once the queue is empty."""
    server, profile = paris(devices=2)
    throttled = sorted(devices_of(server.id))[0]
    apple.state.set_fault(SIM, "throttle", {"serials": [throttled], "retry_after": 600})
    pick(htmx, profile, [devices_of(server.id)[throttled].id])
    assert run_jobs() == []
    page = " ".join(htmx.get("/assignments/retries").get_data(as_text=True).split())
    assert re.search(r'<div id="retry-table" hx-get="/assignments/retries\?" hx-trigger="every 30s"', page)
    assert "in 10 minutes" in page

    # Nine minutes later (the wait moved instead of the clock: relative times are drawn from the real one).
    db.session.execute(update(AssignmentTask).where(AssignmentTask.serial_number == throttled).values(
        retry_at=datetime.now(timezone.utc) + timedelta(seconds=70)))
    db.session.commit()
    poll = htmx.get("/assignments/retries", headers={"HX-Trigger": "retry-table"})
    assert poll.status_code == 200 and "every 30s" in poll.get_data(as_text=True)
    assert "in 1 minute" in poll.get_data(as_text=True)

    apple.state.set_fault(SIM, "throttle", None)
    assert htmx.post("/assignments/retries/retry").status_code == 204  # Retry now, warning accepted
    assert run_jobs() == []
    empty = htmx.get("/assignments/retries", headers={"HX-Trigger": "retry-table"})
    assert empty.status_code == 286 and "Nothing to retry" in empty.get_data(as_text=True)
    assert "hx-trigger=\"every" not in empty.get_data(as_text=True)
    # The first visit to an empty queue is an ordinary page.
    assert htmx.get("/assignments/retries").status_code == 200
