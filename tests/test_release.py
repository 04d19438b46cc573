"""Release Devices (Apple's disown) through the web UI against the Apple simulator: the typed confirmation,
per-device results (released, not accessible, failed then retried), devices leaving the server, the pop-up
filled from a device's page, and pasted serial numbers that are not devices of the server."""
from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from html import unescape as unescape_html

import pytest
from sqlalchemy import select

from portal.assignments import timing
from portal.extensions import db
from portal.models import ActivityEntry, AssignmentBatch, AssignmentTask, Device
from tests.servers_helpers import add_simulated_server

SIM = "Paris MDM"


@pytest.fixture
def paris(htmx, apple, run_jobs):
    return add_simulated_server(htmx, apple, 8, run_jobs=run_jobs, apple_server=SIM)


def _serials(apple) -> list[str]:
    return [d["serial"] for d in apple.state.devices(SIM, limit=100)]


def _device(serial: str) -> Device:
    db.session.expire_all()
    return db.session.execute(select(Device).where(Device.serial_number == serial)).scalar_one()


def release(client, server_id: int, serials, confirmation="RELEASE"):
    return client.post(f"/servers/{server_id}/devices/release",
                       data={"serials": "\n".join(serials), "confirmation": confirmation})


def test_release_devices_with_mixed_results_then_the_failed_one_after_24_hours(htmx, apple, paris, run_jobs,
                                                                                monkeypatch):
    serials = _serials(apple)
    ok, gone, failing, kept = serials[:4]
    apple.state.create_server("Other MDM")
    apple.state.move_devices([gone], "Other MDM")  # the portal has not synchronized the move yet
    apple.state.set_fault(SIM, "assign_failed", [failing])

    popup = htmx.get(f"/servers/{paris.id}/devices/release").get_data(as_text=True)
    assert "Release Devices" in popup and "out of your organization for good" in popup
    assert 'data-read-serials="#serials"' in popup  # a file of serial numbers is read into the box
    response = release(htmx, paris.id, [ok, gone, failing])
    assert response.status_code == 204, response.get_data(as_text=True)
    batch = db.session.execute(select(AssignmentBatch)).scalar_one()
    assert response.headers["HX-Redirect"] == f"/assignments/{batch.id}"  # to the results, pop-up or not
    assert "Releasing 3 devices of Paris from Apple Business Manager" in htmx.get(response.headers["HX-Redirect"]) \
        .get_data(as_text=True)
    assert (batch.action, batch.profile_id, batch.total) == ("release", None, 3)
    assert run_jobs() == []

    db.session.expire_all()
    results = {t.serial_number: (t.state, t.result) for t in db.session.execute(select(AssignmentTask)).scalars()}
    assert results == {ok: ("done", "SUCCESS"), gone: ("not_accessible", "NOT_ACCESSIBLE"),
                       failing: ("failed", "FAILED")}
    assert _device(ok).removed_at is not None and _device(ok).profile_id is None  # no longer a device of Paris
    released_page = " ".join(htmx.get(f"/devices/{_device(ok).id}").get_data(as_text=True).split())
    assert f"The device was released from Apple Business Manager by Release Devices #{batch.id}" in released_page
    assert "no longer assigned to this server" not in released_page
    # Apple will not act on the moved device for Paris any more: it leaves Paris's devices (its sync would say so).
    assert _device(gone).removed_at is not None and _device(kept).removed_at is None
    assert apple.state.device(ok)["removed"] and not apple.state.device(kept)["removed"]
    page = htmx.get(f"/assignments/{batch.id}").get_data(as_text=True)
    assert "Release Devices #" in page and "Released" in page and "Release from Apple Business Manager" in page
    summary = db.session.execute(select(ActivityEntry.summary).where(
        ActivityEntry.action == "assignment.release_finished")).scalar_one()
    assert summary == f"Release Devices, request #{batch.id}: 1 released, 1 not accessible, 1 failed (retried in 24 h)"
    listed = htmx.get(f"/servers/{paris.id}/devices").get_data(as_text=True)
    assert ok not in listed and gone not in listed and kept in listed

    # The FAILED device waits Apple's 24 hours in the retry queue, then goes again.
    queue = htmx.get("/assignments/retries").get_data(as_text=True)
    assert failing in queue and f"Release Devices #{batch.id}</a>" in queue
    apple.state.set_fault(SIM, "assign_failed", None)
    real = timing.now
    monkeypatch.setattr(timing, "now", lambda: real() + timedelta(hours=24, minutes=1))
    from jobs.assignments import retry_due

    retry_due()
    assert run_jobs() == []
    assert _device(failing).removed_at is not None
    assert "to Add Devices, Remove Devices or Release Devices." in htmx.get("/assignments/retries").get_data(as_text=True)


