"""The keyboard's place survives htmx: an admin working with the keyboard (or a screen reader) stays where they
were when a polled row refreshes, a list is sorted or paged, a pop-up's work refreshes the list behind it, or the
button that opened a pop-up is replaced while it is open. Focus must never fall back to <body> (the top of the
page, and out of the pop-up), and Tab goes round an open pop-up, never out of it."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AssignmentBatch

from tests.servers_helpers import add_simulated_server, server_named
from tests.assignments_helpers import SIM, configured_profile, devices_of

pytestmark = pytest.mark.browser


def focused(page: Page) -> str:
    """What has focus, as "TAG words" (BODY when focus was lost)."""
    return page.evaluate("""() => { const a = document.activeElement || document.body;
        return a.tagName + ' ' + (a.getAttribute('aria-label') || (a === document.body ? '' : a.textContent)).trim(); }""")


def settled(page: Page) -> None:
    """Until htmx has set up the content it just swapped in (20 ms later): a key pressed sooner, faster than any
    person, would reach a form htmx does not handle yet."""
    page.wait_for_function("() => !document.querySelector('.htmx-added, .htmx-settling')")


def wait_for_poll(page: Page, url_part: str) -> None:
    """Until the next answer of a polled fragment has been swapped in."""
    with page.expect_response(lambda r: url_part in r.url):
        pass
    page.wait_for_timeout(200)


@pytest.fixture
def server(htmx, apple):
    """Paris, just added: its first synchronization is queued (no worker runs yet), so its row polls every 2 s."""
    return add_simulated_server(htmx, apple, 130, apple_server=SIM)


def test_a_polled_row_keeps_focus_and_so_does_its_synchronize_button(signed_in_page: Page, server, run_jobs):
    page = signed_in_page
    page.goto("/servers")
    row = page.locator(f"#server-{server.id}")
    expect(row.get_by_text("Queued", exact=True)).to_be_visible()

    row.get_by_role("link", name="Delete").focus()
    wait_for_poll(page, f"/servers/{server.id}/row")
    expect(row.get_by_role("link", name="Delete")).to_be_focused()  # the new row's Delete, after the swap

    assert run_jobs() == []
    expect(row.get_by_text("Succeeded", exact=True)).to_be_visible(timeout=10_000)
    expect(row.get_by_role("link", name="Delete")).to_be_focused()
    settled(page)

    # Synchronize from the keyboard: the row comes back with the button disabled while the sync is queued;
    # the keyboard stays in the row (on the next control) instead of going back to the top of the page.
    row.get_by_role("button", name="Synchronize").focus()
    page.keyboard.press("Enter")
    expect(row.get_by_text("Queued", exact=True)).to_be_visible()
    expect(row.get_by_role("button", name="Synchronize")).to_be_disabled()
    expect(row.get_by_role("link", name="Renew a server")).to_be_focused()


def test_focus_goes_back_to_the_opener_even_when_a_poll_replaced_it(signed_in_page: Page, server):
    page = signed_in_page
    page.goto("/servers")
    row = page.locator(f"#server-{server.id}")
    row.get_by_role("link", name="Renew a server").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Renew a server")
    expect(dialog).to_be_visible()
    settled(page)
    wait_for_poll(page, f"/servers/{server.id}/row")  # the row behind the pop-up, opener included, is new
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(row.get_by_role("link", name="Renew a server")).to_be_focused()


def test_deleting_a_server_leaves_the_keyboard_on_the_page(signed_in_page: Page, server, run_jobs):
    assert run_jobs() == []
    page = signed_in_page
    page.goto("/servers")
    page.locator(f"#server-{server.id}").get_by_role("link", name="Delete").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Delete Paris")
    expect(dialog.get_by_label("Type the server name to confirm")).to_be_focused()
    settled(page)
    page.keyboard.type("Paris")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("heading", name="No managed servers yet")).to_be_visible()
    expect(page.locator("#server-table").get_by_role("link", name="Add Server")).to_be_focused()


def test_sorting_and_paging_the_device_list_keep_the_keyboard_on_the_link(signed_in_page: Page, server, run_jobs):
    assert run_jobs() == []
    page = signed_in_page
    page.goto("/devices")
    table = page.locator("#device-table")
    table.get_by_role("link", name=re.compile("^Serial number")).focus()
    page.keyboard.press("Enter")
    expect(table.get_by_role("columnheader", name=re.compile("Serial number"))).to_have_attribute("aria-sort", "descending")
    expect(table.get_by_role("link", name="Serial number ▼")).to_be_focused()

    settled(page)
    page.keyboard.press("Enter")
    expect(table.get_by_role("columnheader", name=re.compile("Serial number"))).to_have_attribute("aria-sort", "ascending")
    expect(table.get_by_role("link", name="Serial number ▲")).to_be_focused()

    settled(page)
    table.get_by_role("link", name="Next page ›").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"page=2"))
    # The last page has no Next page: the keyboard stays in the pager, at its end, on Previous page (not on
    # First page, which a second Enter would take far back on a long list).
    pager = table.get_by_role("navigation", name="Pages")
    expect(pager.get_by_role("link", name="‹ Previous page")).to_be_focused()
    settled(page)
    page.keyboard.press("Enter")
    expect(page).not_to_have_url(re.compile(r"page=2"))
    expect(pager.get_by_role("link", name="Next page ›")).to_be_focused()


def test_the_pop_up_keeps_focus_when_it_pages_and_the_page_gets_it_back_after_ok(signed_in_page: Page, server, run_jobs):
    assert run_jobs() == []
    profile = configured_profile(server_named("Paris"))
    page = signed_in_page
    page.goto(f"/profiles/{profile.id}")
    section = page.locator("#profile-devices")
    section.get_by_role("link", name="Add Devices").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Select the Managed Devices")
    expect(dialog.get_by_label("Search")).to_be_focused()

    settled(page)
    dialog.get_by_role("link", name="Next page ›").focus()
    page.keyboard.press("Enter")
    expect(dialog.get_by_text(re.compile(r"Page 2 of"))).to_be_visible()
    assert dialog.evaluate("d => d.contains(document.activeElement)"), focused(page)  # not out of the pop-up

    first = sorted(devices_of(profile.server_id))[0]
    dialog.get_by_label("Search").fill(first)
    dialog.get_by_role("checkbox", name=f"Select {first}").check()
    settled(page)
    dialog.get_by_role("button", name="OK").focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    # The device section refreshes itself (its Add Devices link is new): the keyboard is on it again.
    expect(section.get_by_text("Latest requests")).to_be_visible()
    expect(section.get_by_role("link", name="Add Devices", exact=True)).to_be_focused()


def test_error_messages_describe_their_field_in_a_pop_up(signed_in_page: Page):
    page = signed_in_page
    page.get_by_role("toolbar", name="Managed servers").get_by_role("link", name="Add Server").click()
    dialog = page.get_by_role("dialog", name="Add a Server")
    dialog.get_by_role("button", name="Add Server").click()
    name = dialog.get_by_label("Name", exact=True)
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(name).to_be_focused()
    error = dialog.locator(".field").filter(has=page.get_by_label("Name", exact=True)).get_by_role("alert")
    # Read with the field (help, then the message), not only announced once when it appears.
    expect(name).to_have_accessible_description(re.compile(r"Unique\..*" + re.escape(error.inner_text())))
    token = dialog.get_by_label("Authentication token", exact=True)
    expect(token).to_have_attribute("aria-invalid", "true")
    expect(token).to_have_accessible_description(
        re.compile(re.escape(dialog.locator(".field").filter(has=page.get_by_label("Authentication token", exact=True))
                             .get_by_role("alert").inner_text())))


def test_a_page_form_with_errors_puts_the_keyboard_on_the_field_to_fix(signed_in_page: Page):
    page = signed_in_page
    page.goto("/settings/apple")
    interval = page.get_by_label("Server Synchronization Interval (seconds)")
    interval.fill("12")
    page.get_by_role("button", name="Save").click()
    expect(interval).to_have_attribute("aria-invalid", "true")
    expect(interval).to_be_focused()
    message = page.locator(".field").filter(has=page.get_by_label("Server Synchronization Interval (seconds)")).get_by_role("alert")
    expect(interval).to_have_accessible_description(re.compile(re.escape(message.inner_text())))


def test_polled_status_changes_are_announced_politely_without_moving_focus(signed_in_page: Page, server, run_jobs):
    page = signed_in_page
    page.goto("/servers")
    row = page.locator(f"#server-{server.id}")
    expect(row.get_by_text("Queued", exact=True)).to_be_visible()
    announcer = page.locator("#announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    page.get_by_role("toolbar", name="Managed servers").get_by_role("link", name="Generate key pair").focus()

    assert run_jobs() == []
    expect(row.get_by_text("Succeeded", exact=True)).to_be_visible(timeout=10_000)
    expect(announcer).to_contain_text("Paris, synchronization: Succeeded")
    expect(page.get_by_role("link", name="Generate key pair")).to_be_focused()  # announced, focus left alone


def test_the_device_filters_announce_the_count_not_the_whole_table(signed_in_page: Page, server, run_jobs):
    assert run_jobs() == []
    page = signed_in_page
    serial = sorted(devices_of(server.id))[0]
    page.goto("/devices")
    # A live region around the table would read every row of it at each keystroke of the search.
    assert page.locator("#device-table").get_attribute("aria-live") is None
    page.get_by_label("Search").fill(serial)
    expect(page.locator("#device-table").get_by_role("row")).to_have_count(2)
    expect(page.locator("#announcer")).to_contain_text("1 device matches the filters")
    expect(page.get_by_label("Search")).to_be_focused()


def test_space_opens_a_pop_up_from_a_link_drawn_as_a_button(signed_in_page: Page):
    page = signed_in_page
    opener = page.get_by_role("toolbar", name="Managed servers").get_by_role("link", name="Add Server")
    opener.focus()
    page.keyboard.press(" ")
    dialog = page.get_by_role("dialog", name="Add a Server")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Name", exact=True)).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()


def test_closing_a_pop_up_with_something_typed_asks_first(signed_in_page: Page):
    page = signed_in_page
    asked = []

    def answer(accept: bool):
        def handle(confirm):
            asked.append(confirm.message)
            confirm.accept() if accept else confirm.dismiss()
        return handle

    opener = page.get_by_role("toolbar", name="Managed servers").get_by_role("link", name="Add Server")
    opener.click()
    dialog = page.get_by_role("dialog", name="Add a Server")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")  # nothing typed: closes at once
    expect(dialog).to_be_hidden()
    assert asked == []

    opener.click()
    expect(dialog).to_be_visible()
    dialog.get_by_label("Name", exact=True).fill("Paris")
    page.once("dialog", answer(False))
    page.keyboard.press("Escape")
    expect(dialog.get_by_label("Name", exact=True)).to_have_value("Paris")  # kept
    assert asked == ["Close without saving? What you entered in this pop-up will be lost."]
    page.once("dialog", answer(False))
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_visible()
    page.once("dialog", answer(True))
    dialog.get_by_role("button", name="Close").click()  # the ✕
    expect(dialog).to_be_hidden()
    assert len(asked) == 3

    opener.click()  # a new pop-up starts unedited
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert len(asked) == 3


def test_the_server_page_header_keeps_focus_when_it_refreshes_after_a_synchronization(signed_in_page: Page, server,
                                                                                       run_jobs):
    """Synchronize pressed from the keyboard on the server page: when the synchronization ends, the header (token
    status, actions) is read again, and the keyboard is still on Synchronize."""
    page = signed_in_page
    assert run_jobs() == []
    page.goto(f"/servers/{server.id}")
    toolbar = page.get_by_role("toolbar", name="Server actions")
    toolbar.get_by_role("button", name="Synchronize").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#sync-panel")).to_contain_text("Queued")
    # The header in the page now is marked: its refresh is seen as the mark going away. (Waiting for the refresh's
    # response instead missed it when the poll saw the end of the synchronization before run_jobs() returned.)
    page.locator("#server-header").evaluate("header => header.dataset.before = 'sync'")
    assert run_jobs() == []
    expect(page.locator("#sync-panel")).to_contain_text("Succeeded", timeout=10_000)
    expect(page.locator("#server-header[data-before]")).to_have_count(0, timeout=10_000)
    settled(page)
    expect(toolbar.get_by_role("button", name="Synchronize")).to_be_focused()


def test_select_all_is_reachable_with_tab_after_a_search(signed_in_page: Page, server, run_jobs):
    """Typed in Search, then Tab towards "Select all N matching the filter": leaving the field (its change event,
    after the list has followed what was typed) must not untick and disable Select all again; it was skipped by Tab
    (and unclickable) until another filter was changed."""
    from portal.models import AssignmentBatch

    assert run_jobs() == []
    profile = configured_profile(server_named("Paris"))
    first = sorted(devices_of(profile.server_id))[0]
    page = signed_in_page
    page.goto(f"/profiles/{profile.id}")
    page.locator("#profile-devices").get_by_role("link", name="Add Devices", exact=True).focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Select the Managed Devices")
    expect(dialog.get_by_label("Search")).to_be_focused()
    settled(page)
    page.keyboard.type(first)
    select_all = dialog.get_by_role("checkbox", name="Select all 1 device matching the filter")
    expect(select_all).to_be_enabled()
    settled(page)

    for _ in range(15):
        page.keyboard.press("Tab")
        if select_all.evaluate("box => box === document.activeElement"):
            break
    expect(select_all).to_be_focused()
    page.keyboard.press(" ")
    expect(select_all).to_be_checked()
    dialog.get_by_role("button", name="OK").focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Assigning 1 device")
    batch = db.session.execute(select(AssignmentBatch)).scalar_one()
    assert [task.serial_number for task in batch.tasks] == [first]


def test_a_pop_up_opens_on_a_control_the_keyboard_can_reach(signed_in_page: Page, server, htmx, run_jobs):
    """Remove Devices with devices ticked keeps "Also remove by serial number" closed: its text box is the first
    field of the pop-up but cannot take focus, and the keyboard was left on the header's ✕ instead of the body."""
    from tests.assignments_helpers import pick

    assert run_jobs() == []
    profile = configured_profile(server_named("Paris"))
    first = sorted(devices_of(profile.server_id))[0]
    assert pick(htmx, profile, [devices_of(profile.server_id)[first].id]).status_code == 204
    assert run_jobs() == []
    page = signed_in_page
    page.goto(f"/profiles/{profile.id}")
    section = page.locator("#profile-devices")
    section.get_by_role("checkbox", name=f"Select {first}").focus()
    page.keyboard.press(" ")
    section.get_by_role("button", name="Remove Devices").focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Remove Devices")
    expect(dialog).to_contain_text(first)
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(section.get_by_role("button", name="Remove Devices")).to_be_focused()


