"""The layout in a real browser: at phone width nothing scrolls sideways but a table inside its own box."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.servers_helpers import Identity, post_add_server

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("PORTAL_SHOTS")  # a folder: save screenshots there, to look at the layout


def _shot(page: Page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), full_page=True)


@pytest.fixture
def paris(apple, htmx, run_jobs) -> int:
    """A synchronized server with a server configuration: the widest server table and server page."""
    from tests.test_profiles import assign_configuration, make_configuration

    identity = Identity()
    token = apple.state.issue_token("Paris MDM", identity.certificate_pem, devices=5)
    assert post_add_server(htmx, "Paris", token, identity.key_pem).status_code == 204
    assert run_jobs() == []
    server_id = int(re.search(r"/servers/(\d+)", htmx.get("/servers").get_data(as_text=True)).group(1))
    configuration_id, _ = make_configuration()
    assign_configuration(htmx, server_id, configuration_id)
    return server_id


def test_pages_fit_a_phone_screen_and_only_tables_scroll_sideways(signed_in_page: Page, paris):
    page = signed_in_page
    page.set_viewport_size({"width": 375, "height": 800})
    for url in ("/servers", f"/servers/{paris}", "/configurations", "/activity/", "/devices", "/profiles",
                "/assignments/retries", "/settings/apple", "/system/"):
        page.goto(url)
        expect(page.locator("main h1")).to_be_visible()
        _shot(page, f"narrow{url.rstrip('/').replace('/', '-')}.png")
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


def test_back_to_all_profiles_shows_the_server_filter_as_the_url_says(signed_in_page: Page, paris):
    page = signed_in_page
    page.goto("/profiles")
    page.get_by_label("Managed server").select_option(str(paris))
    expect(page).to_have_url(re.compile(rf"server={paris}"))
    page.go_back()
    expect(page).to_have_url(re.compile(r"/profiles$"))
    expect(page.get_by_label("Managed server")).to_have_value("")
    page.go_forward()
    expect(page).to_have_url(re.compile(rf"server={paris}"))
    expect(page.get_by_label("Managed server")).to_have_value(str(paris))