def test_a_release_sent_again_after_its_answer_was_lost_still_takes_the_device_off_the_server(
        htmx, apple, paris, run_jobs):
    """Apple released the device but its answer never came back (a killed worker, a timeout): the resend hears
    NOT_ACCESSIBLE, and the device must not stay listed waiting for a full synchronization."""
    serial, kept = _serials(apple)[:2]
    assert release(htmx, paris.id, [serial]).status_code == 204
    batch = db.session.execute(select(AssignmentBatch)).scalar_one()
    apple.state.release_devices([serial], silent=True)  # what the lost call did at Apple: no change announced
    db.session.execute(AssignmentTask.__table__.update().where(AssignmentTask.batch_id == batch.id).values(
        state="sending", attempts=1))  # the worker died before storing the answer
    db.session.commit()
    counted = htmx.get(f"/servers/{paris.id}/devices").get_data(as_text=True)
    assert serial in counted
    assert run_jobs() == []

    task = db.session.execute(select(AssignmentTask)).scalar_one()
    assert (task.state, task.result) == ("not_accessible", "NOT_ACCESSIBLE")
    assert "an earlier try of this release whose answer was lost released it" in task.detail
    assert _device(serial).removed_at is not None and _device(kept).removed_at is None
    listed = htmx.get(f"/servers/{paris.id}/devices").get_data(as_text=True)
    assert serial not in listed and kept in listed
    assert "Managed Devices (7)" in " ".join(htmx.get(f"/servers/{paris.id}").get_data(as_text=True).split())


@pytest.mark.parametrize("confirmation", ["", "yes", "RELEASE ALL"])
def test_release_needs_the_typed_word_and_keeps_the_list(htmx, apple, paris, confirmation):
    serial = _serials(apple)[0]
    response = release(htmx, paris.id, [serial], confirmation)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Type RELEASE to confirm: Apple does not undo a release." in html
    assert serial in html  # nothing typed is lost
    assert db.session.execute(select(AssignmentBatch)).first() is None
    assert not apple.state.device(serial)["removed"]


def test_the_typed_word_may_be_in_small_letters(htmx, apple, paris, run_jobs):
    serial = _serials(apple)[0]
    assert release(htmx, paris.id, [serial], " release ").status_code == 204
    assert run_jobs() == []
    assert _device(serial).removed_at is not None


def test_released_devices_leave_the_server_counts_at_once(htmx, apple, paris, run_jobs):
    """The server's device count (Servers page, the Managed Devices tab) drops with the release, not at the next sync."""
    released, failing = _serials(apple)[:2]
    apple.state.set_fault(SIM, "assign_failed", [failing])
    assert release(htmx, paris.id, [released, failing]).status_code == 204
    assert run_jobs() == []
    db.session.expire_all()
    assert db.session.get(type(paris), paris.id).device_count == 7
    assert "Managed Devices (7)" in htmx.get(f"/servers/{paris.id}").get_data(as_text=True)
    assert "7 devices" in htmx.get(f"/servers/{paris.id}/devices").get_data(as_text=True)
    assert re.search(r"<td[^>]*>\s*7\s*</td>", htmx.get("/servers").get_data(as_text=True))


def test_delete_server_names_its_release_requests_as_such(htmx, apple, paris, run_jobs):
    """Delete's confirmation and its activity log line do not call a Release Devices request an Add Devices one."""
    assert release(htmx, paris.id, _serials(apple)[:1]).status_code == 204
    assert run_jobs() == []
    html = " ".join(htmx.get(f"/servers/{paris.id}/delete").get_data(as_text=True).split())
    assert "with its 7 devices, its synchronization history and its 1 Release Devices request with its results." in html
    assert "Add Devices / Remove Devices" not in html
    assert htmx.post(f"/servers/{paris.id}/delete", data={"confirm_name": "Paris"}).status_code == 204
    summary = db.session.execute(select(ActivityEntry.summary).where(ActivityEntry.action == "server.deleted")).scalar_one()
    assert summary == ("Deleted managed server Paris with 7 devices, its synchronization history and its "
                       "1 Release Devices request with its results")
    # The activity log's kinds of object name release requests too (its filter lists them with the others).
    assert "Add Devices / Remove Devices / Release Devices requests" in htmx.get("/activity/").get_data(as_text=True)


