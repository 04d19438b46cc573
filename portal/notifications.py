"""Notifications outside the portal: a webhook and e-mail that hear of token status changes and expiry reminders.

Renewing a token is easy to forget, and a revoked one stops everything until someone looks at the
portal. The admin may set a webhook URL and an SMTP server (Configuration › Apple); each event is then
POSTed to the webhook as JSON and e-mailed (portal/email_delivery.py) by a worker, never by a web
request, each channel delivered and retried on its own (portal/notification_retries.py). Its "text" line is what the incoming webhooks of chat
tools (Slack, Mattermost, Microsoft Teams workflows) show as is; the other fields are for scripts.

Events are handed to the queue only when the transaction that recorded them commits: a change rolled
back is never announced. The job reads the URL when it runs, so a URL removed meanwhile sends nothing.
A webhook URL often carries a secret (Slack's does), so only its host is ever shown or logged.
"""
from __future__ import annotations

import http.client
import logging
from datetime import datetime, timezone
from urllib.parse import urlsplit

import redis
import requests
from sqlalchemy import event
from sqlalchemy.orm import Session

from .models.setting import get_setting
from .notification_retries import DELIVERED, Outcome
from .url_checks import port_problem, url_text_problem

log = logging.getLogger(__name__)
WEBHOOK_SETTING = "notification_webhook_url"
PENDING_KEY = "notifications"
MAX_URL_LENGTH = 1000  # Setting.value's length
TIMEOUT_S = (5, 10)  # connect, read: a hung webhook holds a worker for seconds, not for ever
DELIVERY_TIMEOUT_S = 120  # RQ's limit on one delivery job, its retries too (an SMTP exchange takes the longest)


def webhook_url() -> str:
    """The configured webhook URL, or "" when notifications are off."""
    return get_setting(WEBHOOK_SETTING).strip()


def webhook_host(url: str) -> str:
    """What may be shown of a webhook URL: its host (the path may hold the secret)."""
    return urlsplit(url).hostname or "the webhook"


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook URL, in words for the field; None when it can."""
    if len(url) > MAX_URL_LENGTH:
        return f"A webhook URL has at most {MAX_URL_LENGTH:,} characters."
    problem = url_text_problem(url)
    if problem or any(ch.isspace() for ch in url):
        return problem or "A URL cannot hold spaces: encode them as %20 or remove them."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "This is not a URL: give the address the chat tool or script gave you, starting with https://."
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "Give an http:// or https:// address, as the chat tool or script gave it (https://hooks.example.com/…)."
    return port_problem(parts)


def channels() -> list[str]:
    """The ways notifications leave the portal that are set up now (each one is delivered and retried apart)."""
    from .email_settings import email_enabled

    return [name for name, on in (("webhook", bool(webhook_url())), ("email", email_enabled())) if on]


def notify(db_session: Session, kind: str, text: str, **fields) -> None:
    """Announce an event on every channel set up, once `db_session` commits (nothing when none is)."""
    targets = channels()
    if not targets:
        return
    payload = {"event": kind, "text": text, "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               **fields}
    db_session.info.setdefault(PENDING_KEY, []).append((payload, targets))


def post(url: str, payload: dict) -> Outcome:
    """POST the payload to the webhook; how it went, with why not in plain words when it was not accepted (2xx).

    Redirects are not followed: a webhook that moved is reported, not chased to wherever it points. No
    connection, no answer in time, 5xx and 429 may pass and are worth another try (notification_retries)."""
    from .apple.client import default_user_agent
    from .apple.errors import parse_retry_after

    host = webhook_host(url)
    try:
        response = requests.post(url, json=payload, timeout=TIMEOUT_S, allow_redirects=False,
                                 headers={"User-Agent": default_user_agent()})
    except requests.ReadTimeout:  # connected, then no answer: a webhook overloaded or hung
        return Outcome(f"{host} did not answer within {TIMEOUT_S[1]} s.", retryable=True)
    except requests.RequestException as exc:
        return _request_problem(exc, url)
    status = response.status_code
    if 200 <= status < 300:
        return DELIVERED
    moved = " (a redirect: give the address it points to)" if 300 <= status < 400 else ""
    return Outcome(f"{host} answered HTTP {status}{moved}.", retryable=status >= 500 or status == 429,
                   retry_after=parse_retry_after(response.headers.get("Retry-After")) if status == 429 else None)


def _request_problem(exc: requests.RequestException, url: str) -> Outcome:
    """Why the POST never got an answer, in plain words (never the exception's text: it holds the URL's path)."""
    from .connection_errors import causes, connection_problem

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    hint = ("check the port in the webhook URL (https:// needs a port that speaks HTTPS, usually 443; http:// one "
            "that speaks plain HTTP)")
    problem = connection_problem(exc, webhook_host(url), port, hint, "receiving service")
    if problem:
        return Outcome(problem.words + ".", retryable=problem.retryable)
    if any(isinstance(cause, http.client.HTTPException) for cause in causes(exc)):
        return Outcome(f"{webhook_host(url)} answered something that is not HTTP: {hint}.")
    if isinstance(exc, requests.ConnectionError):  # something else on the way there: worth another try
        return Outcome(f"{webhook_host(url)} could not be reached: the connection failed before it answered.",
                       retryable=True)
    return Outcome(f"The notification could not be sent to {webhook_host(url)}: the request could not be made "
                   "(check the webhook URL).")


@event.listens_for(Session, "after_commit")
def _send_pending(db_session: Session) -> None:
    pending = db_session.info.pop(PENDING_KEY, None)
    if not pending:
        return
    from .queue import enqueue

    for payload, targets in pending:
        for channel in targets:
            try:
                enqueue("jobs.notifications.deliver", payload, channel, job_timeout=DELIVERY_TIMEOUT_S)
            except (redis.RedisError, OSError, RuntimeError):  # the change itself is committed and logged
                log.warning("a notification could not be queued: %s", payload.get("text"), exc_info=True)


@event.listens_for(Session, "after_soft_rollback")
def _forget_pending(db_session: Session, previous_transaction) -> None:
    db_session.info.pop(PENDING_KEY, None)