def tab_round(page: Page, dialog, key: str) -> list[str]:
    """Presses `key` until the focus is back on the control it started on (at most 150 times), checking after each
    press that the focus is still in the pop-up, not on the page behind or in the browser's own bar: what had focus
    after each press, the start last."""
    start = page.evaluate_handle("() => document.activeElement")
    trail = []
    for _ in range(150):
        page.keyboard.press(key)
        assert dialog.evaluate("d => d.contains(document.activeElement)"), f"{key} left the pop-up after {trail}"
        trail.append(focused(page))
        if start.evaluate("el => el === document.activeElement"):
            return trail
    raise AssertionError(f"{key} never came back round: {trail}")


def goes_round(page: Page, dialog, first, last) -> None:
    """Tab from the pop-up's last control goes to its first, Shift+Tab from the first to the last, and a whole round
    each way from the control that has focus stays in the pop-up, through both ends."""
    start = page.evaluate_handle("() => document.activeElement")
    first.focus()
    page.keyboard.press("Shift+Tab")
    expect(last).to_be_focused()
    page.keyboard.press("Tab")
    expect(first).to_be_focused()
    start.evaluate("el => el.focus()")
    forth = tab_round(page, dialog, "Tab")
    back = tab_round(page, dialog, "Shift+Tab")
    assert len(forth) == len(back) > 2, (forth, back)
    assert back[:-1] == list(reversed(forth[:-1])), (forth, back)  # the same controls, the other way round


