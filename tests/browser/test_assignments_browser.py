"""Add Devices in a real browser: open Select the Managed Devices from the profile page, search,
tick devices, OK, then watch the results arrive on the profile page and on the request's page."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from portal.extensions import db

from tests.browser.shots import shot
from tests.servers_helpers import add_simulated_server
from tests.assignments_helpers import SIM, configured_profile, devices_of

pytestmark = pytest.mark.browser


@pytest.fixture
def profile(htmx, apple, run_jobs):
    """A synchronized server with 30 devices and a configured profile (set up through the test client)."""
    return configured_profile(add_simulated_server(htmx, apple, 30, run_jobs=run_jobs, apple_server=SIM))


def test_add_devices_from_the_pop_up_to_the_results(signed_in_page: Page, apple, profile, run_jobs):
    page = signed_in_page
    devices = sorted(devices_of(profile.server_id))
    first, second = devices[0], devices[1]
    apple.state.set_fault(SIM, "assign_failed", [second])

    page.goto(f"/profiles/{profile.id}")
    section = page.locator("#profile-devices")
    expect(section.get_by_text("No device is associated with this profile")).to_be_visible()
    section.get_by_role("link", name="Add Devices").click()
    dialog = page.get_by_role("dialog", name="Select the Managed Devices")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_text("30 devices", exact=True)).to_be_visible()

    # Search narrows the list in place; the first device ticked stays ticked across searches.
    dialog.get_by_label("Search").fill(first)
    expect(dialog.get_by_role("checkbox", name=f"Select {second}")).to_have_count(0)
    dialog.get_by_role("checkbox", name=f"Select {first}").check()
    dialog.get_by_label("Search").fill(second)
    expect(dialog.get_by_role("checkbox", name=f"Select {first}")).to_have_count(0)
    dialog.get_by_role("checkbox", name=f"Select {second}").check()
    expect(dialog.get_by_text("2 ticked")).to_be_visible()  # the hidden one, carried over, and this one
    dialog.get_by_role("button", name="OK").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Assigning 2 devices")

    assert run_jobs() == []
    # The requests panel polls, stops when the job is done and refreshes the device list.
    expect(section.get_by_role("cell", name=first, exact=True)).to_be_visible(timeout=15_000)
    expect(section.get_by_role("cell", name=second, exact=True)).to_have_count(0)  # Apple answered FAILED
    expect(section.get_by_text("wait", exact=False).first).to_be_visible()
    # The Activity card hears of the request's end too, without a reload.
    expect(page.locator("#activity-card")).to_contain_text("1 assigned, 1 failed")
    section.get_by_role("link", name=re.compile(r"Add Devices #\d+")).click()

    expect(page.get_by_role("heading", name=re.compile(r"Add Devices #\d+"))).to_be_visible()
    results = page.locator("#batch-tasks")
    expect(results.get_by_role("row").filter(has_text=first)).to_contain_text("Assigned")
    expect(results.get_by_role("row").filter(has_text=second)).to_contain_text("Failed")
    expect(results.get_by_role("link", name=re.compile(r"^Failed 1$"))).to_be_visible()  # each tab counts its devices
    shot(page, "request-results.png")

    # Retry now asks first, in a pop-up.
    apple.state.set_fault(SIM, "assign_failed", None)
    page.get_by_role("toolbar", name="Request actions").get_by_role("link", name="Retry now").click()
    confirm = page.get_by_role("dialog", name="Retry now")
    expect(confirm.get_by_text("24 hours", exact=False)).to_be_visible()
    confirm.get_by_role("button", name="Retry now").click()
    expect(confirm).to_be_hidden()
    assert run_jobs() == []
    page.reload()
    expect(results.get_by_role("row").filter(has_text=second)).to_contain_text("Assigned")


def _serial_number_box(page: Page, profile):
    """The profile page's Add Devices, with its Add by serial number opened: (the pop-up, its Serial numbers box)."""
    page.goto(f"/profiles/{profile.id}")
    page.locator("#profile-devices").get_by_role("link", name="Add Devices").click()
    dialog = page.get_by_role("dialog", name="Select the Managed Devices")
    dialog.get_by_text("Add by serial number").click()
    return dialog, dialog.get_by_role("textbox", name="Serial numbers")


def test_add_devices_by_pasting_serial_numbers_with_a_mistake_fixed_in_place(signed_in_page: Page, profile,
                                                                             run_jobs):
    page = signed_in_page
    devices = sorted(devices_of(profile.server_id))
    dialog, box = _serial_number_box(page, profile)
    box.fill(f"{devices[0]}\n{devices[1].lower()}\nTYPO1234")
    dialog.get_by_role("button", name="OK").click()

    # The list stays as typed, with the error next to it; the pop-up stays open.
    expect(dialog.get_by_text("This serial number is not a device of Paris: TYPO1234.", exact=False)).to_be_visible()
    expect(box).to_have_value(f"{devices[0]}\n{devices[1].lower()}\nTYPO1234")
    expect(box).to_have_attribute("aria-invalid", "true")
    box.fill(f"{devices[0]}\n{devices[1].lower()}")
    dialog.get_by_role("button", name="OK").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Assigning 2 devices")
    assert run_jobs() == []
    section = page.locator("#profile-devices")
    expect(section.get_by_role("cell", name=devices[1], exact=True)).to_be_visible(timeout=15_000)

    # Remove Devices with nothing ticked offers the same list, open.
    section.get_by_role("button", name="Remove Devices").click()
    remove = page.get_by_role("dialog", name="Remove Devices")
    remove.get_by_role("textbox", name="Serial numbers").fill(devices[0])
    remove.get_by_role("button", name="Remove Devices").click()
    expect(remove).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Removing Sales from 1 device")


