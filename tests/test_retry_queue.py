"""The Assignment retry queue as an admin with several managed servers reads it: which server each device waits
for, Apple's waits written the way the rest of the portal writes numbers, and Retry now naming the servers whose
token keeps their devices waiting."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from portal.extensions import db
from portal.models import ActivityEntry, AssignmentTask
from tests.servers_helpers import add_simulated_server
from tests.assignments_helpers import configured_profile, devices_of, latest_batch, pick, tasks_of
from tests.assignments_helpers import clock  # noqa: F401 - a fixture
from tests.test_release import release


def _rows(html: str) -> dict[str, str]:
    """The queue's rows by serial number, as text."""
    rows = re.findall(r"<tr>(.*?)</tr>", html, re.S)
    text = {}
    for row in rows:
        serial = re.search(r"<code>([^<]+)</code>", row)
        if serial:
            text[serial.group(1)] = " ".join(re.sub(r"<[^>]+>", " ", row).split())
    return text


def test_the_retry_queue_names_the_managed_server_of_each_device(htmx, apple, run_jobs):
    """A release has no profile: with two servers, its rows said "—" and nothing told them apart."""
    paris = add_simulated_server(htmx, apple, 2, run_jobs=run_jobs, name="Paris", apple_server="Paris MDM")
    lyon = add_simulated_server(htmx, apple, 2, run_jobs=run_jobs, name="Lyon", apple_server="Lyon MDM")
    paris_serial, lyon_serial = sorted(devices_of(paris.id))[0], sorted(devices_of(lyon.id))[0]
    apple.state.set_fault("Paris MDM", "assign_failed", [paris_serial])
    apple.state.set_fault("Lyon MDM", "assign_failed", [lyon_serial])
    assert release(htmx, paris.id, [paris_serial]).status_code == 204
    assert release(htmx, lyon.id, [lyon_serial]).status_code == 204
    assert run_jobs() == []

    html = htmx.get("/assignments/retries").get_data(as_text=True)
    assert '<th scope="col">Managed server</th>' in html
    rows = _rows(html)
    assert "Paris" in rows[paris_serial] and "Lyon" not in rows[paris_serial]
    assert "Lyon" in rows[lyon_serial] and "Paris" not in rows[lyon_serial]
    assert f'href="/servers/{paris.id}"' in html and f'href="/servers/{lyon.id}"' in html


def test_apples_throttle_wait_has_a_thousands_separator(htmx, apple, run_jobs):
    """"asked to wait 3600 s; retried after 3,600 s": the same number written two ways in one sentence."""
    server = add_simulated_server(htmx, apple, 2, run_jobs=run_jobs)
    profile = configured_profile(server)
    serial = sorted(devices_of(server.id))[0]
    apple.state.set_fault("Paris MDM", "throttle", {"serials": [serial], "retry_after": 3600})
    assert pick(htmx, profile, [devices_of(server.id)[serial].id]).status_code == 204
    assert run_jobs() == []

    detail = tasks_of(latest_batch().id)[serial].detail
    assert "asked to wait 3,600 s" in detail, detail
    assert "asked to wait 3,600 s" in htmx.get("/assignments/retries").get_data(as_text=True)


def test_retry_now_of_the_whole_queue_names_the_servers_whose_token_holds_their_devices(htmx, apple, run_jobs):
    """Retry now of one request says nothing can be sent while its server's token does not work; Retry now of the
    whole queue counted those devices among the ones "sent again now", and they only went back to waiting."""
    server = add_simulated_server(htmx, apple, 2, run_jobs=run_jobs)
    profile = configured_profile(server)
    serial = sorted(devices_of(server.id))[0]
    apple.state.set_fault("Paris MDM", "assign_failed", [serial])
    assert pick(htmx, profile, [devices_of(server.id)[serial].id]).status_code == 204
    assert run_jobs() == []
    warning = " ".join(htmx.get("/assignments/retries/retry").get_data(as_text=True).split())
    assert "Send 1 device of the retry queue to Apple again now?" in warning and "stay held" not in warning

    server.token_expiry = datetime.now(timezone.utc) - timedelta(days=1)
    db.session.commit()
    warning = " ".join(htmx.get("/assignments/retries/retry").get_data(as_text=True).split())
    assert "The devices of Paris stay held: its token status is Expired." in warning
    assert "use Renew a server" in warning
    # Nothing else waits: nothing to send, and it says so rather than "Send 1 device … again now?".
    assert "Nothing can be sent to Apple now." in warning and "Send 1 device" not in warning
    assert "Retry now</button>" not in warning
    response = htmx.post("/assignments/retries/retry")
    assert response.status_code == 204 and "Nothing was sent. The devices of Paris stay held" in response.headers[
        "HX-Trigger"] and "Sending" not in response.headers["HX-Trigger"]
    assert tasks_of(latest_batch().id)[serial].state == "failed"  # still waiting for its 24 hours
    assert not db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "assignment.retry_now")).first()