def test_tab_goes_round_a_pop_up_as_it_changes_never_out_of_it(signed_in_page: Page):
    """Add a Server: Tab past its last control (Add Server) and Shift+Tab before its first (the ✕) stay in the pop-up,
    also once the form came back with errors (all new controls), and while it is being sent (Add Server disabled,
    skipped)."""
    page = signed_in_page
    page.get_by_role("toolbar", name="Managed servers").get_by_role("link", name="Add Server").click()
    dialog = page.get_by_role("dialog", name="Add a Server")
    close = dialog.locator("header").get_by_role("button", name="Close")
    add = dialog.get_by_role("button", name="Add Server")
    expect(dialog.get_by_label("Name", exact=True)).to_be_focused()
    settled(page)
    goes_round(page, dialog, close, add)
    dialog.get_by_text("The …_smime.p7m file").click()  # a click on words, not a control: the pop-up has focus
    page.keyboard.press("Shift+Tab")
    expect(add).to_be_focused()

    add.click()  # nothing filled in: the form comes back with its errors
    expect(dialog.get_by_label("Name", exact=True)).to_have_attribute("aria-invalid", "true")
    expect(dialog.get_by_label("Name", exact=True)).to_be_focused()
    settled(page)
    goes_round(page, dialog, close, add)

    # Sent, with the answer held back: Add Server is disabled meanwhile, so Cancel is the last control.
    held = []
    page.route("**/servers/add",
               lambda route: held.append(route) if route.request.method == "POST" else route.continue_())
    dialog.get_by_label("Name", exact=True).fill("Paris")
    add.click()
    expect(add).to_be_disabled()
    close.focus()
    goes_round(page, dialog, close, dialog.get_by_role("button", name="Cancel"))
    held[0].continue_()  # no token chosen: the form comes back with its error, Add Server usable again
    expect(add).to_be_enabled()


