"""Managed Devices in a real browser: the filter form, the table htmx replaces and the URL it pushes say the same
thing, whatever the admin used last (a sort header, a filter, the Back button)."""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.servers_helpers import add_simulated_server
from tests.assignments_helpers import SIM

pytestmark = pytest.mark.browser


@pytest.fixture
def fleet(htmx, apple, run_jobs):
    """Paris, synchronized: 130 devices of several models."""
    add_simulated_server(htmx, apple, 130, run_jobs=run_jobs, apple_server=SIM)


def test_a_search_after_a_sort_header_keeps_that_sort(signed_in_page: Page, fleet):
    page = signed_in_page
    page.goto("/devices")
    page.locator("#device-table").get_by_role("link", name="Model", exact=True).click()
    expect(page).to_have_url(re.compile(r"sort=model"))
    expect(page.get_by_label("Sort by")).to_have_value("model")

    page.get_by_label("Search").fill("C0")  # the Macs' serial numbers
    expect(page).to_have_url(re.compile(r"q=C0"))
    expect(page).to_have_url(re.compile(r"sort=model"))
    expect(page.locator("#device-table").get_by_role("columnheader", name=re.compile("^Model"))).to_have_attribute(
        "aria-sort", "ascending")


def test_back_shows_the_previous_filters_in_the_form_and_the_list(signed_in_page: Page, fleet):
    """htmx's snapshot of a page keeps its markup, not what was typed or chosen in it: Back showed the previous list
    under a form holding the first page's values (an empty search), and the next filter dropped that search."""
    page = signed_in_page
    page.goto("/devices")
    page.get_by_label("Search").fill("C0")
    expect(page).to_have_url(re.compile(r"q=C0"))
    page.get_by_label("Device family").select_option("Mac")
    expect(page).to_have_url(re.compile(r"family=Mac"))

    page.go_back()
    expect(page).not_to_have_url(re.compile(r"family=Mac"))
    expect(page.get_by_label("Search")).to_have_value("C0")
    expect(page.get_by_label("Device family")).to_have_value("")
    summary = page.locator("#device-table .list-summary")
    expect(summary).to_contain_text("match the filters")

    page.get_by_label("OS").select_option("OSX")
    expect(page).to_have_url(re.compile(r"os=OSX"))
    expect(page).to_have_url(re.compile(r"q=C0"))


def test_a_filtered_list_pushes_a_url_with_only_the_filters_in_use(signed_in_page: Page, fleet):
    page = signed_in_page
    page.goto("/devices")
    page.get_by_label("Device family").select_option("Mac")
    expect(page).to_have_url(re.compile(r"/devices\?family=Mac(&sort=serial)?(&direction=asc)?$"))
    expect(page.locator("#device-table .list-summary")).to_contain_text("match the filters")
    page.reload()  # the short URL is a bookmark of the same list
    expect(page.get_by_label("Device family")).to_have_value("Mac")


def test_release_a_device_from_its_page_with_the_keyboard(signed_in_page: Page, htmx, apple, run_jobs):
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import Device

    server = add_simulated_server(htmx, apple, 3, run_jobs=run_jobs, apple_server=SIM)
    device = db.session.execute(select(Device).where(Device.server_id == server.id).order_by(Device.id)).scalars().first()
    page = signed_in_page
    page.goto(f"/devices/{device.id}")
    page.get_by_role("link", name="Release from Apple Business Manager…").click()
    dialog = page.get_by_role("dialog", name="Release Devices")
    expect(dialog).to_contain_text("out of your organization for good")
    expect(dialog.get_by_label("Serial numbers")).to_have_value(device.serial_number)
    dialog.get_by_role("button", name="Release Devices").click()
    field = dialog.locator(".field").filter(has=page.get_by_label("Type RELEASE to confirm"))
    expect(field.get_by_role("alert")).to_contain_text("Apple does not undo a release")
    expect(dialog.get_by_label("Type RELEASE to confirm")).to_be_focused()
    page.keyboard.type("RELEASE")
    page.keyboard.press("Enter")
    page.wait_for_url("**/assignments/*")
    expect(page.get_by_role("heading", name=re.compile(r"^Release Devices #\d+$"))).to_be_visible()
    expect(page.get_by_role("status").first).to_contain_text("Releasing 1 device of Paris")
    assert run_jobs() == []
    page.reload()
    expect(page.locator("#batch-tasks, table").first).to_contain_text("Released")
    assert apple.state.device(device.serial_number)["removed"]