def test_stop_retrying_takes_one_device_out_of_the_queue_for_good(htmx, apple, run_jobs, clock):
    """A device Apple answers FAILED was retried every 24 hours for ever, with no way to give up on it alone."""
    from html import unescape

    from sqlalchemy import select

    from portal.models import ActivityEntry

    paris = add_simulated_server(htmx, apple, 3, run_jobs=run_jobs, name="Paris", apple_server="Paris MDM")
    profile = configured_profile(paris)
    devices = devices_of(paris.id)
    stuck, other = sorted(devices)[:2]
    apple.state.set_fault("Paris MDM", "assign_failed", [stuck, other])
    pick(htmx, profile, [devices[stuck].id, devices[other].id])
    assert run_jobs() == []
    batch = latest_batch()
    task = tasks_of(batch.id)[stuck]
    queue = htmx.get("/assignments/retries").get_data(as_text=True)
    assert f'href="/assignments/tasks/{task.id}/stop"' in queue and f'aria-label="Stop retrying {stuck}"' in queue

    confirm = " ".join(htmx.get(f"/assignments/tasks/{task.id}/stop").get_data(as_text=True).split())
    assert f"Stop retrying <code>{stuck}</code> of" in confirm and "Apple's last answer (FAILED)" in confirm
    assert "was answered FAILED by Apple and is sent again after 24 hours" in unescape(
        htmx.get(f"/devices/{devices[stuck].id}").get_data(as_text=True))
    response = htmx.post(f"/assignments/tasks/{task.id}/stop")
    assert response.status_code == 204 and "assignmentsChanged" in response.headers["HX-Trigger"]
    after = tasks_of(batch.id)
    assert after[stuck].state == "superseded" and after[stuck].retry_at is None
    assert after[stuck].detail == "Not retried: alice stopped the retries (Apple's last answer: FAILED)."
    assert after[other].state == "failed"  # the other one still waits
    assert stuck not in _rows(htmx.get("/assignments/retries").get_data(as_text=True))
    page = unescape(htmx.get(f"/devices/{devices[stuck].id}").get_data(as_text=True))  # it said "it will be retried"
    assert "will be retried" not in page and "it is not retried any more (its retries were stopped" in page
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "assignment.retries_stopped")
                               ).scalar_one()
    assert entry.actor == "alice" and stuck in entry.summary
    assert entry.object_label == f"Add Devices #{batch.id}"  # the log's Object column read "—"

    # A day later only the other one is sent again; asking to stop the first again changes nothing.
    apple.state.set_fault("Paris MDM", "assign_failed", None)
    clock(hours=25)
    from portal.assignments.retries import retry_due
    retry_due()
    assert run_jobs() == []
    final = tasks_of(batch.id)
    assert final[stuck].state == "superseded" and final[other].state == "done"
    again = " ".join(htmx.post(f"/assignments/tasks/{task.id}/stop").get_data(as_text=True).split())
    # It said "it is being sent to Apple now, or Apple answered meanwhile": neither was true.
    assert ("is no longer waiting for a retry: Not retried: alice stopped the retries (Apple's last answer: FAILED)."
            in unescape(again)) and "being sent to Apple now" not in again
    assert htmx.post(f"/assignments/tasks/{task.id}/stop").status_code == 422
    answered = " ".join(htmx.get(f"/assignments/tasks/{final[other].id}/stop").get_data(as_text=True).split())
    assert "is no longer waiting for a retry: Apple answered meanwhile (SUCCESS)." in answered
    # The profile page's summary of the request adds up: it read "2 devices · 1 assigned".
    summary = " ".join(htmx.get(f"/profiles/{profile.id}/devices/requests").get_data(as_text=True).split())
    assert f"Add Devices #{batch.id}</a> · 2 devices · 1 assigned, 1 superseded (stopped or replaced by a newer request)" \
        in summary
    assert htmx.get("/assignments/tasks/999999/stop").status_code == 404


