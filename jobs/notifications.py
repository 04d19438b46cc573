"""Delivering notifications to the webhook set in Configuration › Apple (see portal.notifications)."""
from __future__ import annotations

from portal.activity.record import record_activity
from portal.extensions import db
from portal.notifications import post, webhook_host, webhook_url


def deliver(payload: dict) -> dict:
    """POST one event to the webhook; a refusal is recorded in the activity log, where the event is too."""
    url = webhook_url()
    if not url:
        return {"skipped": "no webhook set"}
    problem = post(url, payload)
    if problem:
        record_activity("notification.failed", level="error", actor="system",
                        summary=f"Notification not delivered to {webhook_host(url)}: {problem} It said: "
                                f"{payload.get('text', '')}")
        db.session.commit()
        return {"delivered": False, "problem": problem}
    return {"delivered": True}


def send_test(token: str) -> dict:
    """Configuration › Apple's Send a test notification: the answer is shown on the page, not logged."""
    url = webhook_url()
    if not url:
        return {"delivered": False, "problem": "No webhook URL is saved."}
    problem = post(url, {"event": "test", "text": "Test notification from the ADE portal: the webhook works.",
                         "test_id": token})
    return {"delivered": problem is None, "problem": problem, "host": webhook_host(url)}