def test_add_devices_reads_serial_numbers_from_a_csv_export_into_the_box(signed_in_page: Page, profile, run_jobs):
    """A Managed Devices CSV (several columns, quoted cells): its serial number column goes into the box, to be
    checked before OK; a file without such a column goes in as it is, and the usual check says what is wrong."""
    page = signed_in_page
    devices = sorted(devices_of(profile.server_id))
    dialog, box = _serial_number_box(page, profile)
    box.fill(devices[0])
    export = ("\ufeffserial_number,model,description\r\n"
              f'{devices[1]},"iPad Pro, 11-inch",ipad\r\n{devices[2]},"Mac ""mini""",mac\r\n')
    dialog.get_by_label("Or read them from a file").set_input_files(
        files=[{"name": "devices.csv", "mimeType": "text/csv", "buffer": export.encode()}])
    expect(box).to_have_value(f"{devices[0]}\n{devices[1]}\n{devices[2]}")
    expect(dialog.get_by_text("(its serial number column): 2 lines added")).to_be_visible()

    dialog.get_by_label("Or read them from a file").set_input_files(
        files=[{"name": "empty.txt", "mimeType": "text/plain", "buffer": b"  \n"}])
    expect(dialog.get_by_text("“empty.txt” holds no serial numbers. Nothing was added.")).to_be_visible()
    expect(box).to_have_value(f"{devices[0]}\n{devices[1]}\n{devices[2]}")
    # A spreadsheet saved as .xlsx (a zip) is not read into the box as garbage.
    dialog.get_by_label("Or read them from a file").set_input_files(
        files=[{"name": "devices.xlsx", "mimeType": "text/csv", "buffer": b"PK\x03\x04\x14\x00\x06\x00\xff\xfe" * 20}])
    expect(dialog.get_by_text("“devices.xlsx” is not a text file.")).to_be_visible()
    expect(box).to_have_value(f"{devices[0]}\n{devices[1]}\n{devices[2]}")

    dialog.get_by_role("button", name="OK").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Assigning 3 devices")
    assert run_jobs() == []


def test_nothing_selected_goes_once_a_device_is_ticked(signed_in_page: Page, profile):
    """OK with nothing ticked, then ticking rows: "No device was selected" stayed beside "· 2 ticked"."""
    page = signed_in_page
    page.goto(f"/profiles/{profile.id}")
    page.locator("#profile-devices").get_by_role("link", name="Add Devices").click()
    dialog = page.get_by_role("dialog", name="Select the Managed Devices")
    dialog.get_by_role("button", name="OK").click()
    error = dialog.get_by_role("alert").filter(has_text="No device was selected")
    expect(error).to_be_visible()
    dialog.locator("input[name=device]").first.check()
    expect(error).to_have_count(0)
    expect(dialog.get_by_text("· 1 ticked")).to_be_visible()


def test_every_pop_up_of_the_profile_page_opens_again_after_add_and_remove_devices(signed_in_page: Page, profile,
                                                                                    htmx, run_jobs):
    """The device section swaps itself (outerHTML): its pop-up buttons must still fill the pop-up, not
    replace it, or no pop-up of the page opens again until a reload."""
    from tests.assignments_helpers import pick

    page = signed_in_page
    first = sorted(devices_of(profile.server_id).values(), key=lambda d: d.serial_number)[0]
    assert pick(htmx, profile, [first.id]).status_code == 204
    assert run_jobs() == []
    page.goto(f"/profiles/{profile.id}")
    section = page.locator("#profile-devices")
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    section.get_by_role("link", name="Add Devices", exact=True).click()
    picker = page.get_by_role("dialog", name="Select the Managed Devices")
    expect(picker).to_be_visible()
    page.keyboard.press("Escape")
    expect(picker).to_be_hidden()

    page.get_by_role("link", name="Configure profile").click()
    configure = page.get_by_role("dialog", name=re.compile("Configure profile"))
    expect(configure).to_be_visible()
    page.keyboard.press("Escape")

    section.get_by_role("checkbox", name=f"Select {first.serial_number}").check()
    section.get_by_role("button", name="Remove Devices").click()
    remove = page.get_by_role("dialog", name=re.compile("Remove Devices"))
    expect(remove).to_be_visible()
    remove.get_by_role("button", name="Cancel").click()
    expect(remove).to_be_hidden()

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("dialog", name=re.compile("Edit"))).to_be_visible()
    page.keyboard.press("Escape")
    section.get_by_role("link", name="Add Devices", exact=True).click()
    expect(picker).to_be_visible()
    assert errors == []


def test_a_double_click_on_ok_sends_one_request(signed_in_page: Page, profile):
    from portal.models import AssignmentBatch

    page = signed_in_page
    first = sorted(devices_of(profile.server_id))[0]
    page.goto(f"/profiles/{profile.id}")
    page.locator("#profile-devices").get_by_role("link", name="Add Devices", exact=True).click()
    dialog = page.get_by_role("dialog", name="Select the Managed Devices")
    dialog.get_by_role("checkbox", name=f"Select {first}").check()
    dialog.get_by_role("button", name="OK").dblclick()
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Assigning 1 device")
    page.wait_for_timeout(500)  # a second request, queued behind the first by htmx, would have been sent by now
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(AssignmentBatch)).scalar_one() == 1