def test_tab_goes_round_other_pop_ups_and_their_new_content(signed_in_page: Page, server):
    """Create Profile (its Advanced settings revealed while it is open) and Generate key pair (its form replaced by
    the key pair it made, whose last control is Close)."""
    page = signed_in_page
    page.goto("/profiles")
    page.get_by_role("toolbar", name="Enrollment profiles").get_by_role("link", name="Create Profile").click()
    dialog = page.get_by_role("dialog", name="Add an enrollment profile")
    close = dialog.locator("header").get_by_role("button", name="Close")
    create = dialog.get_by_role("button", name="Create Profile")
    expect(dialog).to_be_visible()
    settled(page)
    goes_round(page, dialog, close, create)
    rounds = len(tab_round(page, dialog, "Tab"))
    dialog.get_by_text("Advanced", exact=True).click()
    dialog.get_by_text("Advanced", exact=True).focus()
    assert len(tab_round(page, dialog, "Tab")) > rounds  # the settings revealed are on the way round
    goes_round(page, dialog, close, create)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    opener = page.get_by_role("link", name="Generate key pair")
    page.goto("/servers")
    opener.click()
    dialog = page.get_by_role("dialog", name="Generate key pair")
    close = dialog.locator("header").get_by_role("button", name="Close")
    expect(dialog).to_be_visible()
    settled(page)
    goes_round(page, dialog, close, dialog.get_by_role("button", name="Generate"))
    dialog.get_by_role("button", name="Generate").click()
    done = dialog.locator(".form-actions").get_by_role("button", name="Close")
    expect(done).to_be_visible()
    settled(page)
    goes_round(page, dialog, close, done)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(opener).to_be_focused()  # still back where the pop-up was opened from


