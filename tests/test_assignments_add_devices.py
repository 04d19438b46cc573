"""The Add Devices pop-up (Select the Managed Devices) and a profile's device pages through the web UI against
the Apple simulator: search, filters, select all matching, pasted serial numbers and what is refused, pages
without JavaScript and empty states, a request page's words, a profile's device count, 404s."""
from __future__ import annotations

import re
from html import unescape as unescape_html

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AssignmentBatch, Device, EnrollmentProfile
from portal.models.profile import NOT_CONFIGURED
from tests.assignments_helpers import configured_profile, devices_of, latest_batch, pick, sim_serials, tasks_of
from tests.assignments_helpers import paris  # noqa: F401 - a fixture


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
    # The search matches descriptions too, as the Managed Devices list's does, and says so.
    assert 'id="pick-q" name="q" type="search" value="" autocomplete="off" placeholder="Serial number, model or description"' in html

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
    # A part of a page (…/status, …/requests) opened in the browser goes to its page first (tests/test_page_parts.py).
    response = admin_client.get(url, follow_redirects=True)
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
    assert '>Assigned <span class="tab-count">1</span></a>' in tabs and "Succeeded" not in tabs  # as its rows' badges
    popup = htmx.get(f"/profiles/{profile.id}/devices/add").get_data(as_text=True)
    assert ">Device family</label>" in popup and '<span class="muted">None</span>' in popup  # as in Managed Devices
    assert "No (won’t enroll)" in htmx.get("/devices").get_data(as_text=True)  # as the table's badge says


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


def _pasting_paths(server, profile) -> list[tuple[str, dict, str]]:
    """Every form that takes pasted serial numbers: (URL, the other fields it needs, the id of its serials field)."""
    return [(f"/profiles/{profile.id}/devices/add", {}, "pick-serials"),
            (f"/profiles/{profile.id}/devices/remove", {}, "remove-serials"),
            (f"/servers/{server.id}/devices/release", {"confirmation": "RELEASE"}, "serials")]


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
    for url, data, field in _pasting_paths(server, profile):
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


def test_every_fault_of_a_pasted_list_is_named_at_once_and_invisible_characters_are_dropped(htmx, apple, paris,
                                                                                             run_jobs):
    """Odd characters, then a piece too long, then (list fixed) the rest: one submit per kind of fault. And a serial
    number behind a zero-width space (pasted from a web page) was named as odd, shown as a serial that looked fine."""
    from html import unescape

    from tests.servers_helpers import field_error

    server, profile = paris(devices=3)
    serials = sorted(devices_of(server.id))
    pasted = f"{serials[0]}\n'; DROP TABLE--\n{'Z' * 30}\n\u200b{serials[1]}\ufeff"
    response = htmx.post(f"/profiles/{profile.id}/devices/add", data={"serials": pasted})
    message = unescape(field_error(response.get_data(as_text=True), "pick-serials"))
    assert response.status_code == 422
    assert message.startswith("This line has something other than serial numbers: line 2 “'; DROP TABLE--”."), message
    assert f"“{'Z' * 30}” is not a serial number" in message and message.endswith("Nothing was sent.")
    assert message.count("Nothing was sent.") == 1 and serials[1] not in message

    assert htmx.post(f"/profiles/{profile.id}/devices/add",
                     data={"serials": f"\u200b{serials[1]}\u200e\n\ufeff{serials[2]}"}).status_code == 204
    assert sorted(tasks_of(latest_batch().id)) == sorted(serials[1:])