def test_the_status_card_counts_the_associated_devices_once_apple_answered(signed_in_page: Page, profile, run_jobs):
    """Status at Apple › Associated devices follows Add Devices and Remove Devices without a reload."""
    page = signed_in_page
    first, second = sorted(devices_of(profile.server_id))[:2]
    page.goto(f"/profiles/{profile.id}")
    section = page.locator("#profile-devices")
    associated = page.locator("#profile-status dt:text-is('Associated devices') + dd")
    expect(associated).to_have_text("0")

    section.get_by_role("link", name="Add Devices", exact=True).click()
    dialog = page.get_by_role("dialog", name="Select the Managed Devices")
    dialog.get_by_role("checkbox", name=f"Select {first}").check()
    dialog.get_by_role("checkbox", name=f"Select {second}").check()
    dialog.get_by_role("button", name="OK").click()
    expect(dialog).to_be_hidden()
    assert run_jobs() == []
    expect(section.get_by_role("cell", name=second, exact=True)).to_be_visible(timeout=15_000)
    expect(associated).to_have_text("2")

    section.get_by_role("checkbox", name=f"Select {first}").check()
    section.get_by_role("button", name="Remove Devices").click()
    remove = page.get_by_role("dialog", name=re.compile("Remove Devices"))
    remove.get_by_role("button", name="Remove Devices").click()
    expect(remove).to_be_hidden()
    assert run_jobs() == []
    expect(section.get_by_role("cell", name=first, exact=True)).to_have_count(0, timeout=15_000)
    expect(associated).to_have_text("1")


def test_the_managed_devices_table_fits_a_1280_pixel_screen(signed_in_page: Page, profile, htmx, run_jobs):
    """Every column of Managed Devices, "Enrolls automatically" last, in view on a 1280 × 800 screen."""
    from tests.assignments_helpers import pick

    first = sorted(devices_of(profile.server_id).values(), key=lambda d: d.serial_number)[0]
    assert pick(htmx, profile, [first.id]).status_code == 204
    assert run_jobs() == []
    page = signed_in_page
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/devices")
    expect(page.get_by_role("columnheader", name="Assigned to server")).to_be_visible()
    sizes = page.locator("#device-table .table-wrap").evaluate("w => [w.scrollWidth, w.clientWidth]")
    assert sizes[0] <= sizes[1], f"the table is {sizes[0]} px wide in {sizes[1]} px"


def test_devices_ticked_on_another_page_of_the_profile_stay_ticked_for_remove_devices(signed_in_page: Page, profile,
                                                                                      htmx, run_jobs, monkeypatch):
    """Ticking devices on page 1 of the profile's devices, then more on page 2, used to send page 2's only:
    the pager replaced the section and the first ticks with it."""
    from portal.assignments import queries
    from tests.assignments_helpers import pick

    monkeypatch.setattr(queries, "PROFILE_PAGE", 10)
    devices = sorted(devices_of(profile.server_id).values(), key=lambda d: d.serial_number)
    assert pick(htmx, profile, [d.id for d in devices]).status_code == 204
    assert run_jobs() == []
    page = signed_in_page
    page.goto(f"/profiles/{profile.id}")
    section = page.locator("#profile-devices")
    first, second = devices[0].serial_number, devices[1].serial_number
    section.get_by_role("checkbox", name=f"Select {first}").check()
    section.get_by_role("checkbox", name=f"Select {second}").check()
    section.get_by_role("link", name="Next page ›").click()
    expect(section.get_by_text("Page 2 of 3")).to_be_visible()
    expect(section.get_by_text("2 ticked")).to_be_visible()
    third = devices[10].serial_number
    section.get_by_role("checkbox", name=f"Select {third}").check()

    section.get_by_role("link", name="‹ Previous page").click()
    expect(section.get_by_text("Page 1 of 3")).to_be_visible()
    expect(section.get_by_role("checkbox", name=f"Select {first}")).to_be_checked()
    expect(section.get_by_role("checkbox", name=f"Select {devices[2].serial_number}")).not_to_be_checked()

    section.get_by_role("button", name="Remove Devices").click()
    remove = page.get_by_role("dialog", name=re.compile("Remove Devices"))
    expect(remove).to_contain_text("from 3 devices")
    for serial in (first, second, third):
        expect(remove).to_contain_text(serial)


def test_the_request_page_follows_retry_now_without_a_reload(signed_in_page: Page, apple, profile, htmx, run_jobs):
    """After Retry now, the request's Status kept saying Finished with the old counts (and the time of the first
    run) until a reload: it polled only while the page was loaded during a run."""
    from tests.assignments_helpers import pick

    devices = devices_of(profile.server_id)
    failing = sorted(devices)[0]
    apple.state.set_fault(SIM, "assign_failed", [failing])
    assert pick(htmx, profile, [devices[failing].id]).status_code == 204
    assert run_jobs() == []
    apple.state.set_fault(SIM, "assign_failed", None)

    page = signed_in_page
    page.goto(f"/profiles/{profile.id}")
    page.locator("#profile-devices").get_by_role("link", name=re.compile(r"Add Devices #\d+")).click()
    status = page.locator("#batch-status")
    expect(status.locator("dt:text-is('Failed') + dd")).to_have_text(re.compile(r"^1\b"))
    page.get_by_role("toolbar", name="Request actions").get_by_role("link", name="Retry now").click()
    confirm = page.get_by_role("dialog", name="Retry now")
    confirm.get_by_role("button", name="Retry now").click()
    expect(confirm).to_be_hidden()
    assert run_jobs() == []

    expect(status.locator("dt:text-is('Assigned') + dd")).to_have_text("1", timeout=10_000)
    expect(status.locator("dt:text-is('Failed') + dd")).to_have_text("0")
    expect(page.locator("#batch-tasks").get_by_role("row").filter(has_text=failing)).to_contain_text("Assigned")