def test_tab_skips_the_controls_the_browser_skips_at_the_ends_of_a_pop_up(signed_in_page: Page):
    """Shift+Tab from the ✕ goes to the last control the keyboard can reach, as Tab itself would: not to one in a
    disabled <fieldset>, under [inert] or made invisible (none of which takes focus, so the keyboard would stay on
    the ✕). No pop-up hides its last controls so yet: they are hidden here by hand, one after the other."""
    page = signed_in_page
    page.get_by_role("toolbar", name="Managed servers").get_by_role("link", name="Add Server").click()
    dialog = page.get_by_role("dialog", name="Add a Server")
    close = dialog.locator("header").get_by_role("button", name="Close")
    expect(dialog.get_by_label("Name", exact=True)).to_be_focused()
    settled(page)

    dialog.get_by_role("button", name="Add Server").evaluate(
        "b => { const f = document.createElement('fieldset'); f.disabled = true; b.replaceWith(f); f.append(b); }")
    goes_round(page, dialog, close, dialog.get_by_role("button", name="Cancel"))
    dialog.get_by_role("button", name="Cancel").evaluate("b => { b.inert = true; }")
    goes_round(page, dialog, close, dialog.get_by_label("Password"))
    dialog.get_by_label("Password").evaluate("el => { el.style.visibility = 'hidden'; }")
    goes_round(page, dialog, close, dialog.get_by_label("…or paste the private key (PEM)"))


