"""Retry now and the assignment retry queue through the web UI against the Apple simulator: Retry now for a
request, for the whole queue and for one profile's queue, with and without JavaScript; the queue page following
Retry now, linking its devices and profiles and refreshing its times; a request's device list following its job;
the navigation and breadcrumbs of request pages."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update

from portal.extensions import db
from portal.models import ActivityEntry, AssignmentTask
from tests.assignments_helpers import (SIM, CallLog, configured_profile, devices_of, latest_batch, pick, sim_serials,
                                       tasks_of)
from tests.assignments_helpers import paris  # noqa: F401 - a fixture


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
    # Written when Retry now is asked for: what is queued, not "sent" (a revoked token may yet hold it).
    assert entries[0].summary == (f"Retry now: 2 devices of request #{first.id} queued to be sent again before "
                                  "Apple's wait was over (the request's page has what Apple answers)")

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


def _one_device_added_without_htmx(admin_client, apple, paris, run_jobs):
    """Paris's profile Sales with one device added by a plain form post, answered: (server, profile, the batch)."""
    server, profile = paris(devices=3)
    admin_client.environ_base.pop("HTTP_HX_REQUEST", None)
    admin_client.post(f"/profiles/{profile.id}/devices/add", data={"device": [str(devices_of(server.id)[
        sim_serials(apple)[0]].id)]})
    run_jobs()
    return server, profile, latest_batch()


def test_the_navigation_marks_a_profiles_requests_as_enrollment_profiles_not_the_retry_queue(
        admin_client, apple, paris, run_jobs):
    """A request's page sits under its profile (the breadcrumbs say so): the retry queue was marked current."""
    server, profile, batch = _one_device_added_without_htmx(admin_client, apple, paris, run_jobs)
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
    server, profile, batch = _one_device_added_without_htmx(admin_client, apple, paris, run_jobs)
    page = admin_client.get(f"/assignments/{batch.id}").get_data(as_text=True)
    trail = page[page.index('<nav class="breadcrumbs"'):]
    trail = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", trail[:trail.index("</nav>")]))
    assert trail.strip() == f"Device Assignment › Paris › Enrollment Profiles › {profile.name} › Add Devices #{batch.id}"
    assert f'<a href="/servers/{server.id}/profiles">Enrollment Profiles</a>' in page


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
