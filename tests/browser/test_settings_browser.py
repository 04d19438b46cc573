"""Configuration › Apple in Chromium: the notification webhook is saved, and Send a test notification shows
the webhook's answer in the page once a worker has sent it."""
from __future__ import annotations

import pytest

from tests.browser.shots import shot
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
    page.get_by_text("Settings saved").wait_for()
    page.get_by_role("button", name="Send a test notification").click()
    page.get_by_text("Waiting for a worker").wait_for()
    assert run_jobs() == []
    page.get_by_text("127.0.0.1 accepted the test notification").wait_for()  # polled into the page
    assert webhook.received[0]["json"]["event"] == "test"
    shot(page, "settings-webhook.png")