def test_select_all_matching_never_sends_a_filter_being_edited(signed_in_page: Page, profile):
    from portal.models import AssignmentBatch

    page = signed_in_page
    first = sorted(devices_of(profile.server_id))[0]
    page.goto(f"/profiles/{profile.id}")
    page.locator("#profile-devices").get_by_role("link", name="Add Devices", exact=True).click()
    dialog = page.get_by_role("dialog", name="Select the Managed Devices")
    select_all = dialog.get_by_role("checkbox", name=re.compile("Select all 30 devices"))
    select_all.check()

    # The refreshed list comes late (a slow network): OK is pressed while it still shows all 30 devices.
    page.route(re.compile(r".*/devices/add\?.*q=.*"), lambda route: (page.wait_for_timeout(2_000), route.continue_()))
    dialog.get_by_label("Search").fill(first)
    expect(select_all).not_to_be_checked()
    expect(select_all).to_be_disabled()
    dialog.get_by_role("button", name="OK").click()
    expect(dialog.get_by_text("No device was selected")).to_be_visible()
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(AssignmentBatch)).scalar_one() == 0

    # The answer shows the filter as typed; Select all then names the devices it matches, and OK sends those.
    expect(dialog.get_by_label("Search")).to_have_value(first)
    dialog.get_by_role("checkbox", name=re.compile("Select all 1 device")).check()
    dialog.get_by_role("button", name="OK").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Assigning 1 device")


def test_select_all_turned_off_by_a_filter_edit_says_so(signed_in_page: Page, profile):
    """Select all for one filter, then another filter: Select all went off without a word (it stood for the devices
    of the first filter), and OK sent only the devices ticked one by one."""
    page = signed_in_page
    first, second, third = sorted(devices_of(profile.server_id))[:3]
    dialog, line = _open_add_devices(page, profile)
    dialog.get_by_role("checkbox", name=f"Select {first}").check()
    dialog.get_by_label("Search").fill(second)
    dialog.get_by_role("checkbox", name=re.compile("Select all 1 device")).check()
    expect(line).to_have_text("1 device matching the filter · 2 ticked")
    notice = dialog.locator(".pick-all-dropped")
    expect(notice).to_have_count(0)

    dialog.get_by_label("Search").fill(third)
    expect(notice).to_contain_text("Select all was turned off: it stood for the devices of the previous filter")
    expect(line).to_have_text("1 device matching the filter · 1 ticked")  # the device ticked by hand stays
    expect(dialog.get_by_role("checkbox", name=re.compile("Select all 1 device"))).not_to_be_checked()

    # Said once: the next edit, with Select all already off, lists the devices without it.
    dialog.get_by_label("Search").fill("")
    expect(line).to_have_text("30 devices · 1 ticked")
    expect(notice).to_have_count(0)


def test_a_requests_page_shows_apples_answers_as_they_come_and_after_retry_now(signed_in_page: Page, apple, profile,
                                                                             htmx, run_jobs):
    """The request's device list follows the job without a reload: while it runs, and again after Retry now."""
    from tests.assignments_helpers import latest_batch

    page = signed_in_page
    first, second = sorted(devices_of(profile.server_id))[:2]
    devices = devices_of(profile.server_id)
    apple.state.set_fault(SIM, "assign_failed", [second])
    assert htmx.post(f"/profiles/{profile.id}/devices/add",
                     data={"device": [str(devices[s].id) for s in (first, second)]}).status_code == 204
    page.goto(f"/assignments/{latest_batch().id}")
    results = page.locator("#batch-tasks")
    expect(results.get_by_role("row").filter(has_text=first)).to_contain_text("Queued")

    assert run_jobs() == []
    expect(results.get_by_role("row").filter(has_text=first)).to_contain_text("Assigned", timeout=15_000)
    expect(results.get_by_role("row").filter(has_text=second)).to_contain_text("Failed")

    apple.state.set_fault(SIM, "assign_failed", None)
    # No reload: the request's actions follow its runs (Retry now appears once Apple answered FAILED).
    page.get_by_role("toolbar", name="Request actions").get_by_role("link", name="Retry now").click()
    confirm = page.get_by_role("dialog", name="Retry now")
    confirm.get_by_role("button", name="Retry now").click()
    expect(confirm).to_be_hidden()
    expect(page.locator("#batch-status")).to_contain_text("Queued")  # polling again
    assert run_jobs() == []
    expect(results.get_by_role("row").filter(has_text=second)).to_contain_text("Assigned", timeout=15_000)
    expect(page.locator("#batch-status")).to_contain_text("Finished")


def _ok_after_the_session_ended_then_sign_in(page: Page, dialog, profile):
    """OK of Select the Managed Devices after the session ended in another tab: the sign-in page, then the profile page
    again with the pop-up restored (returned) and saying so."""
    from tests.browser.test_profiles_browser import _end_session_in_another_tab, _sign_in_again

    _end_session_in_another_tab(page)
    dialog.get_by_role("button", name="OK").click()
    page.wait_for_url(f"**/login?next=/profiles/{profile.id}")
    _sign_in_again(page)
    page.wait_for_url(f"**/profiles/{profile.id}")
    dialog = page.get_by_role("dialog", name="Select the Managed Devices")
    expect(dialog.get_by_role("status").filter(has_text="Your session ended")).to_be_visible()
    return dialog


