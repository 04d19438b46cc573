"""Log in, find the navigation, log out — in a real browser."""
import pytest
from playwright.sync_api import expect

from tests.browser.shots import shot

pytestmark = pytest.mark.browser


def test_login_navigation_logout(signed_in_page):
    page = signed_in_page
    nav = page.get_by_role("navigation", name="Main")
    for label in ("Device Assignment", "Managed Devices", "Enrollment Profiles", "MDM Server Configurations", "Apple"):
        expect(nav.get_by_role("link", name=label, exact=True)).to_be_visible()
    assert page.evaluate("typeof window.htmx") == "object"  # loaded from the vendored copy
    nav.get_by_role("link", name="Managed Devices").click()
    expect(page.get_by_role("heading", name="Managed Devices")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    page.goto("/servers")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_wrong_password_in_the_browser(page, auth):
    page.goto("/login")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("nope nope nope")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Incorrect user name or password.")).to_be_visible()


def test_htmx_job_polling_in_the_browser(signed_in_page, app, run_jobs):
    page = signed_in_page
    page.goto("/system/")
    page.get_by_role("button", name="Run a test job").click()
    expect(page.get_by_text("Waiting for a worker")).to_be_visible()
    run_jobs()
    expect(page.get_by_text("answered")).to_be_visible()


def test_change_password_from_the_sidebar(signed_in_page):
    from tests.conftest import ADMIN_PASSWORD

    page = signed_in_page
    page.goto("/servers")
    page.get_by_role("link", name="Change password").click()
    expect(page.get_by_role("heading", name="Change password")).to_be_visible()
    expect(page.get_by_label("Current password")).to_be_focused()
    page.get_by_label("Current password").fill(ADMIN_PASSWORD)
    page.get_by_label("New password", exact=True).fill("a much longer passphrase")
    page.get_by_label("New password again").fill("a much longer passphrasE")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#confirm_password-error-1")).to_have_text(
        "The two new passwords differ: type the same one twice.")
    expect(page.get_by_label("New password again")).to_be_focused()  # the keyboard starts on the field to fix
    page.get_by_label("Current password").fill(ADMIN_PASSWORD)
    page.get_by_label("New password", exact=True).fill("a much longer passphrase")
    page.get_by_label("New password again").fill("a much longer passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#toasts")).to_contain_text("Your password was changed.")
    shot(page, "change-password.png")