def test_select_the_server_configuration_keeps_tab_inside_and_focus_goes_back_to_its_opener(signed_in_page: Page):
    """Assign Server Configuration: Tab goes round the pop-up (its radio buttons included), and OK, which reloads the
    page to show what the configuration changes, leaves the keyboard on the button that opened it, not on <body>.
    On the Enrollment Profiles tab the opener is the warning, gone once a configuration is assigned: the keyboard is
    left where it stood on the page."""
    from tests.test_configurations import _server_row
    from tests.test_profiles import make_configuration

    page = signed_in_page
    server = _server_row("Paris")
    make_configuration(name="Production MDM")
    make_configuration(name="Staging MDM")
    page.goto(f"/servers/{server.id}")
    opener = page.get_by_role("toolbar", name="Server actions").get_by_role("link", name="Assign Server Configuration",
                                                                                         exact=True)
    opener.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Select the Server Configuration")
    close = dialog.locator("header").get_by_role("button", name="Close")
    ok = dialog.get_by_role("button", name="OK")
    expect(dialog.get_by_label("Production MDM")).to_be_focused()
    settled(page)
    goes_round(page, dialog, close, ok)
    dialog.get_by_label("Production MDM").focus()
    page.keyboard.press(" ")
    expect(dialog.get_by_label("Production MDM")).to_be_checked()
    ok.focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Server configuration Production MDM assigned to Paris")
    expect(page.get_by_role("link", name="Unassign Server Configuration")).to_be_visible()  # the page was reloaded
    expect(opener).to_be_focused()

    # Again, once the page is there: Tab from OK straight to the ✕, and back to the opener after OK once more.
    page.keyboard.press("Enter")
    expect(dialog.get_by_label("Production MDM")).to_be_focused()
    settled(page)
    ok.focus()
    page.keyboard.press("Tab")
    expect(close).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(ok).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Production MDM is already the server configuration of Paris")
    expect(opener).to_be_focused()

    # The Enrollment Profiles tab of a server without one: its warning opens the pop-up, and goes with OK.
    other = _server_row("Lyon")
    page.goto(f"/servers/{other.id}/profiles")
    warning = page.locator(".alert-warning").filter(has_text="has no MDM server configuration yet")
    warning.get_by_role("link", name="Assign Server Configuration").focus()
    page.keyboard.press("Enter")
    expect(dialog.get_by_label("Staging MDM")).to_be_visible()
    settled(page)
    dialog.get_by_label("Staging MDM").focus()
    page.keyboard.press(" ")
    ok.focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Server configuration Staging MDM assigned to Lyon")
    expect(warning).to_have_count(0)
    # What now stands where the warning's button stood: the first control of the (empty) list of profiles.
    expect(page.locator("#profile-table").get_by_role("link", name="Create Profile")).to_be_focused()


def test_a_file_chooser_closed_without_a_file_leaves_the_pop_up_open(signed_in_page: Page):
    """Closing the file chooser of Authentication token fires "cancel" on its input, which bubbles to the <dialog>:
    it was taken for Escape, closing an untouched Add Server or asking to throw away what was typed."""
    page = signed_in_page
    asked = []
    page.on("dialog", lambda confirm: (asked.append(confirm.message), confirm.dismiss()))
    page.get_by_role("toolbar", name="Managed servers").get_by_role("link", name="Add Server").click()
    dialog = page.get_by_role("dialog", name="Add a Server")
    expect(dialog).to_be_visible()
    token = dialog.get_by_label("Authentication token", exact=True)
    cancel_chooser = "input => input.dispatchEvent(new Event('cancel', {bubbles: true}))"  # as Chromium fires it
    token.evaluate(cancel_chooser)
    expect(dialog).to_be_visible()  # untouched: it used to close

    dialog.get_by_label("Name", exact=True).fill("Paris")
    token.evaluate(cancel_chooser)
    expect(dialog.get_by_label("Name", exact=True)).to_have_value("Paris")
    assert asked == []  # no "Close without saving?"
    page.keyboard.press("Escape")  # Escape still asks
    assert asked == ["Close without saving? What you entered in this pop-up will be lost."]


