"""The layout in a real browser: at phone width nothing scrolls sideways but a table inside its own box."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.shots import shot

pytestmark = pytest.mark.browser


def test_pages_fit_a_phone_screen_and_only_tables_scroll_sideways(signed_in_page: Page, configured_paris):
    page = signed_in_page
    page.set_viewport_size({"width": 375, "height": 800})
    for url in ("/servers", f"/servers/{configured_paris}", "/configurations", "/activity/", "/devices", "/profiles",
                "/assignments/retries", "/settings/apple", "/system/"):
        page.goto(url)
        expect(page.locator("main h1")).to_be_visible()
        shot(page, f"narrow{url.rstrip('/').replace('/', '-')}.png")
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"{url} is {widths[0]} px wide on a {widths[1]} px screen"
        # The navigation stays whole above the content: both groups, every link in view.
        nav = page.get_by_role("navigation", name="Main")
        for name in ("Device Assignment", "Activity log"):
            box = nav.get_by_role("link", name=name).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= widths[1], f"{name} cut off on {url}"
        assert nav.bounding_box()["y"] + nav.bounding_box()["height"] <= page.locator("main").bounding_box()["y"] + 1


def test_back_to_the_whole_activity_log_shows_its_filters_as_the_url_says(signed_in_page: Page):
    """Level chosen, Apply, then Back: the form showed "Warning" above the whole log (the browser kept the page as it
    was left, select included)."""
    page = signed_in_page
    page.goto("/activity/")
    page.get_by_label("Level").select_option("warning")
    page.get_by_label("Search").fill("server")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"level=warning"))
    expect(page.get_by_label("Level")).to_have_value("warning")

    page.go_back()
    expect(page).to_have_url(re.compile(r"/activity/$"))
    expect(page.get_by_label("Level")).to_have_value("")
    expect(page.get_by_label("Search")).to_have_value("")

    page.go_forward()
    expect(page).to_have_url(re.compile(r"level=warning"))
    expect(page.get_by_label("Level")).to_have_value("warning")
    expect(page.get_by_label("Search")).to_have_value("server")


@pytest.mark.parametrize("slow_script", [False, True], ids=["as_usual", "forward_before_the_page_is_set_up"])
def test_back_to_all_profiles_shows_the_server_filter_as_the_url_says(signed_in_page: Page, configured_paris, app,
                                                                        slow_script):
    """And Forward the filtered list again. `slow_script`: Forward pressed while the page that Back loaded again
    was still being set up (its scripts not run yet), which left the address on the filtered list and the page on
    the whole list, its filter on "All managed servers"."""
    import time

    page = signed_in_page
    page.goto("/profiles")
    page.get_by_label("Managed server").select_option(str(configured_paris))
    expect(page).to_have_url(re.compile(rf"server={configured_paris}"))
    if slow_script:  # from now on the page's script arrives late, as on a slow network: shown before it is set up
        static = app.view_functions["static"]

        def late_script(filename):
            if filename == "js/portal.js":
                time.sleep(1.5)
            return static(filename=filename)

        app.view_functions["static"] = late_script
    page.go_back()
    expect(page).to_have_url(re.compile(r"/profiles$"))
    expect(page.get_by_label("Managed server")).to_have_value("")
    page.go_forward()
    expect(page).to_have_url(re.compile(rf"server={configured_paris}"))
    expect(page.get_by_label("Managed server")).to_have_value(str(configured_paris))
    expect(page.locator("#profile-table")).to_contain_text("Paris")


def test_the_device_search_shows_its_whole_hint(signed_in_page: Page, configured_paris):
    """At desktop width the search box cut its placeholder to "Serial number, model or descr"."""
    page = signed_in_page
    page.set_viewport_size({"width": 1280, "height": 800})
    for url in ("/devices", f"/servers/{configured_paris}/devices"):
        page.goto(url)
        search = page.get_by_label("Search")
        expect(search).to_have_attribute("placeholder", "Serial number, model or description")
        room, needed = search.evaluate("""input => {
            const style = getComputedStyle(input);
            const context = document.createElement("canvas").getContext("2d");
            context.font = style.font;
            return [input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight),
                    context.measureText(input.placeholder).width];
        }""")
        assert needed <= room, f"{url}: the hint needs {needed:.0f} px, the box has {room:.0f}"


def test_the_profiles_server_filter_is_styled_as_the_other_filter_bars(signed_in_page: Page, configured_paris):
    """Enrollment Profiles' "Managed server" select was the browser's bare one: small text, 19 px tall, grey frame."""
    page = signed_in_page
    page.goto("/devices")
    reference = page.locator("#f-server").evaluate("s => getComputedStyle(s).borderTopColor")
    page.goto("/profiles")
    select = page.get_by_label("Managed server")
    expect(select).to_be_visible()
    style = select.evaluate("""s => [getComputedStyle(s).borderTopColor, s.getBoundingClientRect().height,
                                      getComputedStyle(s).fontSize, getComputedStyle(s.form).fontSize]""")
    assert style[0] == reference, f"frame {style[0]}, the device list's {reference}"
    assert style[1] >= 28, f"{style[1]} px tall"
    assert style[2] == style[3], f"text {style[2]} in a form written in {style[3]}"


FILTER_CONTROLS = """form => Array.from(form.querySelectorAll(
        "input:not([type=hidden]):not([type=checkbox]):not([type=radio]), select, button, a.button"))
    .filter(el => el.getClientRects().length > 0)
    .map(el => [el.id || el.name || el.textContent.trim(), Math.round(el.getBoundingClientRect().height * 10) / 10])"""


def _filter_bar_heights(form) -> dict[str, float]:
    heights = dict(form.evaluate(FILTER_CONTROLS))
    assert len(heights) >= 2, heights
    return heights


def test_the_controls_of_every_filter_bar_are_one_height(signed_in_page: Page, configured_paris):
    """The search box, the selects and Apply/Filter stood a few pixels apart in height on the device lists, the
    profile list and the Add Devices pop-up: one height for all of them, on every one of those bars."""
    from tests.assignments_helpers import configured_profile
    from portal.extensions import db
    from portal.models import ManagedServer

    profile = configured_profile(db.session.get(ManagedServer, configured_paris))
    page = signed_in_page
    page.set_viewport_size({"width": 1280, "height": 800})
    bars = {}
    for url in ("/devices", f"/servers/{configured_paris}/devices", "/profiles", "/activity/"):
        page.goto(url)
        bars[url] = _filter_bar_heights(page.locator("main form[role=search]").first)
        shot(page, f"filter-bar{url.rstrip('/').replace('/', '-')}.png")
    page.goto(f"/profiles/{profile.id}")
    page.locator("#profile-devices").get_by_role("link", name="Add Devices", exact=True).click()
    dialog = page.get_by_role("dialog", name="Select the Managed Devices")
    bars["Add Devices"] = _filter_bar_heights(dialog.locator("form[role=search]"))
    shot(page, "filter-bar-add-devices.png")

    every = {height for heights in bars.values() for height in heights.values()}
    assert max(every) - min(every) <= 0.5, bars


def test_apply_and_clear_filters_are_spaced_alike_on_every_filtered_list(signed_in_page: Page):
    """The activity log's Clear filters stuck to Apply (no gap), unlike Managed Devices': both are spaced the same."""
    page = signed_in_page
    gaps = {}
    for url in ("/devices?q=C02", "/activity/?q=server"):
        page.goto(url)
        form = page.get_by_role("search")
        apply, clear = form.get_by_role("button", name="Apply"), form.get_by_role("link", name="Clear filters")
        gaps[url] = clear.bounding_box()["x"] - (apply.bounding_box()["x"] + apply.bounding_box()["width"])
    assert gaps["/activity/?q=server"] >= 8, gaps
    assert abs(gaps["/activity/?q=server"] - gaps["/devices?q=C02"]) < 1, gaps


def test_a_server_rows_actions_stay_in_view_in_a_narrow_window(signed_in_page: Page, configured_paris):
    """At 800 px the server table scrolled and every action of its rows sat beyond the right edge, with no cue."""
    page = signed_in_page
    page.set_viewport_size({"width": 800, "height": 900})
    page.goto("/servers")
    row = page.locator(f"#server-{configured_paris}")
    for name in ("Synchronize", "Renew a server", "Assign Server Configuration", "Delete"):
        box = row.get_by_role("button", name=name).or_(row.get_by_role("link", name=name)).first.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 800, f"{name} is out of view: {box}"
    shot(page, "servers-800.png")


def test_on_a_phone_a_server_rows_actions_cover_none_of_its_cells(signed_in_page: Page, configured_paris):
    """At 390 px the actions column, kept at the right edge, covered the Apple server, the token status and the
    rest: only sideways scrolling showed them, from under it."""
    page = signed_in_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/servers")
    row = page.locator(f"#server-{configured_paris}")
    expect(row).to_be_visible()
    for scroll in (0, 10_000):  # the table as it opens, then scrolled to its right end
        page.locator(".table-wrap").first.evaluate(f"wrap => wrap.scrollLeft = {scroll}")
        actions = row.locator("td.actions").bounding_box()
        for cell in row.locator("td:not(.actions)").all():
            box = cell.bounding_box()
            assert box["x"] + box["width"] <= actions["x"] + 1, (cell.inner_text(), box, actions)
    shot(page, "servers-390.png")


def test_a_long_name_without_spaces_wraps_instead_of_widening_the_page(signed_in_page: Page, configured_paris, htmx):
    """A configuration named with 120 letters and no space: Select the Server Configuration spilled far past its
    pop-up, and a device's page was 1,402 px wide on a 390 px phone."""
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import Device
    from tests.test_profiles import assign_configuration, make_configuration

    long_name = "N" * 120
    configuration_id, _ = make_configuration(name=long_name, certificates=0)
    page = signed_in_page
    page.goto(f"/servers/{configured_paris}")
    page.get_by_role("toolbar", name="Server actions").get_by_role("link", name="Assign Server Configuration", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text(long_name)
    assert dialog.evaluate("d => d.scrollWidth <= d.clientWidth"), "the pop-up scrolls sideways"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    assign_configuration(htmx, configured_paris, configuration_id)
    device_id = db.session.execute(select(Device.id).where(Device.server_id == configured_paris).limit(1)).scalar_one()
    page.set_viewport_size({"width": 390, "height": 844})
    for url in (f"/devices/{device_id}", f"/servers/{configured_paris}", f"/servers/{configured_paris}/configuration"):
        page.goto(url)
        expect(page.locator("main")).to_contain_text(long_name)
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], (url, widths)


def test_a_long_toast_stays_long_enough_to_read_and_a_short_one_goes_after_six_seconds(signed_in_page: Page):
    """Apple's answer to a token check with what to do about it is two sentences: it stays up to ten seconds; a short
    message goes after six (the page's clock is driven here, not waited for)."""
    page = signed_in_page
    page.clock.install()
    page.goto("/servers")
    page.evaluate("""() => {
        const say = (message, key) => document.body.dispatchEvent(
            new CustomEvent("toast", {detail: {message, category: "info", key}}));
        say("Saved.", "short");
        say("Apple answered the token check: Paris's token status is Terms Not Accepted. An administrator must "
            + "accept the new terms and conditions in Apple Business Manager.", "long");
    }""")
    short, long = page.locator("#toasts .toast[data-key=short]"), page.locator("#toasts .toast[data-key=long]")
    expect(short).to_have_count(1)
    expect(long).to_have_count(1)
    page.clock.run_for(6_100)
    expect(short).to_have_count(0)
    expect(long).to_have_count(1)
    page.clock.run_for(4_000)
    expect(long).to_have_count(0)
