"""When a notification delivery that failed is tried again, and what the activity log says about it.

A webhook or mail server that is restarting, overloaded or briefly unreachable should not cost the admin
a renewal reminder, so a failure that may pass (no connection, no answer in time, HTTP 5xx, 429, a
temporary SMTP refusal) is tried again after each of NOTIFICATION_RETRY_DELAYS, then given up. A refusal
that will not pass by itself (another 4xx, a redirect, a permanent SMTP refusal) is not retried: it needs
the admin. Each retry is a new job held by rq-scheduler, so no worker waits meanwhile.

An e-mail that the server accepts for some recipients and refuses for others is delivered to those: the log
says which were refused and why, as a warning, and a retry goes only to the ones refused for now (4xx), so no one
receives it twice.

The activity log hears of a delivery at most twice: once when it first fails (saying whether it will be
tried again) and once at the end (delivered after all, or given up), never once per attempt.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

RETRY_AFTER_MAX_S = 3600  # a receiver's Retry-After is honoured up to an hour; a reminder later than that is stale


@dataclass(frozen=True)
class Outcome:
    """How one delivery attempt went: `problem` None when delivered, else why not in plain words."""

    problem: str | None = None
    retryable: bool = False  # the reason may pass by itself
    retry_after: int | None = None  # seconds the receiver asked us to wait (HTTP 429 Retry-After)
    partial: bool = False  # delivered to some recipients: `problem` names the others
    retry_to: tuple[str, ...] | None = None  # the only recipients a retry goes to (those refused for now)


DELIVERED = Outcome()


def retry_delay(attempt: int, outcome: Outcome) -> int | None:
    """Seconds before attempt `attempt + 1`, or None when `outcome` is final (delivered, permanent, or no tries left)."""
    delays = current_app.config["NOTIFICATION_RETRY_DELAYS"]
    if outcome.problem is None or not outcome.retryable or attempt > len(delays):
        return None
    delay = delays[attempt - 1]
    if outcome.retry_after:
        delay = max(delay, min(outcome.retry_after, RETRY_AFTER_MAX_S))
    return delay


def tries_left(attempt: int) -> int:
    """How many more attempts follow attempt `attempt` when it fails for a reason that may pass."""
    return max(0, len(current_app.config["NOTIFICATION_RETRY_DELAYS"]) - attempt + 1)


def wait_text(seconds: int) -> str:
    """A delay as people say it: "30 s", "5 minutes", "1 hour"."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes = round(seconds / 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = round(seconds / 3600, 1)
    return f"{hours:g} hour{'s' if hours != 1 else ''}"