def test_stop_retrying_leaves_alone_a_device_its_request_may_be_sending(htmx, apple, run_jobs):
    """A device held after a call failed as a whole is sent again by its request's job, which does not mark it while
    it is at Apple: closed meanwhile, Apple's SUCCESS was thrown away (assigned at Apple, "not retried" here)."""
    from portal.assignments.runner import run_batch
    from portal.models import AssignmentBatch

    paris = add_simulated_server(htmx, apple, 3, run_jobs=run_jobs, name="Paris", apple_server="Paris MDM")
    profile = configured_profile(paris)
    serial = sorted(devices_of(paris.id))[0]
    apple.state.set_fault("Paris MDM", "server_error", 50)  # the call fails as a whole: held queued for a while
    pick(htmx, profile, [devices_of(paris.id)[serial].id])
    assert run_jobs() == []
    apple.state.set_fault("Paris MDM", "server_error", None)
    batch = latest_batch()
    task = tasks_of(batch.id)[serial]
    assert task.state == "queued" and task.retry_at is not None
    assert serial in _rows(htmx.get("/assignments/retries").get_data(as_text=True))
    summary = " ".join(htmx.get(f"/profiles/{profile.id}/devices/requests").get_data(as_text=True).split())
    assert f"Add Devices #{batch.id}</a> · 1 device · 0 assigned, 1 waiting to be sent" in summary

    # Its wait is over and the retry pass started the request's job again: the call may be at Apple now.
    db.session.get(AssignmentTask, task.id).retry_at = datetime.now(timezone.utc) - timedelta(seconds=1)
    db.session.get(AssignmentBatch, batch.id).status = "queued"
    db.session.commit()
    confirm = " ".join(htmx.get(f"/assignments/tasks/{task.id}/stop").get_data(as_text=True).split())
    assert "is no longer waiting for a retry: it is being sent to Apple now" in confirm
    assert "Stop retrying</button>" not in confirm
    response = htmx.post(f"/assignments/tasks/{task.id}/stop")
    assert response.status_code == 422 and tasks_of(batch.id)[serial].state == "queued"

    run_batch(batch.id)  # Apple's answer is stored
    assert tasks_of(batch.id)[serial].state == "done" and devices_of(paris.id)[serial].profile_id == profile.id

    # A device held in a request whose job has ended can be stopped, as before.
    other = sorted(devices_of(paris.id))[1]
    apple.state.set_fault("Paris MDM", "server_error", 50)
    pick(htmx, profile, [devices_of(paris.id)[other].id])
    assert run_jobs() == []
    held = tasks_of(latest_batch().id)[other]
    assert latest_batch().status not in ("queued", "running") and held.state == "queued"
    assert htmx.post(f"/assignments/tasks/{held.id}/stop").status_code == 204
    assert tasks_of(held.batch_id)[other].state == "superseded"


def test_a_request_whose_device_was_stopped_before_apple_answered_says_so(htmx, apple, run_jobs):
    """Apple failed every call, then the admin stopped the device: the request read "1 of 1 device answered by Apple",
    "Superseded 1 (a newer request replaced them)" and kept "Sent again automatically after a wait" once finished."""
    paris = add_simulated_server(htmx, apple, 3, run_jobs=run_jobs, name="Paris", apple_server="Paris MDM")
    profile = configured_profile(paris)
    serial = sorted(devices_of(paris.id))[0]
    apple.state.set_fault("Paris MDM", "server_error", 50)
    pick(htmx, profile, [devices_of(paris.id)[serial].id])
    assert run_jobs() == []
    batch = latest_batch()
    held = tasks_of(batch.id)[serial]
    confirm = " ".join(htmx.get(f"/assignments/tasks/{held.id}/stop").get_data(as_text=True).split())
    assert "Apple has not answered for it yet" in confirm and "(none)" not in confirm
    assert "Sent again automatically" in htmx.get(f"/assignments/{batch.id}").get_data(as_text=True)
    assert htmx.post(f"/assignments/tasks/{held.id}/stop").status_code == 204

    page = " ".join(htmx.get(f"/assignments/{batch.id}").get_data(as_text=True).split())
    assert "0 of 1 device answered by Apple, 1 closed without being sent" in page
    assert "1 no longer retried: an admin used Stop retrying)" in page and "newer request" not in page
    assert "Sent again automatically" not in page and latest_batch().status == "finished"
