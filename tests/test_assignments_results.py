"""Add Devices through the web UI against the Apple simulator: Apple's per-device results (success, not
accessible, failed, throttled), the waits Apple asks for and the retries after them, whole-call errors that keep
devices queued with a reason, a device Apple keeps throttling, a profile Apple no longer knows."""
from __future__ import annotations

import json
import re
from datetime import timedelta
from html import unescape as unescape_html

import pytest
from sqlalchemy import func, select

from portal.assignments import timing
from portal.extensions import db
from portal.models import ActivityEntry, EnrollmentProfile
from tests.assignments_helpers import (SIM, CallLog, configured_profile, devices_of, latest_batch, pick, sim_serials,
                                       tasks_of)
from tests.servers_helpers import server_named
from tests.assignments_helpers import clock, paris  # noqa: F401 - fixtures


def _filtered(client, query: str) -> list[str]:
    """Serial numbers on the Managed Devices list with this filter."""
    return re.findall(r"<td><a class=.device-link.[^>]*><code>([^<]+)</code></a></td>", client.get(f"/devices?{query}").get_data(as_text=True))


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
    assert len(tasks) == 5 and all(t.retry_at for t in tasks.values())
    # Apple's words without their "try again in a few minutes" (the portal does), and no time that goes stale.
    assert {t.detail for t in tasks.values()} == {
        "Apple's device enrollment service failed (HTTP 500). Sent again automatically after a wait of 1 min."}
    queue = htmx.get("/assignments/retries").get_data(as_text=True)
    assert "5 devices waiting for a retry" in queue
    held = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "assignment.assign_held")).scalar_one()
    assert held.level == "warning" and held.summary == (
        f"Add Devices “Sales”, request #{batch.id}: Apple's device enrollment service failed (HTTP 500). Sent again "
        "automatically after a wait of 1 min.")

    apple.state.set_fault(SIM, "server_error", {"count": 50, "status": 429, "retry_after": 120})
    clock(minutes=2)
    retry_due()
    assert run_jobs() == []
    tasks = tasks_of(batch.id)
    assert all(t.state == "queued" for t in tasks.values())
    assert {t.detail for t in tasks.values()} == {  # said once, not "Apple is limiting requests: Apple is limiting…"
        "Apple is limiting requests from this server and asked to wait 120 s: sent again automatically then."}
    assert all(timedelta(seconds=100) < t.retry_at - timing.now() <= timedelta(seconds=120) for t in tasks.values())
    assert len(db.session.execute(select(ActivityEntry).where(  # once, not at every retry
        ActivityEntry.action == "assignment.assign_held")).all()) == 1

    apple.state.set_fault(SIM, "server_error", None)
    apple.state.set_fault(SIM, "terms_not_signed", True)
    clock(seconds=121)
    retry_due()
    assert run_jobs() == []
    assert server_named("Paris").apple_state == "terms_not_signed"
    assert all("terms and conditions" in t.detail for t in tasks_of(batch.id).values())

    # Retry now cannot help while Apple refuses the token: it says why and sends nothing.
    confirm = htmx.get(f"/assignments/{batch.id}/retry").get_data(as_text=True)
    assert "Paris's token status is Terms Not Accepted" in unescape_html(confirm) and ">Retry now</button>" not in confirm
    refused = htmx.post(f"/assignments/{batch.id}/retry")
    assert refused.status_code == 204 and "Until then nothing can be sent to Apple" in refused.headers["HX-Trigger"]
    assert run_jobs() == [] and {t.state for t in tasks_of(batch.id).values()} == {"queued"}

    # Once a token check succeeds, the held devices are sent at once, not at the end of their 15-minute wait.
    apple.state.set_fault(SIM, "terms_not_signed", None)
    htmx.post(f"/servers/{server.id}/check")
    assert run_jobs() == []
    assert {t.state for t in tasks_of(batch.id).values()} == {"done"}
    assert latest_batch().status == "finished" and latest_batch().error_message is None


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


