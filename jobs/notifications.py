"""Delivering notifications on the channels set in Configuration › Apple (see portal.notifications), with retries."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import redis

from portal.activity.record import record_activity
from portal.email_delivery import send_mail
from portal.email_settings import load_smtp
from portal.extensions import db
from portal.notification_retries import Outcome, retry_delay, tries_left, wait_text
from portal.notifications import DELIVERY_TIMEOUT_S, post, webhook_host, webhook_url
from portal.queue import schedule_in
from portal.vault import VaultError


@dataclass(frozen=True)
class Channel:
    """One way out of the portal: what it delivers to now (None: not set up), how, and how the log names it."""

    target: Callable[[], object | None]
    send: Callable[[object, dict], Outcome]
    where: Callable[[object], str]


CHANNELS = {
    "webhook": Channel(target=lambda: webhook_url() or None, send=post, where=lambda url: f"to {webhook_host(url)}"),
    "email": Channel(target=load_smtp, send=send_mail, where=lambda smtp: f"by e-mail through {smtp.host}"),
}


def deliver(payload: dict, channel: str = "webhook", attempt: int = 1) -> dict:
    """Deliver one event on one channel; a failure that may pass is tried again later (notification_retries).

    The channel's settings are read now, not when the event happened: a channel removed meanwhile sends nothing."""
    spec = CHANNELS.get(channel)
    try:
        target = spec.target() if spec else None
    except VaultError as exc:  # the keys changed without rotate-keys: say so instead of failing silently
        record_activity("notification.failed", level="error", actor="system",
                        summary=f"Notification not delivered by {channel}: {exc}. Save the password again. "
                                f"It said: {payload.get('text', '')}")
        db.session.commit()
        return {"delivered": False, "problem": str(exc)}
    if target is None:
        return {"skipped": f"no {channel} set"}
    outcome, where, said = spec.send(target, payload), spec.where(target), payload.get("text", "")
    if outcome.problem is None:
        if attempt > 1:  # the log said it would try again: close that story
            record_activity("notification.delivered", actor="system",
                            summary=f"Notification delivered {where} on attempt {attempt}. It said: {said}")
            db.session.commit()
        return {"delivered": True, "attempt": attempt}
    delay = retry_delay(attempt, outcome)
    if delay is None:
        given_up = f" Given up after {attempt} attempts." if attempt > 1 else ""
        record_activity("notification.failed", level="error", actor="system",
                        summary=f"Notification not delivered {where}: {outcome.problem}{given_up} It said: {said}")
        db.session.commit()
        return {"delivered": False, "problem": outcome.problem, "attempt": attempt}
    try:  # scheduled before the log promises it: a retry that cannot be scheduled is said to be given up
        schedule_in(delay, "jobs.notifications.deliver", payload, channel, attempt + 1, job_timeout=DELIVERY_TIMEOUT_S)
    except (redis.RedisError, OSError, RuntimeError) as exc:
        record_activity("notification.failed", level="error", actor="system",
                        summary=f"Notification not delivered {where}: {outcome.problem} It could not be tried again "
                                f"(Redis: {exc}). It said: {said}")
        db.session.commit()
        return {"delivered": False, "problem": outcome.problem, "attempt": attempt}
    if attempt == 1:  # once, not once per attempt
        left = tries_left(attempt)
        record_activity("notification.retrying", level="warning", actor="system",
                        summary=f"Notification not delivered {where}: {outcome.problem} Trying again in "
                                f"{wait_text(delay)} ({left} more attempt{'s' if left != 1 else ''} at most). "
                                f"It said: {said}")
        db.session.commit()
    return {"delivered": False, "problem": outcome.problem, "attempt": attempt, "retry_in": delay}


def send_test(token: str) -> dict:
    """Configuration › Apple's Send a test notification: the answer is shown on the page, not logged or retried."""
    url = webhook_url()
    if not url:
        return {"delivered": False, "problem": "No webhook URL is saved."}
    outcome = post(url, {"event": "test", "text": "Test notification from the ADE portal: the webhook works.",
                         "test_id": token})
    return {"delivered": outcome.problem is None, "problem": outcome.problem, "host": webhook_host(url)}


def send_test_email(token: str) -> dict:
    """Configuration › Apple's Send a test e-mail: the server's answer is shown on the page, not logged or retried."""
    try:
        smtp = load_smtp()
    except VaultError as exc:
        return {"delivered": False, "problem": f"{exc}: save the password again."}
    if smtp is None:
        return {"delivered": False, "problem": "No SMTP server is saved."}
    outcome = send_mail(smtp, {"event": "test", "test_id": token,
                               "text": "Test e-mail from the ADE portal: token status changes and expiry "
                                       "reminders will reach these recipients."})
    return {"delivered": outcome.problem is None, "problem": outcome.problem, "host": smtp.host,
            "recipients": ", ".join(smtp.recipients)}