def test_a_release_sent_after_the_session_ended_comes_back_without_its_typed_confirmation(
        signed_in_page: Page, htmx, apple, run_jobs):
    """The serial numbers come back after signing in again; RELEASE is typed again, so one click never releases."""
    from tests.browser.test_profiles_browser import _end_session_in_another_tab, _sign_in_again

    server = add_simulated_server(htmx, apple, 2, run_jobs=run_jobs, apple_server=SIM)
    serial = apple.state.devices(SIM, limit=1)[0]["serial"]
    page = signed_in_page
    page.goto(f"/servers/{server.id}/devices")
    page.get_by_role("link", name="Release Devices…").click()
    dialog = page.get_by_role("dialog", name="Release Devices")
    dialog.get_by_label("Serial numbers").fill(serial)
    dialog.get_by_label("Type RELEASE to confirm").fill("RELEASE")
    _end_session_in_another_tab(page)
    dialog.get_by_role("button", name="Release Devices").click()
    page.wait_for_url("**/login?next=**")
    assert "RELEASE" not in page.evaluate("JSON.stringify(sessionStorage)")
    _sign_in_again(page)
    page.wait_for_url(f"**/servers/{server.id}/devices")
    dialog = page.get_by_role("dialog", name="Release Devices")
    expect(dialog.get_by_label("Serial numbers")).to_have_value(serial)
    expect(dialog.get_by_label("Type RELEASE to confirm")).to_have_value("")
    assert not apple.state.device(serial)["removed"]


def test_enter_in_the_typed_word_puts_the_keyboard_on_the_serial_numbers_to_fix(signed_in_page: Page, htmx, apple,
                                                                                 run_jobs):
    server = add_simulated_server(htmx, apple, 3, run_jobs=run_jobs, apple_server=SIM)
    page = signed_in_page
    page.goto(f"/servers/{server.id}/devices")
    page.get_by_role("link", name="Release Devices…").click()
    dialog = page.get_by_role("dialog", name="Release Devices")
    dialog.get_by_label("Type RELEASE to confirm").fill("RELEASE")
    dialog.get_by_label("Type RELEASE to confirm").press("Enter")  # no serial number pasted
    field = dialog.locator(".field").filter(has=page.get_by_label("Serial numbers"))
    expect(field.get_by_role("alert")).to_contain_text("Paste the serial numbers of the devices to release.")
    expect(dialog.get_by_label("Serial numbers")).to_be_focused()
    expect(dialog.get_by_label("Type RELEASE to confirm")).to_have_value("RELEASE")  # nothing typed is lost


def test_on_a_phone_the_message_of_the_field_to_fix_is_not_hidden_under_the_pop_ups_buttons(signed_in_page: Page,
                                                                                            htmx, apple, run_jobs):
    server = add_simulated_server(htmx, apple, 3, run_jobs=run_jobs, apple_server=SIM)
    page = signed_in_page
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"/servers/{server.id}/devices")
    page.get_by_role("link", name="Release Devices…").click()
    dialog = page.get_by_role("dialog", name="Release Devices")
    dialog.get_by_label("Serial numbers").fill("NOPE1234")
    dialog.get_by_label("Type RELEASE to confirm").fill("RELEASE")
    dialog.get_by_role("button", name="Release Devices").click()
    message = dialog.locator(".field").filter(has=page.get_by_label("Serial numbers")).get_by_role("alert")
    expect(message).to_contain_text("This serial number is not a device of Paris: NOPE1234.")
    expect(dialog.get_by_label("Serial numbers")).to_be_focused()
    page.wait_for_timeout(300)  # the scroll
    shown, buttons = message.bounding_box(), dialog.locator(".form-actions").bounding_box()
    assert shown["y"] + shown["height"] <= buttons["y"], (shown, buttons)  # above the buttons, readable