def test_a_pop_up_restored_after_the_session_ended_lists_the_devices_of_its_restored_filter(signed_in_page: Page,
                                                                                            profile):
    """Select the Managed Devices sent after the session ended: after signing in again it opens with the filter
    as typed, and the list under it (its count, Select all N, the rows ticked) follows that filter, not all devices."""
    page = signed_in_page
    devices = sorted(devices_of(profile.server_id))
    first, second = devices[0], devices[1]
    page.goto(f"/profiles/{profile.id}")
    page.locator("#profile-devices").get_by_role("link", name="Add Devices", exact=True).click()
    dialog = page.get_by_role("dialog", name="Select the Managed Devices")
    dialog.get_by_label("Search").fill(first)
    expect(dialog.get_by_role("checkbox", name=f"Select {second}")).to_have_count(0)
    dialog.get_by_role("checkbox", name=f"Select {first}").check()
    dialog.get_by_text("Add by serial number").click()
    dialog.get_by_role("textbox", name="Serial numbers").fill(second)
    dialog = _ok_after_the_session_ended_then_sign_in(page, dialog, profile)
    expect(dialog.get_by_label("Search")).to_have_value(first)
    # The count follows the rows ticked again, and the pasted serial number shows: OK sends no more than is seen.
    expect(dialog.locator("#pick-list p.muted").first).to_have_text("1 device matching the filter · 1 ticked")
    expect(dialog.get_by_role("checkbox", name=re.compile("Select all 1 device matching the filter"))).to_be_visible()
    expect(dialog.get_by_role("checkbox", name=f"Select {second}")).to_have_count(0)
    expect(dialog.get_by_role("checkbox", name=f"Select {first}")).to_be_checked()
    expect(dialog.get_by_role("textbox", name="Serial numbers")).to_be_visible()
    expect(dialog.get_by_role("textbox", name="Serial numbers")).to_have_value(second)
    dialog.get_by_role("button", name="OK").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Assigning 2 devices")


def test_a_pop_up_restored_after_the_session_ended_keeps_the_rows_unticked_under_select_all(signed_in_page: Page,
                                                                                            profile, run_jobs):
    """Select all, then one row unticked ("all but 1"): restored after signing in again, Select all came back without
    the exception, and OK would have sent the device the admin had left out."""
    page = signed_in_page
    devices = sorted(devices_of(profile.server_id))
    left_out = devices[1]
    page.goto(f"/profiles/{profile.id}")
    page.locator("#profile-devices").get_by_role("link", name="Add Devices", exact=True).click()
    dialog = page.get_by_role("dialog", name="Select the Managed Devices")
    dialog.get_by_role("checkbox", name=re.compile(r"Select all \d+ devices")).check()
    dialog.get_by_role("checkbox", name=f"Select {left_out}").uncheck()
    counted = dialog.locator("#pick-list p.muted").first
    expect(counted).to_contain_text(f"· {len(devices) - 1} ticked (all but 1)")
    dialog = _ok_after_the_session_ended_then_sign_in(page, dialog, profile)
    expect(dialog.get_by_role("checkbox", name=re.compile(r"Select all \d+ devices"))).to_be_checked()
    expect(dialog.get_by_role("checkbox", name=f"Select {left_out}")).not_to_be_checked()
    expect(dialog.get_by_role("checkbox", name=f"Select {devices[0]}")).to_be_checked()
    expect(counted).to_contain_text(f"· {len(devices) - 1} ticked (all but 1)")
    dialog.get_by_role("button", name="OK").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text(f"Assigning {len(devices) - 1} devices")
    assert run_jobs() == []
    assert devices_of(profile.server_id)[left_out].profile_id != profile.id


def test_ok_while_the_token_needs_the_terms_accepted_leads_to_the_request_saying_why_it_waits(signed_in_page: Page,
                                                                                           profile, htmx, run_jobs):
    """Nothing goes to Apple until the terms are accepted: after OK the admin is on the request's page, which
    names the reason and the remedy, not on the profile page with a toast saying the devices are being sent."""
    from portal.models import ManagedServer
    from portal.token_status import TERMS_NOT_SIGNED
    from tests.assignments_helpers import pick

    page = signed_in_page
    first, second = sorted(devices_of(profile.server_id).values(), key=lambda d: d.serial_number)[:2]
    assert pick(htmx, profile, [first.id]).status_code == 204
    assert run_jobs() == []
    db.session.get(ManagedServer, profile.server_id).apple_state = TERMS_NOT_SIGNED
    db.session.commit()

    page.goto(f"/profiles/{profile.id}")
    section = page.locator("#profile-devices")
    section.get_by_role("checkbox", name=f"Select {first.serial_number}").check()
    section.get_by_role("button", name="Remove Devices").click()
    page.get_by_role("dialog", name=re.compile("Remove Devices")).get_by_role("button", name="Remove Devices").click()
    expect(page.get_by_role("heading", name=re.compile(r"Remove Devices #\d+"))).to_be_visible()
    expect(page.get_by_text("Removing Sales from 1 device (request #", exact=False)).to_contain_text(
        "Paris's token status is Terms Not Accepted")
    assert run_jobs() == []
    page.reload()
    expect(page.locator("#batch-status")).to_contain_text("Waiting for the server's token (Terms Not Accepted)")

    page.goto(f"/profiles/{profile.id}")
    section.get_by_role("link", name="Add Devices", exact=True).click()
    picker = page.get_by_role("dialog", name="Select the Managed Devices")
    picker.get_by_role("checkbox", name=f"Select {second.serial_number}").check()
    picker.get_by_role("button", name="OK").click()
    expect(page.get_by_role("heading", name=re.compile(r"Add Devices #\d+"))).to_be_visible()
    expect(page.get_by_text("Assigning 1 device to Sales (request #", exact=False)).to_contain_text(
        "Terms Not Accepted")