def test_a_requests_result_tabs_count_their_devices_and_follow_the_retries(htmx, apple, paris, run_jobs, clock):
    """Which tab holds the failed devices was only found by opening each one."""
    server, profile = paris(devices=6)
    serials = sim_serials(apple)
    apple.state.set_fault(SIM, "throttle", {"serials": [serials[0]], "retry_after": 30})
    devices = devices_of(server.id)
    pick(htmx, profile, [devices[s].id for s in serials[:3]])
    batch = latest_batch()

    def tab_counts(url: str) -> dict[str, str]:
        html = htmx.get(url, headers={"HX-Target": "batch-tasks"}).get_data(as_text=True)
        tabs = html.split('<nav class="tabs"', 1)[1].split("</nav>", 1)[0]
        return dict(re.findall(r'>([A-Z][a-z ]+) <span class="tab-count">([\d,]+)</span></a>', tabs))

    assert tab_counts(f"/assignments/{batch.id}") == {"All": "3", "Assigned": "0", "Not accessible": "0", "Failed": "0",
                                                     "Throttled": "0", "Queued": "3", "Superseded": "0"}
    run_jobs()
    assert tab_counts(f"/assignments/{batch.id}?state=throttled") == {
        "All": "3", "Assigned": "2", "Not accessible": "0", "Failed": "0", "Throttled": "1", "Queued": "0",
        "Superseded": "0"}
    device_page = unescape_html(htmx.get(f"/devices/{devices[serials[0]].id}").get_data(as_text=True))
    assert (f"its Add Devices to “Sales” (request #{batch.id}) was throttled by Apple and is sent again after Apple's "
            "wait, and it enrolls automatically once Apple accepts it. Retry now on the request's page") in device_page
    apple.state.set_fault(SIM, "throttle", None)
    clock(seconds=31)
    from portal.assignments.retries import retry_due
    retry_due()
    run_jobs()
    assert tab_counts(f"/assignments/{batch.id}")["Assigned"] == "3"


def test_a_finished_request_with_devices_in_the_retry_queue_says_how_many_are_left_to_retry(htmx, apple, paris,
                                                                                              run_jobs, clock):
    """"Finished" alone read as if nothing were left to do while a device waited 24 hours for its retry."""
    server, profile = paris(devices=4)
    serials = sim_serials(apple)
    apple.state.set_fault(SIM, "assign_failed", [serials[1]])
    devices = devices_of(server.id)
    pick(htmx, profile, [devices[s].id for s in serials[:2]])
    batch = latest_batch()
    run_jobs()

    def badge() -> str:
        html = htmx.get(f"/assignments/{batch.id}/status").get_data(as_text=True)
        return re.search(r'<p data-announce="[^"]*">\s*<span class="badge ([^"]*)">([^<]+)</span>', html).group(2, 1)

    assert badge() == ("Finished · 1 to retry", "badge-warning")
    apple.state.set_fault(SIM, "assign_failed", None)
    clock(hours=24, seconds=1)
    from portal.assignments.retries import retry_due
    retry_due()
    run_jobs()
    assert badge() == ("Finished", "badge-ok")