def test_release_pages_sit_under_device_assignment_in_the_navigation(admin_client, htmx, apple, paris, run_jobs):
    """A release has no profile: its pages are marked in the navigation where their breadcrumbs start."""
    assert release(htmx, paris.id, _serials(apple)[:1]).status_code == 204
    batch = db.session.execute(select(AssignmentBatch)).scalar_one()
    admin_client.environ_base.pop("HTTP_HX_REQUEST", None)  # `paris` was added with htmx's header
    for url in (f"/assignments/{batch.id}", f"/servers/{paris.id}/devices/release", f"/assignments/{batch.id}/retry"):
        current = re.findall(r'<a href="[^"]*" aria-current="page">([^<]+)</a>', admin_client.get(url).get_data(as_text=True))
        assert current == ["Device Assignment"], (url, current)


def test_serials_that_are_not_devices_of_the_server_are_named_and_nothing_is_sent(htmx, apple, paris):
    serial = _serials(apple)[0]
    response = release(htmx, paris.id, [serial, "NOTADEVICE1"])
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "This serial number is not a device of Paris: NOTADEVICE1." in html
    empty = release(htmx, paris.id, [])
    assert empty.status_code == 422 and "Paste the serial numbers of the devices to release." in \
        empty.get_data(as_text=True)
    assert db.session.execute(select(AssignmentBatch)).first() is None


def test_more_than_10000_serials_are_refused_in_release_words(htmx, apple, paris):
    response = release(htmx, paris.id, [f"S{i:07d}" for i in range(10_001)])
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    # Release has no filter and no "Select all": the message must not send the admin looking for them.
    assert "10,001 serial numbers were pasted; at most 10,000 can be released at once. Split the list." in html
    assert "Select all" not in html and "can be added" not in html
    assert db.session.execute(select(AssignmentBatch)).first() is None


def test_a_device_released_already_is_named_as_such_not_as_one_to_synchronize(htmx, apple, paris, run_jobs):
    released, other = _serials(apple)[:2]
    assert release(htmx, paris.id, [released]).status_code == 204
    assert run_jobs() == []
    first = db.session.execute(select(AssignmentBatch)).scalar_one()

    response = release(htmx, paris.id, [released.lower(), other])
    text = " ".join(response.get_data(as_text=True).split())
    assert response.status_code == 422
    assert (f"This serial number is released from Apple Business Manager already (Release Devices #{first.id}): "
            f"{released}. Remove it from the list. Nothing was sent.") in text
    assert "synchronize Paris first" not in text
    assert db.session.execute(select(AssignmentBatch)).scalars().all() == [first]
    assert not apple.state.device(other)["removed"]


def test_no_serial_numbers_and_no_typed_word_are_both_named_at_once(htmx, apple, paris):
    response = release(htmx, paris.id, [], confirmation="")
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Paste the serial numbers of the devices to release." in html
    assert "Type RELEASE to confirm: Apple does not undo a release." in html
    heading_only = release(htmx, paris.id, ["Serial Number", ", ;"])  # a pasted column's heading, separators
    assert heading_only.status_code == 422
    assert "Paste the serial numbers of the devices to release." in heading_only.get_data(as_text=True)
    assert db.session.execute(select(AssignmentBatch)).first() is None


def test_a_device_page_opens_release_with_its_serial_number(htmx, apple, paris):
    device = _device(_serials(apple)[0])
    page = htmx.get(f"/devices/{device.id}").get_data(as_text=True)
    assert f"/servers/{paris.id}/devices/release?serials={device.serial_number}" in page
    popup = htmx.get(f"/servers/{paris.id}/devices/release", query_string={"serials": device.serial_number})
    assert re.search(rf">\s*{device.serial_number}</textarea>", popup.get_data(as_text=True))
    assert "Release Devices…" in htmx.get(f"/servers/{paris.id}/devices").get_data(as_text=True)


def test_release_works_as_a_plain_page_without_javascript(admin_client, apple, paris, run_jobs):
    serial = _serials(apple)[0]
    admin_client.environ_base.pop("HTTP_HX_REQUEST", None)  # `paris` was added with htmx's header
    page = admin_client.get(f"/servers/{paris.id}/devices/release")
    assert page.status_code == 200 and "Type RELEASE to confirm" in page.get_data(as_text=True)
    response = release(admin_client, paris.id, [serial])
    batch = db.session.execute(select(AssignmentBatch)).scalar_one()
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/assignments/{batch.id}")