def test_the_ticked_count_follows_each_tick_and_select_all(signed_in_page: Page, profile):
    """"30 devices · 2 ticked" used to change only when the list was filtered or paged."""
    page = signed_in_page
    first, second, third = sorted(devices_of(profile.server_id))[:3]
    dialog, line = _open_add_devices(page, profile)
    expect(line).to_have_text("30 devices")

    dialog.get_by_role("checkbox", name=f"Select {first}").check()
    dialog.get_by_role("checkbox", name=f"Select {second}").check()
    expect(line).to_have_text("30 devices · 2 ticked")
    # Said to a screen reader too, once the ticking pauses.
    expect(page.locator("#announcer")).to_contain_text("30 devices · 2 ticked")
    dialog.get_by_role("checkbox", name=f"Select {second}").uncheck()
    expect(line).to_have_text("30 devices · 1 ticked")
    select_all = dialog.get_by_role("checkbox", name=re.compile("Select all 30 devices"))
    select_all.check()
    expect(line).to_have_text("30 devices · 30 ticked")
    select_all.uncheck()
    expect(line).to_have_text("30 devices · 1 ticked")

    # Under a filter, Select all adds the devices it matches to those ticked outside it, as OK sends them.
    dialog.get_by_label("Search").fill(third)
    expect(line).to_have_text("1 device matching the filter · 1 ticked")
    dialog.get_by_role("checkbox", name=re.compile("Select all 1 device")).check()
    expect(line).to_have_text("1 device matching the filter · 2 ticked")
    expect(dialog.get_by_role("checkbox", name=f"Select {third}")).to_be_checked()  # the rows shown, as sent
    dialog.get_by_role("checkbox", name=f"Select {third}").uncheck()  # all but this one: no longer sent
    expect(line).to_have_text("1 device matching the filter · 1 ticked (all matching but 1)")
    expect(dialog.get_by_role("checkbox", name=re.compile("Select all 1 device"))).to_be_checked()
    dialog.get_by_role("checkbox", name=f"Select {third}").check()  # ticked again: no longer an exception
    expect(line).to_have_text("1 device matching the filter · 2 ticked")


def _open_add_devices(page: Page, profile):
    """The profile page's Add Devices pop-up, opened: (the dialog, its "N devices · M ticked" line)."""
    page.goto(f"/profiles/{profile.id}")
    page.locator("#profile-devices").get_by_role("link", name="Add Devices", exact=True).click()
    dialog = page.get_by_role("dialog", name="Select the Managed Devices")
    return dialog, dialog.locator("#pick-list p.muted").first


def _latest_request():
    """The newest request and the serial numbers it sends."""
    from portal.models import AssignmentBatch, AssignmentTask

    db.session.expire_all()
    batch = db.session.execute(select(AssignmentBatch).order_by(AssignmentBatch.id.desc()).limit(1)).scalar_one()
    return batch, set(db.session.execute(select(AssignmentTask.serial_number).where(
        AssignmentTask.batch_id == batch.id)).scalars())


def test_a_row_unticked_under_select_all_is_not_sent(signed_in_page: Page, profile):
    """Select all, then a row unticked: the row read unticked while "· 30 ticked" stayed, and OK sent it anyway."""

    page = signed_in_page
    serials = sorted(devices_of(profile.server_id))
    dialog, line = _open_add_devices(page, profile)
    select_all = dialog.get_by_role("checkbox", name=re.compile("Select all 30 devices"))
    select_all.check()
    expect(dialog.get_by_role("checkbox", name=f"Select {serials[4]}")).to_be_checked()
    dialog.get_by_role("checkbox", name=f"Select {serials[4]}").uncheck()
    expect(select_all).to_be_checked()  # all but this one
    expect(line).to_have_text("30 devices · 29 ticked (all but 1)")
    dialog.get_by_role("button", name="OK").click()
    expect(dialog).to_be_hidden()
    batch, sent = _latest_request()
    assert batch.total == 29 and serials[4] not in sent


def test_a_row_unticked_under_the_profile_pages_select_all_is_not_removed(signed_in_page: Page, profile, htmx,
                                                                         run_jobs):
    page = signed_in_page
    devices, section = _profile_page_with(page, htmx, run_jobs, profile, 3)
    section.get_by_role("checkbox", name="Select all 3 associated devices").check()
    section.get_by_role("checkbox", name=f"Select {devices[0].serial_number}").uncheck()
    expect(section.get_by_role("checkbox", name="Select all 3 associated devices")).to_be_checked()  # all but this one
    expect(section.locator("#profile-devices-form p.muted")).to_contain_text("· 2 ticked (all but 1).")
    section.get_by_role("button", name="Remove Devices").click()
    remove = page.get_by_role("dialog", name=re.compile("Remove Devices"))
    expect(remove).to_contain_text("from 2 devices at Apple")
    expect(remove).not_to_contain_text(devices[0].serial_number)


