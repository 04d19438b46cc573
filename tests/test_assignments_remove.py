"""Remove Devices through the web UI against the Apple simulator (ticked rows, pasted serial numbers,
per-device results, one device in the singular), moving a device to another profile, newer requests
superseding older ones, and drift: a profile removed or replaced at Apple outside the portal."""
from __future__ import annotations

import re

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AssignmentBatch
from tests.assignments_helpers import SIM, configured_profile, devices_of, latest_batch, pick, sim_serials, tasks_of
from tests.assignments_helpers import paris  # noqa: F401 - a fixture


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
    refused = htmx.post(url, data={"serials": f"{serials[0]} NOPE1234"})
    assert refused.status_code == 422 and "not a device of Paris: NOPE1234." in refused.get_data(as_text=True)
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
    refused = " ".join(pick(htmx, profile, serials="NOPE1234").get_data(as_text=True).split())
    assert ("This serial number is not a device of Paris: NOPE1234. Check it, or synchronize Paris first if Apple "
            "Business Manager assigned it a moment ago. Remove it from the list. Nothing was sent.") in refused


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
    assert "Or read them from a file" in nothing.get_data(as_text=True)
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


def test_select_all_of_the_associated_devices_counts_one_device_in_the_singular(htmx, apple, paris, run_jobs):
    server, profile = paris(devices=2)
    pick(htmx, profile, [devices_of(server.id)[sim_serials(apple)[0]].id])
    assert run_jobs() == []
    section = " ".join(htmx.get(f"/profiles/{profile.id}/devices").get_data(as_text=True).split())
    assert "Select all 1 associated device</label>" in section


def test_a_failed_removal_is_named_as_such_and_a_failed_add_devices_stays_failed(htmx, apple, paris, run_jobs):
    """A device whose Remove Devices Apple answered FAILED said only "Failed", just like one whose Add Devices
    failed: the device page and the list name the removal, link to its request and say what happens next."""
    server, profile = paris(devices=4)
    devices = devices_of(server.id)
    removed, added = sorted(devices)[:2]
    pick(htmx, profile, [devices[removed].id])
    run_jobs()
    apple.state.set_fault(SIM, "assign_failed", [removed, added])
    pick(htmx, profile, [devices[added].id])
    run_jobs()
    assert htmx.post(f"/profiles/{profile.id}/devices/remove",
                     data={"device": [str(devices[removed].id)]}).status_code == 204
    batch = latest_batch()
    assert batch.action == "remove"
    assert run_jobs() == []
    assert {s: d.assignment_state for s, d in devices_of(server.id).items() if s in (removed, added)} == {
        removed: "failed", added: "failed"}

    page = " ".join(htmx.get(f"/devices/{devices[removed].id}").get_data(as_text=True).split())
    assert re.search(rf'<dt>Assignment</dt><dd>Failed · [^<]+ · <a class="answered-by" href="/assignments/{batch.id}">'
                     rf"Removal failed</a> \(Remove Devices request #{batch.id}\): Apple answered FAILED and still holds "
                     r"the profile for the device\. The removal is sent again after 24 hours, as Apple advises", page), page
    listed = htmx.get(f"/servers/{server.id}/devices?assignment=failed").get_data(as_text=True)
    assert re.search(rf'<td>Failed<br><a class="answered-by" href="/assignments/{batch.id}" title="Remove Devices '
                     rf'request #{batch.id}: Apple answered FAILED[^"]*">Removal failed \(#{batch.id}\)</a></td>',
                     _row(listed, removed))
    # A failed Add Devices is what "Failed" alone has always meant.
    assert "<td>Failed</td>" in _row(listed, added)
    # The profile page's devices too (Remove Devices is made there).
    panel = htmx.get(f"/profiles/{profile.id}").get_data(as_text=True)
    assert re.search(rf'<span class="badge badge-error">Failed</span><br><a class="answered-by" href="/assignments/'
                     rf'{batch.id}" title="Remove Devices request #{batch.id}: [^"]*">Removal failed \(#{batch.id}\)</a>',
                     panel), panel
    assert panel.count("answered-by") == 1
    assert "answered-by" not in htmx.get(f"/devices/{devices[added].id}").get_data(as_text=True)


def _row(page: str, serial: str) -> str:
    match = re.search(rf"<tr[^>]*>\s*<td><a class=.device-link.[^>]*><code>{serial}</code>.*?</tr>", page, re.S)
    assert match, serial
    return match.group(0)


