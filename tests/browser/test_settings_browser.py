"""Configuration › Apple in Chromium: the notification webhook and the SMTP settings are saved, and Send a test
notification / Send a test e-mail show the answer in the page once a worker has sent it."""
from __future__ import annotations

import pytest

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
    page.get_by_role("button", name="Send a test notification").click()
    page.get_by_text("Waiting for a worker").wait_for()
    assert run_jobs() == []
    page.get_by_text("127.0.0.1 accepted the test notification").wait_for()  # polled into the page
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
    page.get_by_role("button", name="Send a test e-mail").click()
    page.get_by_text("Waiting for a worker").wait_for()
    assert run_jobs() == []
    page.get_by_text("127.0.0.1 accepted the test e-mail for it@example.com").wait_for()  # polled into the page
    assert mail.messages()[0]["Subject"] == "[ADE portal] Test e-mail"
    shot(page, "settings-email.png")