def test_select_all_matching_then_one_row_unticked_adds_all_but_that_one(signed_in_page: Page, profile, monkeypatch):
    """QA: a filter, "Select all 597 devices matching the filter", the first row unticked: the count fell to the 49
    rows shown, Select all went off and OK sent those 49. Now it is all but that one, on every page of the list."""
    from portal.assignments import queries

    monkeypatch.setattr(queries, "PICK_PAGE", 10)
    serials = sorted(devices_of(profile.server_id))
    page = signed_in_page
    dialog, line = _open_add_devices(page, profile)
    dialog.get_by_label("Current profile").select_option("none")
    expect(line).to_have_text("30 devices matching the filter")
    select_all = dialog.get_by_role("checkbox", name="Select all 30 devices matching the filter")
    select_all.check()
    expect(line).to_have_text("30 devices matching the filter · 30 ticked")
    dialog.get_by_role("checkbox", name=f"Select {serials[0]}").uncheck()
    expect(line).to_have_text("30 devices matching the filter · 29 ticked (all matching but 1)")
    expect(select_all).to_be_checked()
    expect(dialog.get_by_role("checkbox", name=f"Select {serials[1]}")).to_be_checked()

    # Another page drawn by the server: still all but that one, which reads unticked when its page comes back.
    dialog.get_by_role("link", name="Next page ›").click()
    expect(dialog.get_by_text("Page 2 of 3")).to_be_visible()
    expect(line).to_have_text("30 devices matching the filter · 29 ticked (all matching but 1)")
    expect(dialog.get_by_role("checkbox", name=f"Select {serials[10]}")).to_be_checked()
    dialog.get_by_role("link", name="‹ Previous page").click()
    expect(dialog.get_by_text("Page 1 of 3")).to_be_visible()
    expect(dialog.get_by_role("checkbox", name=f"Select {serials[0]}")).not_to_be_checked()
    expect(dialog.get_by_role("checkbox", name=f"Select {serials[1]}")).to_be_checked()
    expect(dialog.get_by_role("checkbox", name="Select all 30 devices matching the filter")).to_be_checked()
    expect(line).to_have_text("30 devices matching the filter · 29 ticked (all matching but 1)")

    dialog.get_by_role("button", name="OK").click()
    expect(dialog).to_be_hidden()
    batch, sent = _latest_request()
    assert sent == set(serials[1:])


def test_select_all_then_unticking_select_all_forgets_the_rows_unticked(signed_in_page: Page, profile):
    page = signed_in_page
    serials = sorted(devices_of(profile.server_id))
    dialog, line = _open_add_devices(page, profile)
    select_all = dialog.get_by_role("checkbox", name=re.compile("Select all 30 devices"))
    select_all.check()
    dialog.get_by_role("checkbox", name=f"Select {serials[0]}").uncheck()
    expect(line).to_have_text("30 devices · 29 ticked (all but 1)")
    select_all.uncheck()
    expect(line).to_have_text("30 devices")
    expect(dialog.locator("input[name=except]")).to_have_count(0)
    select_all.check()  # all again: the row unticked before is ticked with the others
    expect(line).to_have_text("30 devices · 30 ticked")
    expect(dialog.get_by_role("checkbox", name=f"Select {serials[0]}")).to_be_checked()


def test_select_all_associated_then_one_row_unticked_removes_all_but_that_one(signed_in_page: Page, profile, htmx,
                                                                             run_jobs, monkeypatch):
    """QA: Select all 488 on a profile's page, one row unticked: 'Remove "Staff" from 49 devices' (the rows shown)."""
    from portal.assignments import queries
    from tests.assignments_helpers import pick

    monkeypatch.setattr(queries, "PROFILE_PAGE", 10)
    devices = sorted(devices_of(profile.server_id).values(), key=lambda d: d.serial_number)
    assert pick(htmx, profile, [d.id for d in devices]).status_code == 204
    assert run_jobs() == []
    page = signed_in_page
    page.goto(f"/profiles/{profile.id}")
    section = page.locator("#profile-devices")
    line = section.locator("#profile-devices-form p.muted")
    section.get_by_role("checkbox", name="Select all 30 associated devices").check()
    section.get_by_role("checkbox", name=f"Select {devices[0].serial_number}").uncheck()
    expect(line).to_contain_text("· 29 ticked (all but 1).")
    section.get_by_role("link", name="Next page ›").click()
    expect(section.get_by_text("Page 2 of 3")).to_be_visible()
    expect(line).to_contain_text("· 29 ticked (all but 1).")
    expect(section.get_by_role("checkbox", name="Select all 30 associated devices")).to_be_checked()

    section.get_by_role("button", name="Remove Devices").click()
    remove = page.get_by_role("dialog", name=re.compile("Remove Devices"))
    expect(remove).to_contain_text("from 29 devices at Apple")
    expect(remove).not_to_contain_text(devices[0].serial_number)
    remove.get_by_role("button", name="Remove Devices").click()
    expect(remove).to_be_hidden()
    batch, sent = _latest_request()
    assert batch.action == "remove" and sent == {d.serial_number for d in devices[1:]}


def _profile_page_with(page: Page, htmx, run_jobs, profile, n: int):
    """The profile's page once its first `n` devices (by serial number) are associated: (all the server's devices by
    serial number, the page's device section)."""
    from tests.assignments_helpers import pick

    devices = sorted(devices_of(profile.server_id).values(), key=lambda d: d.serial_number)
    assert pick(htmx, profile, [d.id for d in devices[:n]]).status_code == 204
    assert run_jobs() == []
    page.goto(f"/profiles/{profile.id}")
    return devices, page.locator("#profile-devices")