def test_release_of_a_missing_server_is_a_404(htmx):
    assert htmx.get("/servers/999/devices/release").status_code == 404


def test_a_device_released_while_a_newer_request_replaced_its_task_still_leaves_the_server(
        app, htmx, apple, paris, run_jobs, monkeypatch):
    """A second Release of the same device (another tab, another admin) supersedes the first while Apple releases
    the device: Apple does not undo that, so the device leaves the server all the same, and the newer call, which
    Apple answers NOT_ACCESSIBLE (no longer in the organization), does not keep it either."""
    from portal.assignments import runner
    from portal.assignments.services import request_assignment
    from portal.models import ManagedServer
    from portal.models.assignment import RELEASE

    serial = _serials(apple)[0]
    device_id = _device(serial).id
    assert release(htmx, paris.id, [serial]).status_code == 204
    older = db.session.execute(select(AssignmentBatch)).scalar_one()
    real, calls = runner._call, []

    def released_again_meanwhile(client, action, uuid, serials):
        calls.append(serials)
        if len(calls) == 1:
            with app.app_context():
                request_assignment(db.session.get(ManagedServer, paris.id), None, [device_id], action=RELEASE,
                                   actor="bob")
        return real(client, action, uuid, serials)

    monkeypatch.setattr(runner, "_call", released_again_meanwhile)
    assert run_jobs() == []
    assert calls == [[serial], [serial]]
    assert apple.state.device(serial)["removed"]
    assert _device(serial).removed_at is not None  # released at Apple: no longer a device of Paris
    db.session.expire_all()
    first = db.session.execute(select(AssignmentTask).where(AssignmentTask.batch_id == older.id)).scalar_one()
    assert (first.state, first.result) == ("done", "SUCCESS")  # what Apple did, not "replaced before Apple accepted"
    assert serial not in htmx.get(f"/servers/{paris.id}/devices").get_data(as_text=True)


def test_an_add_devices_made_while_a_release_waits_does_not_replace_it(htmx, apple, paris, run_jobs):
    """The release the admin confirmed still goes to Apple; the Add Devices then finds the device released."""
    from datetime import datetime, timezone

    from portal.apple_link import client_for
    from portal.models import EnrollmentProfile
    from portal.models.profile import CONFIGURED

    serial, other = _serials(apple)[:2]
    uuid = client_for(paris).define_profile({"profile_name": "Sales", "url": "https://mdm.example.com/enroll"})[
        "profile_uuid"]
    sales = EnrollmentProfile(server_id=paris.id, name="Sales", status=CONFIGURED, apple_profile_uuid=uuid,
                              configured_at=datetime.now(timezone.utc))
    db.session.add(sales)
    db.session.commit()
    assert release(htmx, paris.id, [serial]).status_code == 204
    ids = [str(_device(s).id) for s in (serial, other)]
    assert htmx.post(f"/profiles/{sales.id}/devices/add", data={"device": ids}).status_code == 204
    db.session.expire_all()
    release_task = db.session.execute(select(AssignmentTask).join(AssignmentBatch).where(
        AssignmentBatch.action == "release")).scalar_one()
    assert release_task.state == "queued"  # not superseded
    assert run_jobs() == []
    db.session.expire_all()
    assert db.session.get(AssignmentTask, release_task.id).state == "done"
    assert _device(serial).removed_at is not None and apple.state.device(serial)["removed"]
    assert _device(other).profile_id == sales.id


def test_a_release_made_while_the_terms_are_not_accepted_says_on_its_page_why_it_waits(htmx, apple, paris, run_jobs):
    from portal.models import ManagedServer
    from portal.token_status import TERMS_NOT_SIGNED

    db.session.get(ManagedServer, paris.id).apple_state = TERMS_NOT_SIGNED
    db.session.commit()
    response = release(htmx, paris.id, _serials(apple)[:1])
    assert response.status_code == 204
    page = htmx.get(response.headers["HX-Redirect"]).get_data(as_text=True)
    assert "Releasing 1 device of Paris from Apple Business Manager (request #" in page
    assert "Nothing is sent to Apple yet: Paris's token status is Terms Not Accepted." in unescape_html(page)
    assert "each device&#39;s answer follows below" not in page and "each device's answer follows below" not in page