def test_a_list_refused_for_its_format_also_names_its_serial_numbers_the_server_does_not_have(htmx, apple, paris,
                                                                                             run_jobs):
    """A pasted list with a cut-off piece and a serial number of no device of the server: both were named only one
    submit after the other. Now one message names both, on every path, and nothing is sent."""
    from html import unescape

    from tests.servers_helpers import field_error

    server, profile = paris(devices=3)
    serials = sorted(devices_of(server.id))
    assert pick(htmx, profile, [devices_of(server.id)[serials[0]].id]).status_code == 204
    assert run_jobs() == []
    before = latest_batch().id
    pasted = f"{serials[0]}\nC02X\nNOSUCHDEV123"
    for url, data, field in _pasting_paths(server, profile):
        response = htmx.post(url, data={"serials": pasted, **data})
        message = unescape(field_error(response.get_data(as_text=True), field))
        assert response.status_code == 422, url
        assert message.startswith("“C02X” is not a serial number"), url
        assert "This serial number is not a device of Paris: NOSUCHDEV123." in message, (url, message)
        assert message.endswith("Nothing was sent.") and message.count("Nothing was sent.") == 1, message
        assert serials[0] not in message
    assert latest_batch().id == before


def test_whole_rows_of_a_csv_export_are_read_by_their_serial_number_column(htmx, apple, paris, run_jobs):
    """Rows copied from the Managed Devices export ("serial_number,model" then "C02…","MacBook") were refused,
    while the help says a CSV file works."""
    server, profile = paris(devices=3)
    serials = sorted(devices_of(server.id))
    export = htmx.get(f"/servers/{server.id}/devices.csv").get_data(as_text=True).splitlines()
    pasted = "\n".join([export[0]] + [row for row in export[1:] if row.split(",")[0].strip('"') in serials[:2]])
    assert pasted.startswith("serial_number,") and pasted.count("\n") == 2
    assert htmx.post(f"/profiles/{profile.id}/devices/add", data={"serials": pasted}).status_code == 204
    assert sorted(tasks_of(latest_batch().id)) == serials[:2]
    # A spreadsheet's rows, tab-separated, the serial number in the second column, a description with a comma.
    rows = f"Model\tSerial Number\tNotes\nMacBook\t{serials[2]}\tBob's, 13-inch\n"
    assert htmx.post(f"/profiles/{profile.id}/devices/add", data={"serials": rows}).status_code == 204
    assert list(tasks_of(latest_batch().id)) == [serials[2]]


def test_a_pasted_piece_too_short_or_too_long_for_a_serial_number_is_named_so(htmx, apple, paris, run_jobs):
    """A serial number cut off ("C02X") or two run together is not "not a device of the server": the admin is told it
    cannot be a serial number at all, next to the list, which is kept; nothing is sent, on every path."""
    from html import unescape

    from tests.servers_helpers import field_error

    server, profile = paris(devices=3)
    serials = sorted(devices_of(server.id))
    assert pick(htmx, profile, [devices_of(server.id)[serials[0]].id]).status_code == 204
    assert run_jobs() == []
    before = latest_batch().id
    too_long = serials[1] + serials[2]
    cases = [(f"{serials[0]}\nc02x", "“C02X” is not a serial number: it has fewer than 8 or more than 14 letters and "
                                     "digits (Apple's serial numbers have 10 to 12). Correct it or remove it from the "
                                     "list. Nothing was sent."),
             (f"{serials[0]} C02X {too_long} C02X", f"These 2 pieces are not serial numbers, having fewer than 8 or "
                                                   "more than 14 letters and digits (Apple's serial numbers have 10 to "
                                                   f"12): C02X, {too_long}. Correct them or remove them from the list.")]
    for pasted, expected in cases:
        for url, data, field in _pasting_paths(server, profile):
            response = htmx.post(url, data={"serials": pasted, **data})
            html = response.get_data(as_text=True)
            assert response.status_code == 422, url
            assert unescape(field_error(html, field)).startswith(expected), url
            kept = re.search(r"<textarea[^>]*>\r?\n?(.*?)</textarea>", html, re.S).group(1)
            assert kept == pasted, url
    assert latest_batch().id == before
    # 8 and 14 characters are still taken as serial numbers (and looked up as such).
    response = htmx.post(f"/profiles/{profile.id}/devices/add", data={"serials": "ABCD1234 ABCDEFGH123456"})
    assert "These 2 serial numbers are not a device of Paris: ABCD1234, ABCDEFGH123456." in response.get_data(as_text=True)


