"""Pages that poll, in a real browser: their polls do not keep the session alive, and a poll that finds the session
ended leaves the page (and what is typed in an open pop-up) where it is and says so, instead of going to sign-in."""
from __future__ import annotations

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