def test_deleting_a_profile_closes_its_devices_in_the_retry_queue(htmx, apple, paris, run_jobs):
    """They stayed in the retry queue for a day, and Retry now offered to send them, until a job found the profile
    gone; the Delete confirmation never mentioned them."""
    server, profile = paris(devices=4)
    serials = sim_serials(apple)
    apple.state.set_fault(SIM, "assign_failed", serials[:2])
    pick(htmx, profile, [devices_of(server.id)[s].id for s in serials[:3]])
    assert run_jobs() == []
    batch = latest_batch()
    assert "Finished · 2 to retry" in htmx.get(f"/assignments/{batch.id}/status").get_data(as_text=True)

    confirm = " ".join(htmx.get(f"/profiles/{profile.id}/delete").get_data(as_text=True).split())
    assert '<strong>2 devices</strong> wait in the <a href="/assignments/retries">retry queue</a> to get this profile' in confirm
    assert htmx.post(f"/profiles/{profile.id}/delete").status_code == 204
    tasks = tasks_of(batch.id)
    assert {tasks[s].state for s in serials[:2]} == {"superseded"} and tasks[serials[2]].state == "done"
    assert all(tasks[s].retry_at is None for s in serials[:2])
    assert "Nothing to retry" in htmx.get("/assignments/retries").get_data(as_text=True)
    status = htmx.get(f"/assignments/{batch.id}/status").get_data(as_text=True)
    assert "to retry" not in status and "Superseded" in status
    assert "Nothing is waiting for a retry" in htmx.get(f"/assignments/{batch.id}/retry").get_data(as_text=True)
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "profile.deleted")).scalar_one()
    assert "2 devices of the retry queue were closed, not sent" in entry.summary
    assert run_jobs() == [] and apple.state.device(serials[0])["profile_status"] != "assigned"


def test_deleting_a_profile_whose_add_devices_is_being_sent_says_so(htmx, apple, paris, run_jobs):
    """Deleted while its request was at Apple, the profile went, and Apple assigned the devices of the call in
    flight all the same; the confirmation said "nothing is assigned with it"."""
    server, profile = paris(devices=4)
    serials = sim_serials(apple)
    pick(htmx, profile, [devices_of(server.id)[s].id for s in serials[:3]])  # queued: no worker has run it yet
    batch = latest_batch()
    confirm = " ".join(htmx.get(f"/profiles/{profile.id}/delete").get_data(as_text=True).split())
    assert (f'<a href="/assignments/{batch.id}">Add Devices request #{batch.id}</a> is being sent to Apple: '
            "<strong>3 devices</strong> not answered yet.") in confirm
    assert "wait for the request to finish, use <strong>Remove Devices</strong>, then delete" in confirm
    assert run_jobs() == []
    after = htmx.get(f"/profiles/{profile.id}/delete").get_data(as_text=True)
    assert "being sent to Apple" not in after  # answered: its devices are associated, as the page says above


def test_a_device_that_left_the_server_at_apple_leaves_the_retry_queue_at_the_next_sync(htmx, apple, paris,
                                                                                         run_jobs, clock):
    """A throttled device moved to another MDM server was still sent when its wait was over (Apple: NOT_ACCESSIBLE).
    The synchronization that finds it removed closes its request's retry, saying why."""
    server, profile = paris(devices=4)
    serials = sim_serials(apple)
    moving, staying = serials[0], serials[1]
    apple.state.set_fault(SIM, "throttle", {"serials": [moving, staying], "retry_after": 30})
    devices = devices_of(server.id)
    pick(htmx, profile, [devices[s].id for s in (moving, staying)])
    batch = latest_batch()
    assert run_jobs() == []
    assert {t.state for t in tasks_of(batch.id).values()} == {"throttled"}

    apple.state.create_server("Other MDM")
    apple.state.move_devices([moving], "Other MDM")
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    closed = tasks_of(batch.id)[moving]
    assert closed.state == "superseded" and closed.retry_at is None
    assert closed.detail.startswith("Not sent: the device is no longer assigned to Paris at Apple")
    assert tasks_of(batch.id)[staying].state == "throttled"  # still the server's: still retried
    entry = db.session.execute(select(ActivityEntry).where(
        ActivityEntry.action == "assignment.closed_for_removed")).scalar_one()
    assert entry.summary.startswith("1 device taken out of the retry queue: it is no longer assigned to Paris")

    apple.state.set_fault(SIM, "throttle", None)
    clock(seconds=31)
    log = CallLog(apple.app)
    from portal.assignments.retries import retry_due
    retry_due()
    assert run_jobs() == []
    assert log.calls == [("POST", 1)]  # only the device still on the server
    assert tasks_of(batch.id)[staying].state == "done"
