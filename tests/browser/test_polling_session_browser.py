"""Pages that poll, in a real browser: their polls do not keep the session alive, and a poll that finds the session
ended leaves the page (and what is typed in an open pop-up) where it is and says so, instead of going to sign-in."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.shots import shot
from tests.browser.test_profiles_browser import _end_session_in_another_tab, _sign_in_again

pytestmark = pytest.mark.browser


@pytest.fixture
def syncing_paris(configured_paris, htmx) -> int:
    """Paris with a synchronization queued (no worker runs it meanwhile): its pages poll. Its id."""
    assert htmx.post(f"/servers/{configured_paris}/sync").status_code == 200
    return configured_paris


def _recorded(page: Page) -> list:
    requests = []
    page.on("request", lambda request: requests.append(request))
    return requests


def _marked(request) -> bool:
    return request.all_headers().get("x-background-poll") == "true"


def _come_back_to(page: Page) -> None:
    """The admin comes back to the page's tab. Headless Chromium keeps every tab visible and focused, so the events a
    browser sends then (the page becomes visible, the window gets focus) are sent here."""
    page.bring_to_front()
    page.evaluate("document.dispatchEvent(new Event('visibilitychange')); window.dispatchEvent(new Event('focus'))")


def test_polls_and_what_their_answers_trigger_are_marked_and_what_the_admin_does_is_not(signed_in_page,
                                                                                          syncing_paris, run_jobs):
    page = signed_in_page
    requests = _recorded(page)
    with page.expect_request(f"**/servers/{syncing_paris}/sync-status") as poll:
        page.goto(f"/servers/{syncing_paris}")
    assert _marked(poll.value)

    with page.expect_request(f"**/servers/{syncing_paris}/configuration") as opened:
        page.get_by_role("toolbar", name="Server actions").get_by_role("link", name="Assign Server Configuration", exact=True).click()
    assert not _marked(opened.value)
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()

    # The poll's last answer sends syncFinished: the sections it refreshes are part of the poll, not the admin's doing.
    with page.expect_request(lambda r: r.url.endswith(f"/servers/{syncing_paris}") and r.resource_type == "xhr"):
        assert run_jobs() == []
    expect(page.locator("#sync-panel")).to_contain_text("Succeeded")
    expect(page.locator("#server-history").get_by_role("row").nth(1)).to_contain_text("Succeeded")
    refreshes = [r for r in requests if r.url.endswith(f"/servers/{syncing_paris}") and r.resource_type == "xhr"]
    assert len(refreshes) == 4  # the header, the summary, the token card and the history
    assert all(_marked(r) for r in refreshes)

    page.goto("/devices")
    with page.expect_request("**/devices?q=ABC*") as search:  # search as you type
        page.get_by_role("searchbox", name="Search").fill("ABC")
    assert not _marked(search.value)


def test_a_poll_that_finds_the_session_ended_keeps_the_page_and_the_pop_up(signed_in_page, syncing_paris):
    """Not sent to the sign-in page while typing: the page says the session ended, polls stop, the pop-up keeps
    everything typed, a pasted key included; sending it then goes to sign-in and back, as for any pop-up."""
    from tests.browser.test_servers_browser import _open_add_server
    from tests.servers_helpers import Identity

    key_pem = Identity().key_pem.decode()
    page = signed_in_page
    requests = _recorded(page)
    page.goto("/servers")
    dialog = _open_add_server(page)
    dialog.get_by_label("Name", exact=True).fill("Lyon")
    dialog.get_by_label("…or paste the private key (PEM)").fill(key_pem)
    _end_session_in_another_tab(page)

    expect(dialog.get_by_role("alert")).to_contain_text("Your session has ended", timeout=5_000)
    assert page.url.endswith("/servers")
    name = dialog.get_by_label("Name", exact=True)
    name.press("End")
    name.press_sequentially(" 2")  # typing goes on
    expect(dialog.get_by_label("Name", exact=True)).to_have_value("Lyon 2")
    expect(dialog.get_by_label("…or paste the private key (PEM)")).to_have_value(key_pem)
    banner = page.locator("#main > .session-ended")
    expect(banner).to_contain_text("Your session has ended (signed out, or unused for too long)")
    expect(banner.get_by_role("link", name="Sign in again")).to_have_attribute("href", "/login?next=/servers")
    shot(page, "session-ended-by-a-poll.png")
    polls = lambda: len([r for r in requests if r.url.endswith(f"/servers/{syncing_paris}/row")])  # noqa: E731
    before = polls()
    page.wait_for_timeout(2_500)  # longer than the 2 s between polls
    assert polls() == before, "the page still polls after the session ended"

    dialog.get_by_role("button", name="Add Server").click()
    page.wait_for_url("**/login?next=/servers")
    expect(page.get_by_role("status")).to_contain_text("Your session has ended")
    _sign_in_again(page)
    page.wait_for_url("**/servers")
    dialog = page.get_by_role("dialog", name="Add a Server")
    expect(dialog.get_by_label("Name", exact=True)).to_have_value("Lyon 2")
    expect(page.locator(".session-ended")).to_have_count(0)


def test_signing_in_again_in_another_tab_brings_the_page_and_its_pop_up_back(signed_in_page, syncing_paris):
    """The admin signs in again in another tab and comes back: the banners go, the polls resume, and the pop-up left
    open is sent as it is (with the new session's CSRF token: the one the page held belonged to the ended session)."""
    page = signed_in_page
    requests = _recorded(page)
    page.goto("/servers")
    page.get_by_role("link", name="Unassign Server Configuration").click()
    dialog = page.get_by_role("dialog", name="Unassign Server Configuration")
    expect(dialog.get_by_role("button", name="Unassign Server Configuration")).to_be_visible()
    _end_session_in_another_tab(page)
    expect(page.locator("#main > .session-ended")).to_be_visible(timeout=5_000)
    expect(dialog.get_by_role("alert")).to_contain_text("Your session has ended")

    other_tab = page.context.new_page()
    other_tab.goto("/login")
    _sign_in_again(other_tab)
    other_tab.wait_for_url(lambda url: "/login" not in url)
    other_tab.close()
    _come_back_to(page)

    expect(page.locator(".session-ended")).to_have_count(0)
    expect(page.locator("#toasts")).to_contain_text("You are signed in again: this page is updated again.")
    polls = lambda: len([r for r in requests if r.url.endswith(f"/servers/{syncing_paris}/row")])  # noqa: E731
    before = polls()
    page.wait_for_timeout(2_500)  # longer than the 2 s between polls
    assert polls() > before, "the page does not poll again"

    dialog.get_by_role("button", name="Unassign Server Configuration").click()
    expect(page.locator("#toasts")).to_contain_text("Server configuration")
    expect(page.locator("#toasts")).to_contain_text("unassigned from Paris.")
    assert page.url.endswith("/servers")


def test_another_admin_signing_in_in_another_tab_asks_for_a_reload(signed_in_page, syncing_paris):
    """What the page shows, and what its pop-up would send, were the previous admin's: it does not carry on as the
    new one, it asks for a reload."""
    from portal.extensions import db
    from portal.models import Admin

    other = Admin(username="second-admin")
    other.set_password("another long password 42")
    db.session.add(other)
    db.session.commit()
    page = signed_in_page
    requests = _recorded(page)
    page.goto("/servers")
    _end_session_in_another_tab(page)
    expect(page.locator("#main > .session-ended")).to_contain_text("Your session has ended", timeout=5_000)

    other_tab = page.context.new_page()
    other_tab.goto("/login")
    other_tab.get_by_label("User name").fill("second-admin")
    other_tab.get_by_label("Password").fill("another long password 42")
    other_tab.get_by_role("button", name="Sign in").click()
    other_tab.wait_for_url(lambda url: "/login" not in url)
    other_tab.close()
    _come_back_to(page)

    banner = page.locator("#main > .session-ended")
    expect(banner).to_contain_text("Another admin is signed in now (in another tab)")
    expect(banner.get_by_role("link", name="Reload the page")).to_have_attribute("href", re.compile(r"/servers$"))
    polls = lambda: len([r for r in requests if r.url.endswith(f"/servers/{syncing_paris}/row")])  # noqa: E731
    before = polls()
    page.wait_for_timeout(2_500)
    assert polls() == before, "the page polls as the other admin"
    banner.get_by_role("link", name="Reload the page").click()
    expect(page.locator(".session-ended")).to_have_count(0)


def test_polls_that_fail_say_so_once_and_the_notice_goes_when_they_are_answered_again(signed_in_page, syncing_paris):
    """The portal unreachable for a while (a restart, the network): one notice while the polls fail, not a toast every
    two seconds, and the page updates again by itself afterwards. Playwright cuts the polls' connections here: the
    portal itself cannot be made unreachable for one page only."""
    page = signed_in_page
    page.goto("/servers")
    cut = []
    page.route(f"**/servers/{syncing_paris}/row", lambda route: (cut.append(route.request.url), route.abort()))
    notice = page.locator("#main > .poll-trouble")
    expect(notice).to_contain_text("The portal cannot be reached: check your connection. This page is not updated "
                                   "meanwhile; it tries again by itself.", timeout=5_000)
    page.wait_for_timeout(4_500)  # two more polls, refused too
    assert len(cut) >= 3
    expect(notice).to_have_count(1)
    expect(page.locator("#toasts .toast")).to_have_count(0)

    page.unroute(f"**/servers/{syncing_paris}/row")
    expect(notice).to_have_count(0, timeout=5_000)
    expect(page.locator("#toasts .toast")).to_have_count(0)

    # An error page instead of the row (the portal's database restarting, say): its words, once, the same way.
    page.route(f"**/servers/{syncing_paris}/row", lambda route: route.fulfill(
        status=503, content_type="text/html",
        body='<main class="error-page"><h1>Unavailable</h1><p>The database is not answering.</p></main>'))
    expect(notice).to_contain_text("The database is not answering. This page is not updated meanwhile", timeout=5_000)
    page.wait_for_timeout(2_500)
    expect(notice).to_have_count(1)
    expect(page.locator("#toasts .toast")).to_have_count(0)