def test_a_device_whose_release_waits_for_a_retry_says_so_instead_of_add_devices(htmx, apple, paris, run_jobs):
    """Its page said "No enrollment profile is associated with the device: Add Devices to a profile. Apple's last
    answer was a failure": advice to give a profile to a device the admin is taking out of the organization."""
    failing = _serials(apple)[0]
    apple.state.set_fault(SIM, "assign_failed", [failing])
    assert release(htmx, paris.id, [failing]).status_code == 204
    batch = db.session.execute(select(AssignmentBatch)).scalar_one()
    waiting = " ".join(htmx.get(f"/devices/{_device(failing).id}").get_data(as_text=True).split())
    assert f"Its release from Apple Business Manager (Release Devices #{batch.id}) waits to be sent to Apple" in waiting

    assert run_jobs() == []
    page = " ".join(htmx.get(f"/devices/{_device(failing).id}").get_data(as_text=True).split())
    assert (f"Its release from Apple Business Manager (Release Devices #{batch.id}) was answered FAILED by Apple and "
            "is sent again after 24 hours: once Apple releases it, the device leaves your organization") in page
    assert "Add Devices to a profile" not in page


def _row(page: str, serial: str) -> str:
    match = re.search(rf"<tr[^>]*>\s*<td><a class=.device-link.[^>]*><code>{serial}</code>.*?</tr>", page, re.S)
    assert match, serial
    return match.group(0)


def test_a_failed_release_is_named_as_such_on_the_device_page_in_the_list_and_the_csv(htmx, apple, paris, run_jobs,
                                                                                    monkeypatch):
    """A device whose release Apple answered FAILED said only "Failed" (and "Not accessible" likewise), which reads
    as a failed Add Devices: both name the release, link to its request and say what happens next."""
    failing, kept = _serials(apple)[:2]
    apple.state.set_fault(SIM, "assign_failed", [failing])
    assert release(htmx, paris.id, [failing]).status_code == 204
    batch = db.session.execute(select(AssignmentBatch)).scalar_one()
    assert run_jobs() == []
    device = _device(failing)
    assert (device.assignment_state, device.removed_at) == ("failed", None)

    page = " ".join(htmx.get(f"/devices/{device.id}").get_data(as_text=True).split())
    assert re.search(rf'<dt>Assignment</dt><dd>Failed · [^<]+ · <a class="answered-by" href="/assignments/{batch.id}">'
                     rf"Release failed</a> \(Release Devices request #{batch.id}\): Apple answered FAILED, so the device is "
                     r"still in your organization\. The release is sent again after 24 hours, as Apple advises", page), page
    for url in (f"/servers/{paris.id}/devices", "/devices?assignment=failed"):
        listed = htmx.get(url, headers={"HX-Target": "device-table"}).get_data(as_text=True)
        row = _row(listed, failing)
        assert re.search(rf'<td>Failed<br><a class="answered-by" href="/assignments/{batch.id}" title="Release Devices '
                         rf'request #{batch.id}: Apple answered FAILED, so the device is still in your organization\. The '
                         rf'release is sent again after 24 hours[^"]*">Release failed \(#{batch.id}\)</a></td>', row), row
    assert kept not in htmx.get("/devices?assignment=failed").get_data(as_text=True)  # the filter is unchanged
    assert "answered-by" not in _row(htmx.get(f"/servers/{paris.id}/devices").get_data(as_text=True), kept)

    exported = {r["serial_number"]: r for r in csv.DictReader(io.StringIO(
        htmx.get(f"/servers/{paris.id}/devices.csv").get_data(as_text=True)))}
    assert (exported[failing]["assignment_state"], exported[failing]["answered_request"]) == (
        "failed", f"Release Devices #{batch.id}")
    assert exported[kept]["answered_request"] == ""
    assert list(exported[kept])[-3:] == ["waiting_request", "waiting_for_profile", "answered_request"]

    # Sent again after Apple's 24 hours: the row says "Release waiting" again, not what the last answer was.
    real = timing.now
    monkeypatch.setattr(timing, "now", lambda: real() + timedelta(hours=24, minutes=1))
    from jobs.assignments import retry_due

    retry_due()
    row = _row(htmx.get(f"/servers/{paris.id}/devices").get_data(as_text=True), failing)
    assert f"Release waiting (#{batch.id})" in row and "Release failed" not in row