def test_the_profile_pages_ticked_count_follows_each_tick(signed_in_page: Page, profile, htmx, run_jobs):
    page = signed_in_page
    devices, section = _profile_page_with(page, htmx, run_jobs, profile, 3)
    line = section.locator("#profile-devices-form p.muted")
    expect(line).to_contain_text("3 devices associated with this profile. Tick")
    section.get_by_role("checkbox", name=f"Select {devices[0].serial_number}").check()
    expect(line).to_contain_text("3 devices associated with this profile · 1 ticked.")
    section.get_by_role("checkbox", name="Select all 3 associated devices").check()
    expect(line).to_contain_text("· 3 ticked.")
    section.get_by_role("checkbox", name="Select all 3 associated devices").uncheck()
    section.get_by_role("checkbox", name=f"Select {devices[0].serial_number}").uncheck()
    expect(line).to_contain_text("3 devices associated with this profile. Tick")


def test_select_all_matching_stays_ticked_on_the_next_page(signed_in_page: Page, htmx, apple, run_jobs):
    """Select the Managed Devices shows 50 devices a page. "Select all 60 devices" was silently unticked by going to
    the next page (its pager carried the ticked rows only): OK then sent the rows ticked, not the 60."""
    from portal.models import AssignmentBatch

    profile = configured_profile(add_simulated_server(htmx, apple, 60, run_jobs=run_jobs, apple_server=SIM))
    page = signed_in_page
    page.goto(f"/profiles/{profile.id}")
    page.locator("#profile-devices").get_by_role("link", name="Add Devices", exact=True).click()
    dialog = page.get_by_role("dialog", name="Select the Managed Devices")
    dialog.get_by_role("checkbox", name=re.compile("Select all 60 devices")).check()
    dialog.get_by_role("link", name="Next page ›").click()
    expect(dialog.get_by_text("Page 2 of 2")).to_be_visible()
    expect(dialog.get_by_role("checkbox", name=re.compile("Select all 60 devices"))).to_be_checked()
    expect(dialog.locator("#pick-list p.muted").first).to_have_text("60 devices · 60 ticked")
    dialog.get_by_role("button", name="OK").click()
    expect(dialog).to_be_hidden()
    db.session.expire_all()
    batch = db.session.execute(select(AssignmentBatch).order_by(AssignmentBatch.id.desc()).limit(1)).scalar_one()
    assert batch.total == 60


def test_typing_in_the_profiles_device_search_narrows_the_list_and_select_all(signed_in_page: Page, profile, htmx,
                                                                             run_jobs):
    """The profile's devices can be searched as one types; Select all then names, and Remove Devices takes, the
    matching devices only."""
    page = signed_in_page
    devices, section = _profile_page_with(page, htmx, run_jobs, profile, 6)
    wanted, other = devices[2].serial_number, devices[3].serial_number
    box = section.get_by_label("Search devices")
    box.press_sequentially(wanted.lower(), delay=40)
    expect(section.locator("#profile-devices-form p.muted")).to_contain_text(
        f"1 of 6 devices associated with this profile matches “{wanted.lower()}”")
    expect(box).to_have_value(wanted.lower())  # nothing typed was lost to the refresh, and the box kept the keyboard
    expect(box).to_be_focused()
    expect(page).to_have_url(re.compile(rf"/profiles/{profile.id}\?q={wanted.lower()}$"))  # a reload keeps it
    expect(section.get_by_role("checkbox", name=f"Select {other}")).to_have_count(0)
    section.get_by_role("checkbox", name="Select all 1 matching device").check()
    expect(section.locator("#profile-devices-form p.muted")).to_contain_text("· 1 ticked")
    section.get_by_role("button", name="Remove Devices").click()
    remove = page.get_by_role("dialog", name=re.compile("Remove Devices"))
    expect(remove).to_contain_text("from 1 device at Apple")
    expect(remove).to_contain_text(f"match “{wanted.lower()}”: {wanted}")
    remove.get_by_role("button", name="Cancel").click()
    section.get_by_role("link", name="Clear search").focus()
    page.keyboard.press("Enter")
    expect(section.get_by_role("checkbox", name="Select all 6 associated devices")).to_be_visible()
    expect(box).to_have_value("")
    expect(box).to_be_focused()  # the link went with the search it cleared: the keyboard is back in the box
    expect(page).to_have_url(re.compile(rf"/profiles/{profile.id}$"))


def test_retry_now_on_the_retry_queue_opens_its_warning_and_sends(signed_in_page: Page, apple, profile, htmx, run_jobs):
    """The queue's Retry now opened an empty pop-up: the link inherited the table's hx-select="#retry-table", which
    picked nothing out of the warning. By keyboard, as an admin who tabs to it."""
    page = signed_in_page
    serial = sorted(devices_of(profile.server_id))[0]
    apple.state.set_fault(SIM, "throttle", [serial])
    assert htmx.post(f"/profiles/{profile.id}/devices/add",
                     data={"device": [str(devices_of(profile.server_id)[serial].id)]}).status_code == 204
    assert run_jobs() == []
    apple.state.set_fault(SIM, "throttle", None)

    page.goto("/assignments/retries")
    page.get_by_role("toolbar", name="Assignment retry queue").get_by_role("link", name="Retry now").focus()
    page.keyboard.press("Enter")
    confirm = page.get_by_role("dialog", name="Retry now")
    expect(confirm.get_by_text("Send 1 device of the retry queue to Apple again now?")).to_be_visible()
    confirm.get_by_role("button", name="Retry now").click()
    expect(confirm).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Sending 1 device of the retry queue again now.")
    assert run_jobs() == []
    expect(page.get_by_role("heading", name="Nothing to retry")).to_be_visible(timeout=15_000)
