"""Browser tests: Playwright drives Debian's Chromium (Playwright's own browser download is not used)."""
from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"


def pytest_collection_modifyitems(config, items):
    if os.path.exists(CHROMIUM):
        return
    skip = pytest.mark.skip(reason=f"browser tests skipped: no Chromium at {CHROMIUM} "
                                   "(install Debian's 'chromium' package, or set CHROMIUM_PATH)")
    for item in items:
        if "browser" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    # The CDN is unreachable here, which also proves the vendored htmx fallback works.
    context.route("https://cdn.jsdelivr.net/**", lambda route: route.abort())
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    # A test's route handler still holding a request (a slowed answer) must not fail the next test's
    # setup with "Target page, context or browser has been closed" once this context is gone.
    page.unroute_all(behavior="ignoreErrors")
    context.close()


@pytest.fixture
def signed_in_page(page, auth):
    from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD

    page.goto("/login")
    page.get_by_label("User name").fill(ADMIN_NAME)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/servers")
    return page


@pytest.fixture
def configured_paris(htmx, apple, run_jobs) -> int:
    """Paris, added through Add Server and synchronized (5 devices), with a server configuration assigned: its id."""
    from tests.servers_helpers import Identity, post_add_server, server_named
    from tests.test_profiles import assign_configuration, make_configuration

    identity = Identity()
    token = apple.state.issue_token("Paris MDM", identity.certificate_pem, devices=5)
    assert post_add_server(htmx, "Paris", token, identity.key_pem).status_code == 204
    assert run_jobs() == []
    server_id = server_named("Paris").id
    configuration_id, _ = make_configuration()
    assign_configuration(htmx, server_id, configuration_id)
    return server_id