def test_select_all_says_how_many_matching_devices_it_moves_from_another_profile(htmx, paris, run_jobs):
    """OK asks nothing more, so Select all says beforehand how many devices it takes from their profile."""
    server, sales = paris(devices=6)
    devices = sorted(devices_of(server.id).values(), key=lambda d: d.serial_number)
    assert pick(htmx, sales, [d.id for d in devices[:2]]).status_code == 204
    assert run_jobs() == []
    kiosk = configured_profile(server, "Kiosk")

    def moving_note(profile, **filters) -> str | None:
        html = htmx.get(f"/profiles/{profile.id}/devices/add", query_string=filters,
                        headers={"HX-Target": "pick-list"}).get_data(as_text=True)
        found = re.search(r'<p class="help pick-moving">([^<]+)</p>', html)
        return found.group(1) if found else None

    assert moving_note(kiosk) == "2 of them have another profile now: with Select all, OK moves them to “Kiosk”."
    assert moving_note(kiosk, q=devices[0].serial_number) == (
        "1 of them has another profile now: with Select all, OK moves it to “Kiosk”.")
    assert moving_note(kiosk, q=devices[5].serial_number) is None  # no profile yet: nothing moves
    assert moving_note(sales) is None  # its own devices are not moved


def test_pasted_serials_of_released_or_departed_devices_say_what_happened_to_them(htmx, apple, paris, run_jobs):
    """A device released here, or one Apple stopped listing for the server, was "not a device of Paris: … synchronize
    Paris first", which a synchronization never fixes."""
    from datetime import datetime, timezone

    from portal.models import Device

    server, profile = paris(devices=6)
    serials = sim_serials(apple)
    released, departed = serials[0], serials[1]
    assert htmx.post(f"/servers/{server.id}/devices/release", data={"serials": released, "confirmation": "RELEASE"}
                     ).status_code == 204
    assert run_jobs() == []
    device = db.session.execute(select(Device).where(Device.serial_number == departed)).scalar_one()
    device.removed_at = datetime(2026, 11, 30, tzinfo=timezone.utc)  # as a full synchronization leaves it
    db.session.commit()
    batch_id = latest_batch().id

    response = pick(htmx, profile, serials=f"{released}\n{departed}\nNOPE1234")
    text = " ".join(response.get_data(as_text=True).split())
    assert response.status_code == 422
    assert (f"This serial number is released from Apple Business Manager already (Release Devices #{batch_id}): "
            f"{released}. This serial number is no longer a device of Paris: {departed}. Apple stopped listing it "
            "(noticed on 2026-11-30): moved to another MDM server in Apple Business Manager, or released there. "
            "This serial number is not a device of Paris: NOPE1234. Check it, or synchronize Paris first if Apple "
            "Business Manager assigned it a moment ago. Remove them from the list. Nothing was sent.") in text