def test_remove_devices_from_a_devices_page_goes_on_to_the_request(htmx, apple, paris, run_jobs):
    """The device page kept saying "Will enroll automatically" with the profile after Remove Devices…, and offered
    Remove Devices… again, until a reload; Add Devices… there goes on to the request's page."""
    server, profile = paris(devices=3)
    device = devices_of(server.id)[sorted(devices_of(server.id))[0]]
    pick(htmx, profile, [device.id])
    assert run_jobs() == []
    response = htmx.post(f"/profiles/{profile.id}/devices/remove", data={"device": [str(device.id)]},
                         headers={"HX-Current-URL": f"http://localhost/devices/{device.id}"})
    batch = latest_batch()
    assert batch.action == "remove"
    assert response.status_code == 204 and response.headers["HX-Redirect"] == f"/assignments/{batch.id}"
    page = htmx.get(f"/assignments/{batch.id}").get_data(as_text=True)
    assert "Removing Sales from 1 device: Apple&#39;s answer follows below." in page
    # From the profile page it stays there, as before.
    pick(htmx, profile, [device.id])
    assert run_jobs() == []
    response = htmx.post(f"/profiles/{profile.id}/devices/remove", data={"device": [str(device.id)]},
                         headers={"HX-Current-URL": f"http://localhost/profiles/{profile.id}"})
    assert response.status_code == 204 and "HX-Redirect" not in response.headers


def test_a_row_unticked_under_select_all_is_not_removed(htmx, apple, paris, run_jobs):
    """QA: Select all 488 associated devices, untick one: Remove Devices said "from 49 devices" (the rows shown but
    that one). Unticked under Select all, a row is an exception: all the others go, that one stays."""
    server, profile = paris(devices=8)
    devices = sorted(devices_of(server.id).values(), key=lambda d: d.serial_number)
    pick(htmx, profile, [d.id for d in devices[:5]])
    assert run_jobs() == []
    kept = devices[1]

    # The section's next page (or search) keeps Select all, the exception and its row unticked.
    section = htmx.get(f"/profiles/{profile.id}/devices", query_string={"all": "1", "except": str(kept.id)}
                       ).get_data(as_text=True)
    assert f'<input type="hidden" name="except" value="{kept.id}">' in section
    assert "· 4 ticked (all but 1)" in " ".join(section.split())
    row = re.search(r"<tr>(?:(?!</tr>).)*%s(?:(?!</tr>).)*</tr>" % kept.serial_number, section, re.S).group(0)
    assert "checked" not in row

    url = f"/profiles/{profile.id}/devices/remove"
    confirm = htmx.get(url, query_string={"all": "1", "device": [str(d.id) for d in devices[:5] if d is not kept],
                                          "except": str(kept.id)}).get_data(as_text=True)
    assert "from 4 devices at Apple" in confirm and kept.serial_number not in confirm
    assert f'<input type="hidden" name="except" value="{kept.id}">' in confirm  # on to its OK

    assert htmx.post(url, data={"all": "1", "except": str(kept.id)}).status_code == 204
    assert set(tasks_of(latest_batch().id)) == {d.serial_number for d in devices[:5] if d is not kept}
    assert run_jobs() == []
    assert {s for s, d in devices_of(server.id).items() if d.profile_id == profile.id} == {kept.serial_number}


def test_a_row_unticked_under_select_all_matching_a_search_is_not_removed(htmx, apple, paris, run_jobs):
    """Select all 1 matching device, its row unticked, and a device ticked before the search: only that one goes."""
    server, profile = paris(devices=8)
    devices = sorted(devices_of(server.id).values(), key=lambda d: d.serial_number)
    pick(htmx, profile, [d.id for d in devices[:5]])
    assert run_jobs() == []
    kept, ticked, q = devices[0], devices[2], devices[0].serial_number
    section = " ".join(htmx.get(f"/profiles/{profile.id}/devices", query_string={
        "all": "1", "q": q, "device": str(ticked.id), "except": str(kept.id)}).get_data(as_text=True).split())
    assert "· 1 ticked (all matching but 1)" in section
    url = f"/profiles/{profile.id}/devices/remove"
    # The unticked device also named ticked (a page never sends both): unticked wins.
    chosen = {"all": "1", "q": q, "device": [str(ticked.id), str(kept.id)], "except": str(kept.id)}
    confirm = " ".join(htmx.get(url, query_string=chosen).get_data(as_text=True).split())
    assert "from 1 device at Apple" in confirm
    assert f"match “{q}” or were ticked: {ticked.serial_number}</p>" in confirm  # the sample: not the one unticked
    assert htmx.post(url, data=chosen).status_code == 204
    assert set(tasks_of(latest_batch().id)) == {ticked.serial_number}
