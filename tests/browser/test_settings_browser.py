"""Configuration › Apple in Chromium: the notification webhook and the SMTP settings are saved, and Send a test
notification / Send a test e-mail show the answer in the page once a worker has sent it."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.shots import shot
from tests.test_email_notifications import mail  # noqa: F401 - a fixture
from tests.test_notifications import webhook  # noqa: F401 - a fixture

pytestmark = pytest.mark.browser


def test_save_a_webhook_and_send_a_test_notification(signed_in_page, run_jobs, webhook):  # noqa: F811
    page = signed_in_page
    page.goto("/settings/apple")
    page.get_by_label("Notification webhook URL").fill("hooks.example.com/x")
    page.get_by_role("button", name="Save").click()
    error = page.locator("#webhook_url-error-1")
    assert "Give an http:// or https:// address" in error.inner_text()
    assert page.get_by_label("Notification webhook URL").input_value() == "hooks.example.com/x"  # kept to fix

    page.get_by_label("Notification webhook URL").fill(webhook.url)
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Configuration › Apple saved.").wait_for()
    _mark_live_region(page, "#test-notification")
    page.get_by_role("button", name="Send a test notification").click()
    page.get_by_text("Waiting for a worker").wait_for()
    assert run_jobs() == []
    page.get_by_text("127.0.0.1 accepted the test notification").wait_for()  # polled into the page
    _said_in_the_same_live_region(page, "#test-notification", "127.0.0.1 accepted the test notification")
    assert webhook.received[0]["json"]["event"] == "test"
    shot(page, "settings-webhook.png")


def test_set_up_e_mail_and_send_a_test_e_mail(signed_in_page, run_jobs, mail):  # noqa: F811
    page = signed_in_page
    page.goto("/settings/apple")
    page.get_by_label("SMTP server").fill("127.0.0.1")
    page.get_by_label("Encryption").select_option("none")
    page.get_by_label("Port").fill(str(mail.port))
    page.get_by_label("Sender address").fill("ade@example.com")
    page.get_by_label("Recipients").fill("it@example.com, oncall")
    page.get_by_role("button", name="Save").click()
    assert "oncall is not an e-mail address" in page.locator("#smtp_recipients-error-1").inner_text()
    assert page.get_by_label("SMTP server").input_value() == "127.0.0.1"  # kept to fix

    page.get_by_label("Recipients").fill("it@example.com")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Configuration › Apple saved.").wait_for()
    _mark_live_region(page, "#test-email")
    page.get_by_role("button", name="Send a test e-mail").click()
    page.get_by_text("Waiting for a worker").wait_for()
    assert run_jobs() == []
    page.get_by_text("127.0.0.1 accepted the test e-mail for it@example.com").wait_for()  # polled into the page
    _said_in_the_same_live_region(page, "#test-email", "127.0.0.1 accepted the test e-mail for it@example.com")
    assert mail.messages()[0]["Subject"] == "[ADE portal] Test e-mail"
    shot(page, "settings-email.png")


def _mark_live_region(page, selector: str) -> None:
    """Tag the element a screen reader listens to, to tell afterwards whether it is still the same one."""
    page.locator(selector).evaluate("el => { el.dataset.before = 'yes'; }")


def _said_in_the_same_live_region(page, selector: str, text: str) -> None:
    """The outcome is said: it changed inside the live region that was there before. A region replaced by a new one
    (the polled panel used to replace itself with its live region) is not read out by screen readers."""
    region = page.locator(f"{selector}[data-before=yes][aria-live=polite]")
    expect(region).to_contain_text(text)
    expect(region.locator("[aria-live]")).to_have_count(0)  # one live region: a nested one would be read twice


def _sign_out_in_another_tab(page, sign_in_again: bool = False) -> None:
    from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD

    other_tab = page.context.new_page()
    other_tab.goto("/servers")
    other_tab.get_by_role("button", name="Sign out").click()
    other_tab.wait_for_url("**/login")
    if sign_in_again:
        other_tab.get_by_label("User name").fill(ADMIN_NAME)
        other_tab.get_by_label("Password").fill(ADMIN_PASSWORD)
        other_tab.get_by_role("button", name="Sign in").click()
        other_tab.wait_for_url("**/servers")
    other_tab.close()


def test_what_was_typed_comes_back_when_the_session_ended_before_save(signed_in_page):
    """Save after the session ended went to the sign-in page, then back to the form as it was saved before."""
    from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD

    page = signed_in_page
    page.goto("/settings/apple")
    page.get_by_label("Notification webhook URL").fill("https://hooks.example.com/ade")
    page.get_by_label("Token expiry warning (days)").fill("45")
    _sign_out_in_another_tab(page)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/login?next=**")
    expect(page.get_by_text("What you entered before your session ended is kept in this tab")).to_be_visible()
    page.get_by_label("User name").fill(ADMIN_NAME)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/settings/apple")
    assert page.get_by_label("Notification webhook URL").input_value() == "https://hooks.example.com/ade"
    assert page.get_by_label("Token expiry warning (days)").input_value() == "45"
    expect(page.get_by_role("status").filter(has_text="Your session ended before this was sent")).to_be_visible()
    assert not page.evaluate("location.hash")  # a reload shows what is saved

    page.get_by_role("button", name="Save").click()
    page.get_by_text("Configuration › Apple saved.").wait_for()
    page.reload()
    assert page.get_by_label("Notification webhook URL").input_value() == "https://hooks.example.com/ade"
    expect(page.get_by_text("Your session ended before this was sent")).to_have_count(0)


def test_what_was_typed_comes_back_when_another_tab_signed_out_and_in_again(signed_in_page):
    """Signed out and in again in another tab: this page's form token belongs to the ended session. Save showed a
    "form expired" error page and what was typed was lost."""
    page = signed_in_page
    page.goto("/settings/apple")
    page.get_by_label("Notification webhook URL").fill("https://hooks.example.com/other")
    _sign_out_in_another_tab(page, sign_in_again=True)
    page.get_by_role("button", name="Save").click()
    page.wait_for_url("**/settings/apple")
    expect(page.get_by_text("Nothing was sent: the form was opened in a session that has ended")).to_be_visible()
    assert page.get_by_label("Notification webhook URL").input_value() == "https://hooks.example.com/other"
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Configuration › Apple saved.").wait_for()
    page.reload()
    assert page.get_by_label("Notification webhook URL").input_value() == "https://hooks.example.com/other"