def test_add_devices_from_a_devices_page_assigns_the_chosen_profile_to_it(htmx, apple, paris, run_jobs):
    """The device page's only action was Release (a destructive one): giving it a profile meant finding the
    profile, then the device again in Select the Managed Devices."""
    server, sales = paris(devices=3)
    staff = configured_profile(server, name="Staff")
    draft = EnrollmentProfile(server_id=server.id, name="Draft", status=NOT_CONFIGURED)
    db.session.add(draft)
    db.session.commit()
    serial = sorted(devices_of(server.id))[0]
    device = devices_of(server.id)[serial]
    page = htmx.get(f"/devices/{device.id}").get_data(as_text=True)
    assert f'href="/devices/{device.id}/profile"' in page and ">Add Devices…</a>" in page
    popup = " ".join(htmx.get(f"/devices/{device.id}/profile").get_data(as_text=True).split())
    assert f'value="{sales.id}">' in popup and f'value="{staff.id}">' in popup
    assert f'<h2 id="modal-title">Add Devices: {serial}</h2>' in popup
    assert f'value="{draft.id}" disabled>' in popup and "Configure profile first" in popup

    refused = htmx.post(f"/devices/{device.id}/profile", data={"profile": str(draft.id)})
    assert refused.status_code == 422 and "The profile “Draft” is not configured at Apple yet" in refused.get_data(
        as_text=True)
    nothing = htmx.post(f"/devices/{device.id}/profile", data={})
    assert nothing.status_code == 422 and "Choose the profile this device should get." in nothing.get_data(as_text=True)
    # A profile edited since Apple got it is not "not configured at Apple yet" (the pop-up opened before the edit).
    changed = EnrollmentProfile(server_id=server.id, name="Edited", status="changed", apple_profile_uuid="U-EDITED")
    db.session.add(changed)
    db.session.commit()
    refused = htmx.post(f"/profiles/{changed.id}/devices/add", data={"device": [str(device.id)]})
    text = unescape_html(refused.get_data(as_text=True))
    assert refused.status_code == 422 and "The profile “Edited” changed since it was configured at Apple" in text
    assert "not configured at Apple yet" not in text
    response = htmx.post(f"/devices/{device.id}/profile", data={"profile": str(sales.id)})
    assert response.status_code == 204
    batch = latest_batch()
    assert response.headers["HX-Redirect"] == f"/assignments/{batch.id}" and batch.total == 1
    assert run_jobs() == []
    assert devices_of(server.id)[serial].profile_id == sales.id

    # Now it has one: "Change profile…" moves it in one step, and Remove Devices is offered for it.
    page = htmx.get(f"/devices/{device.id}").get_data(as_text=True)
    assert ">Change profile…</a>" in page and f'href="/profiles/{sales.id}/devices/remove?device={device.id}"' in page
    popup = " ".join(htmx.get(f"/devices/{device.id}/profile").get_data(as_text=True).split())
    assert f'<h2 id="modal-title">Change profile: {serial}</h2>' in popup  # titled as the button that opened it
    again = htmx.post(f"/devices/{device.id}/profile", data={"profile": str(sales.id)})
    assert again.status_code == 422 and "has “Sales” already" in again.get_data(as_text=True)
    assert htmx.post(f"/devices/{device.id}/profile", data={"profile": str(staff.id)}).status_code == 204
    assert run_jobs() == []
    assert devices_of(server.id)[serial].profile_id == staff.id
    assert apple.state.device(serial)["profile_uuid"] == db.session.get(EnrollmentProfile, staff.id).apple_profile_uuid


def test_the_add_devices_pop_up_of_a_removed_device_offers_nothing_to_choose(htmx, apple, paris, run_jobs):
    """Opened from a bookmark or Back after the device left the server: it offered the profiles and an OK that was
    refused again and again."""
    server, sales = paris(devices=3)
    serial = sorted(devices_of(server.id))[0]
    apple.state.create_server("Other MDM")
    apple.state.move_devices([serial], "Other MDM")
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    device = devices_of(server.id)[serial]
    assert device.removed_at is not None
    popup = " ".join(htmx.get(f"/devices/{device.id}/profile").get_data(as_text=True).split())
    assert f"{serial} is no longer a device of Paris: Apple stopped listing it, so no profile can be assigned" in popup
    assert 'type="radio"' not in popup and ">OK</button>" not in popup and "has no configured enrollment profile" not in popup
    assert 'role="status"' in popup and "data-close-modal>Cancel</button>" in popup  # said calmly; Cancel to leave
    refused = htmx.post(f"/devices/{device.id}/profile", data={"profile": str(sales.id)})
    assert refused.status_code == 422 and 'role="alert"' in refused.get_data(as_text=True)


def test_the_page_of_a_device_that_left_the_server_says_its_profile_no_longer_applies(htmx, apple, paris, run_jobs):
    """Moved to another MDM server in Apple Business Manager after it got a profile here: its page named that profile
    as if it still enrolled with it."""
    server, sales = paris(devices=3)
    serial = sorted(devices_of(server.id))[0]
    device = devices_of(server.id)[serial]
    assert htmx.post(f"/devices/{device.id}/profile", data={"profile": str(sales.id)}).status_code == 204
    assert run_jobs() == []
    page = " ".join(htmx.get(f"/devices/{device.id}").get_data(as_text=True).split())
    assert "Sales" in page and "when the device left this server" not in page
    apple.state.create_server("Other MDM")
    apple.state.move_devices([serial], "Other MDM")
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    page = " ".join(htmx.get(f"/devices/{device.id}").get_data(as_text=True).split())
    assert devices_of(server.id)[serial].removed_at is not None
    assert "when the device left this server: it no longer gets this profile from here" in page