def test_the_first_click_on_next_page_after_a_search_is_not_undone(signed_in_page: Page, app):
    """Typing a search, then clicking Next page: leaving the search box fired the form's "change", whose request
    (page 1) raced the pager's and often won; the first click seemed lost."""
    from tests.devices_helpers import _seed, _server

    _seed(_server("Big"), *[{"serial_number": f"SRCH{i:04d}"} for i in range(150)],
          *[{"serial_number": f"OTHR{i:04d}"} for i in range(20)])
    page = signed_in_page
    page.goto("/devices")
    page.get_by_label("Search").fill("SRCH")
    expect(page).to_have_url(re.compile(r"q=SRCH"))
    table = page.locator("#device-table")
    expect(table.get_by_role("cell", name="SRCH0000", exact=True)).to_be_visible()

    # From now on the first page of the search answers late, as on a busy server: a request for it sent along
    # with the pager's would then land last and put page 1 back.
    from flask import request

    view = app.view_functions["devices.index"]

    def first_page_late(*args, **kwargs):
        if request.args.get("q") == "SRCH" and not (request.args.get("page") or request.args.get("after")):
            time.sleep(0.8)
        return view(*args, **kwargs)

    app.view_functions["devices.index"] = first_page_late
    table.get_by_role("link", name=re.compile("Next page")).first.click()
    expect(table.get_by_role("cell", name="SRCH0149", exact=True)).to_be_visible()
    page.wait_for_timeout(1000)  # what the stray request needed to put page 1 back
    expect(table.get_by_role("cell", name="SRCH0149", exact=True)).to_be_visible()
    expect(table.get_by_role("cell", name="SRCH0000", exact=True)).to_have_count(0)


def test_give_a_device_a_profile_from_its_page_with_the_keyboard(signed_in_page: Page, htmx, apple, run_jobs):
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import Device
    from tests.assignments_helpers import configured_profile
    from tests.browser.shots import shot

    server = add_simulated_server(htmx, apple, 3, run_jobs=run_jobs, apple_server=SIM)
    configured_profile(server, "Sales")
    configured_profile(server, "Staff")
    device = db.session.execute(select(Device).where(Device.server_id == server.id).order_by(Device.id)).scalars().first()
    page = signed_in_page
    page.goto(f"/devices/{device.id}")
    page.get_by_role("link", name="Add Devices…").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name=f"Add Devices: {device.serial_number}")
    expect(dialog.get_by_role("radio", name="Sales")).to_be_visible()
    shot(page, "device-add-devices.png")
    dialog.get_by_role("radio", name="Staff").focus()
    page.keyboard.press("Space")
    page.keyboard.press("Enter")  # on a radio button: chooses, does not send (portal.js)
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="OK").focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**/assignments/*")
    expect(page.get_by_role("status").first).to_contain_text(f"Assigning “Staff” to {device.serial_number}")
    assert run_jobs() == []
    page.goto(f"/devices/{device.id}")
    expect(page.locator("#enrollment")).to_contain_text("Staff")
    expect(page.get_by_role("link", name="Change profile…")).to_be_visible()


def test_back_after_a_search_typed_with_pauses_goes_to_the_list_before_it(signed_in_page: Page, fleet):
    """Each pause while typing pushed a URL (Back went through ?q=C0, ?q=C), and a filter applied on change then with
    Apply pushed the same URL twice. The search is one entry, Apply on an applied filter none."""
    page = signed_in_page
    page.goto("/devices")
    page.get_by_label("Search").press_sequentially("C0", delay=700)  # a pause after each key: two requests
    expect(page).to_have_url(re.compile(r"/devices\?q=C0(&|$)"))
    page.get_by_label("Device family").select_option("Mac")
    expect(page).to_have_url(re.compile(r"family=Mac"))
    with page.expect_response(lambda r: "/devices?" in r.url):
        page.get_by_role("button", name="Apply").click()

    page.go_back()
    expect(page).to_have_url(re.compile(r"/devices\?q=C0(&sort=serial&direction=asc)?$"))
    expect(page.get_by_label("Device family")).to_have_value("")  # the page loaded again (htmx keeps no snapshot)
    page.wait_for_load_state()
    page.go_back()
    expect(page).to_have_url(re.compile(r"/devices$"))
    expect(page.get_by_label("Search")).to_have_value("")
    page.wait_for_load_state()
    page.go_back()
    expect(page).to_have_url(re.compile(r"/servers$"))  # where the admin was before the list