def test_enter_on_a_ticked_device_does_not_send_select_the_managed_devices(signed_in_page: Page, server, run_jobs):
    """Chromium sends a form when Enter is pressed on one of its checkboxes: in Select the Managed Devices that was
    OK, assigning the device at Apple with no button pressed."""
    assert run_jobs() == []
    profile = configured_profile(server_named("Paris"))
    page = signed_in_page
    page.goto(f"/profiles/{profile.id}")
    page.locator("#profile-devices").get_by_role("link", name="Add Devices").click()
    dialog = page.get_by_role("dialog", name="Select the Managed Devices")
    first = sorted(devices_of(profile.server_id))[0]
    box = dialog.get_by_role("checkbox", name=f"Select {first}")
    box.focus()
    page.keyboard.press("Space")
    expect(box).to_be_checked()
    page.keyboard.press("Enter")
    settled(page)
    expect(dialog).to_be_visible()  # still open: nothing sent
    expect(box).to_be_checked()
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(AssignmentBatch)).scalar_one() == 0
    dialog.get_by_role("button", name="OK").click()  # the button still sends
    expect(dialog).to_be_hidden()


def test_a_pop_up_form_is_set_up_by_htmx_when_the_pop_up_opens(signed_in_page: Page):
    """The pop-up opens (and takes the keyboard) as its content is swapped in: htmx must have set up that content's
    forms by then. With htmx's default 20 ms settle delay it did so later, and Enter pressed in that window sent
    the form as a plain page instead of into the pop-up."""
    page = signed_in_page
    page.goto("/servers")
    page.evaluate("""() => {
        window.formsReadyWhenOpened = null;
        const dialog = document.getElementById("modal");
        new MutationObserver(() => {
            if (!dialog.open || window.formsReadyWhenOpened !== null) return;
            const forms = [...dialog.querySelectorAll("form[hx-post]")];
            window.formsReadyWhenOpened = forms.length > 0 && forms.every(form => !!form["htmx-internal-data"]);
        }).observe(dialog, {attributes: true, attributeFilter: ["open"]});
    }""")
    page.get_by_role("link", name="Add Server").first.click()
    expect(page.get_by_role("dialog")).to_be_visible()
    assert page.evaluate("window.formsReadyWhenOpened") is True


def test_check_now_keeps_the_keyboard_while_its_card_polls(signed_in_page: Page, server, run_jobs):
    """Check now pressed with Enter: its card polls every 2 s with the button disabled, and each swap sent the
    keyboard to a button of the next card (Enter then opened the wrong pop-up). It stays on Check now, which does
    nothing while Apple is asked, and is on it when Apple has answered."""
    assert run_jobs() == []
    page = signed_in_page
    page.goto(f"/servers/{server.id}")
    card = page.locator("#account-panel")
    check_now = card.get_by_role("button", name="Check now")
    check_now.focus()
    page.keyboard.press("Enter")
    expect(card).to_contain_text("Asking Apple")
    wait_for_poll(page, f"/servers/{server.id}/account")
    wait_for_poll(page, f"/servers/{server.id}/account")
    expect(check_now).to_be_focused()
    expect(check_now).to_have_attribute("aria-disabled", "true")

    posts = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    page.keyboard.press("Enter")  # pending: nothing is sent, no pop-up opens
    page.wait_for_timeout(300)
    assert posts == [] and not page.get_by_role("dialog").is_visible()

    assert run_jobs() == []
    expect(card).not_to_contain_text("Asking Apple", timeout=10_000)
    expect(check_now).not_to_have_attribute("aria-disabled", "true")
    expect(check_now).to_be_focused()