def _family_of_most(server) -> tuple[str, list[Device], list[Device]]:
    """(the family most devices share, its devices by serial number, the other devices)."""
    by_family: dict[str, list[Device]] = {}
    for device in sorted(devices_of(server.id).values(), key=lambda d: d.serial_number):
        by_family.setdefault(device.device_family, []).append(device)
    family, members = max(by_family.items(), key=lambda item: len(item[1]))
    return family, members, [d for f, ds in by_family.items() if f != family for d in ds]


def _row(html: str, serial: str) -> str:
    return re.search(r"<tr>(?:(?!</tr>).)*%s(?:(?!</tr>).)*</tr>" % serial, html, re.S).group(0)


def test_a_row_unticked_under_select_all_matching_leaves_out_that_device_only(htmx, paris):
    """QA: Select all 597 matching devices, untick one, OK: only the 49 rows shown were sent. Unticked under Select
    all, a row is an exception ("all but this one"): every other matching device is sent, that one never."""
    server, profile = paris(devices=30)
    family, members, others = _family_of_most(server)
    assert len(members) > 3 and others
    unticked, elsewhere = members[0], others[0]

    # A page or search of the list (drawn by the server) keeps Select all, the exception and its row unticked.
    listed = htmx.get(f"/profiles/{profile.id}/devices/add", headers={"HX-Target": "pick-list"}, query_string={
        "family": family, "all_matching": "1", "except": str(unticked.id)}).get_data(as_text=True)
    assert f'<input type="hidden" name="except" value="{unticked.id}">' in listed
    assert " ".join(listed.split()).count(f"· {len(members) - 1} ticked (all matching but 1)") == 1
    assert "checked" not in _row(listed, unticked.serial_number)
    assert "checked data-by-all" in _row(listed, members[1].serial_number)
    assert re.search(r'name="all_matching" value="1"[^>]* checked', listed)

    # OK: all matching but the one unticked, plus a device ticked under another filter.
    assert pick(htmx, profile, [elsewhere.id], all_matching="1", family=family, **{"except": str(unticked.id)}
                ).status_code == 204
    sent = tasks_of(latest_batch().id)
    assert set(sent) == {m.serial_number for m in members[1:]} | {elsewhere.serial_number}


def test_an_unticked_row_is_never_sent_unless_its_serial_number_is_pasted(htmx, paris):
    """Under Select all, a row unticked is left out even if the same request also names it ticked (a page never
    sends both); its serial number pasted in Add by serial number is sent: the paste names it on purpose."""
    server, profile = paris(devices=12)
    family, members, _ = _family_of_most(server)
    unticked = members[0]
    assert pick(htmx, profile, [unticked.id], all_matching="1", family=family,
                **{"except": str(unticked.id)}).status_code == 204
    assert set(tasks_of(latest_batch().id)) == {m.serial_number for m in members[1:]}

    assert pick(htmx, profile, all_matching="1", family=family, serials=unticked.serial_number,
                **{"except": str(unticked.id)}).status_code == 204
    assert set(tasks_of(latest_batch().id)) == {m.serial_number for m in members}

    # Without Select all, "except" means nothing: the ticked device is sent.
    assert pick(htmx, profile, [unticked.id], **{"except": str(unticked.id)}).status_code == 204
    assert set(tasks_of(latest_batch().id)) == {unticked.serial_number}


def test_select_all_with_every_row_unticked_sends_nothing(htmx, paris):
    server, profile = paris(devices=12)
    family, members, _ = _family_of_most(server)
    refused = pick(htmx, profile, all_matching="1", family=family, **{"except": [str(m.id) for m in members]})
    assert refused.status_code == 422 and "No device was selected" in refused.get_data(as_text=True)
    assert db.session.execute(select(func.count()).select_from(AssignmentBatch)).scalar_one() == 0
