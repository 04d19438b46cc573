"""Delivering notifications on the channels set in Configuration › Apple (see portal.notifications), with retries."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import redis

from portal.activity.record import record_activity
from portal.email_delivery import send_mail
from portal.email_settings import SmtpSettings, load_smtp, parse_address
from portal.extensions import db
from portal.notification_retries import Outcome, retry_delay, tries_left, wait_text
from portal.notifications import DELIVERY_TIMEOUT_S, post, webhook_host, webhook_url
from portal.queue import schedule_in
from portal.vault import VaultError


@dataclass(frozen=True)
class Channel:
    """One way out of the portal: what it delivers to now (None: not set up), how, and how the log names it; `narrow`
    keeps only some recipients of a target (None when none of them is left)."""

    target: Callable[[], object | None]
    send: Callable[[object, dict], Outcome]
    where: Callable[[object], str]
    narrow: Callable[[object, tuple[str, ...]], object | None] = lambda target, recipients: target


def _email_to_only(smtp: SmtpSettings, recipients: tuple[str, ...]) -> SmtpSettings | None:
    """The SMTP settings of now, sending only to those of `recipients` (envelope addresses) still among them."""
    wanted = {address.lower() for address in recipients}

    def still_wanted(text: str) -> bool:
        try:
            return parse_address(text).envelope.lower() in wanted
        except ValueError:
            return False

    kept = tuple(filter(still_wanted, smtp.recipients))
    return replace(smtp, recipients=kept) if kept else None


CHANNELS = {
    "webhook": Channel(target=lambda: webhook_url() or None, send=post, where=lambda url: f"to {webhook_host(url)}"),
    "email": Channel(target=load_smtp, send=send_mail, where=lambda smtp: f"by e-mail through {smtp.host}",
                     narrow=_email_to_only),
}


def deliver(payload: dict, channel: str = "webhook", attempt: int = 1, only_to: list[str] | None = None) -> dict:
    """Deliver one event on one channel; a failure that may pass is tried again later (notification_retries).

    The channel's settings are read now, not when the event happened: a channel removed meanwhile sends nothing.
    `only_to`: a retry for the recipients refused for now, not the ones that have the e-mail already."""
    spec = CHANNELS.get(channel)
    try:
        target = spec.target() if spec else None
    except VaultError as exc:  # the keys changed without rotate-keys: say so instead of failing silently
        record_activity("notification.failed", level="error", actor="system",
                        summary=f"Notification not delivered by {channel}: {exc}. Save the password again. "
                                f"It said: {payload.get('text', '')}")
        db.session.commit()
        return {"delivered": False, "problem": str(exc)}
    if target is not None and only_to:
        target = spec.narrow(target, tuple(only_to))
    if target is None:
        return {"skipped": f"no {channel} set" if not only_to else "its recipients are no longer set"}
    outcome, where, said = spec.send(target, payload), spec.where(target), payload.get("text", "")
    to = f" to {', '.join(only_to)}" if only_to else ""
    if outcome.problem is None:
        if attempt > 1:  # the log said it would try again: close that story
            record_activity("notification.delivered", actor="system",
                            summary=f"Notification delivered {where}{to} on attempt {attempt}. It said: {said}")
            db.session.commit()
        return {"delivered": True, "attempt": attempt}
    # Delivered to some recipients: a warning, not an error, and never "not delivered".
    lead = (f"Notification delivered {where} to only some recipients" if outcome.partial
            else f"Notification not delivered {where}{to}")
    delay = retry_delay(attempt, outcome)
    if delay is None:
        given_up = f" Given up after {attempt} attempts." if attempt > 1 else ""
        record_activity("notification.partly_delivered" if outcome.partial else "notification.failed",
                        level="warning" if outcome.partial else "error", actor="system",
                        summary=f"{lead}: {outcome.problem}{given_up} It said: {said}")
        db.session.commit()
        return {"delivered": outcome.partial, "problem": outcome.problem, "attempt": attempt}
    retry_to = list(outcome.retry_to) if outcome.retry_to else only_to
    try:  # scheduled before the log promises it: a retry that cannot be scheduled is said to be given up
        schedule_in(delay, "jobs.notifications.deliver", payload, channel, attempt + 1, *([retry_to] if retry_to else []),
                    job_timeout=DELIVERY_TIMEOUT_S)
    except (redis.RedisError, OSError, RuntimeError) as exc:
        record_activity("notification.partly_delivered" if outcome.partial else "notification.failed",
                        level="warning" if outcome.partial else "error", actor="system",
                        summary=f"{lead}: {outcome.problem} It could not be tried again (Redis: {exc}). It said: {said}")
        db.session.commit()
        return {"delivered": outcome.partial, "problem": outcome.problem, "attempt": attempt}
    if attempt == 1 or outcome.retry_to:  # once, not once per attempt (unless whom it goes to changes)
        left = tries_left(attempt)
        again_for = f" for {', '.join(retry_to)}" if outcome.retry_to else ""
        record_activity("notification.retrying", level="warning", actor="system",
                        summary=f"{lead}: {outcome.problem} Trying again{again_for} in {wait_text(delay)} ({left} more "
                                f"attempt{'s' if left != 1 else ''} at most). It said: {said}")
        db.session.commit()
    return {"delivered": outcome.partial, "problem": outcome.problem, "attempt": attempt, "retry_in": delay}


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
    return {"delivered": outcome.problem is None, "partial": outcome.partial, "problem": outcome.problem,
            "host": smtp.host, "recipients": ", ".join(smtp.recipients)}