def test_a_release_answered_not_accessible_says_that_nothing_more_happens(htmx, apple, paris, run_jobs):
    gone = _serials(apple)[0]
    apple.state.create_server("Other MDM")
    apple.state.move_devices([gone], "Other MDM")  # the portal has not synchronized the move yet
    assert release(htmx, paris.id, [gone]).status_code == 204
    batch = db.session.execute(select(AssignmentBatch)).scalar_one()
    assert run_jobs() == []
    device = _device(gone)
    assert device.assignment_state == "not_accessible" and device.removed_at is not None

    page = " ".join(htmx.get(f"/devices/{device.id}").get_data(as_text=True).split())
    assert (f'<a class="answered-by" href="/assignments/{batch.id}">Release not accessible</a> (Release Devices request '
            f"#{batch.id}): Apple answered NOT_ACCESSIBLE because the device is not, or no longer, assigned to this MDM server") \
        in page
    assert "Nothing more is sent. If it is still in your organization, release it from the MDM server it is assigned " \
           "to now." in page
    removed = htmx.get(f"/servers/{paris.id}/devices?removed=removed").get_data(as_text=True)
    assert re.search(rf'<td>Not accessible<br><a class="answered-by" href="/assignments/{batch.id}" title="Release '
                     rf'Devices request #{batch.id}: Apple answered NOT_ACCESSIBLE[^"]*Nothing more is sent[^"]*">'
                     rf"Release not accessible \(#{batch.id}\)</a></td>", _row(removed, gone))


def test_select_the_managed_devices_warns_of_devices_waiting_for_release_devices(htmx, apple, paris, run_jobs):
    """Add Devices does not replace a waiting release: a device given a profile here still left the organization
    when its failed release was retried the next day, and the pop-up said nothing of it."""
    from tests.assignments_helpers import configured_profile

    failing, other = _serials(apple)[:2]
    apple.state.set_fault(SIM, "assign_failed", [failing])
    assert release(htmx, paris.id, [failing]).status_code == 204
    assert run_jobs() == []
    profile = configured_profile(paris, "Kiosk")

    def warning(**filters) -> str | None:
        html = htmx.get(f"/profiles/{profile.id}/devices/add", query_string=filters,
                        headers={"HX-Target": "pick-list"}).get_data(as_text=True)
        found = re.search(r'<p class="alert alert-warning pick-releasing">(.*?)</p>', html, re.S)
        return " ".join(found.group(1).split()) if found else None

    assert warning() == ("1 of them waits for Release Devices (to be sent or retried): it leaves the organization "
                         "when it is sent, whatever profile it gets here.")
    assert warning(q=other) is None


def test_a_release_is_not_held_back_by_apples_wait_on_a_failed_add_devices(htmx, apple, paris, run_jobs):
    """Add Devices answered FAILED (Apple's 24-hour wait on profile calls), then a confirmed release: it waited those
    24 hours in the retry queue, unsaid. A release is another call; only an earlier release's wait holds it."""
    from tests.assignments_helpers import configured_profile, latest_batch, pick, tasks_of

    serial, other = _serials(apple)[:2]
    profile = configured_profile(paris)
    apple.state.set_fault(SIM, "assign_failed", [serial, other])
    pick(htmx, profile, [_device(serial).id, _device(other).id])
    assert run_jobs() == []
    assert {t.state for t in tasks_of(latest_batch().id).values()} == {"failed"}
    apple.state.set_fault(SIM, "assign_failed", None)

    assert release(htmx, paris.id, [serial]).status_code == 204
    task = tasks_of(latest_batch().id)[serial]
    assert task.retry_at is None and not task.held_for_apple_wait
    page = " ".join(htmx.get(f"/devices/{_device(serial).id}").get_data(as_text=True).split())
    assert "Release waiting</a>" in page and "· last answer " in page  # the time shown is the Add's answer's
    assert run_jobs() == []
    assert apple.state.device(serial)["removed"] and _device(serial).removed_at is not None

    # An earlier release answered FAILED does hold the next one: the same call, Apple's advice.
    apple.state.set_fault(SIM, "assign_failed", [other])
    assert release(htmx, paris.id, [other]).status_code == 204
    assert run_jobs() == []
    apple.state.set_fault(SIM, "assign_failed", None)
    assert release(htmx, paris.id, [other]).status_code == 204
    held = tasks_of(latest_batch().id)[other]
    assert held.held_for_apple_wait and held.retry_at is not None
