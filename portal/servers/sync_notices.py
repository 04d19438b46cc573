"""What a running synchronization is waiting for, while the client retries a call Apple did not
answer (5xx, 429, a network error): without it the page shows "Running, 0 pages" for up to half a
minute, which reads as stuck. Kept in Redis for as long as the wait, never in the run's row: the
sync's own transaction must not be committed for a notice.
"""
from __future__ import annotations

import logging
import math
import time

from redis.exceptions import RedisError

from ..queue import get_redis

log = logging.getLogger(__name__)
KEY = "portal:sync-retry:{}"
_sleep = time.sleep  # tests look at the panel while the client waits
_now = time.time  # and move the clock on


class RetryNotice:
    """A DEPClient `sleep` that says on the run's panel, for as long as it sleeps, that Apple is retried, and why (its
    `note`, the client's `on_retry`). Called from the sync's fetching thread: the Redis connection is taken here, in
    the app context."""

    def __init__(self, run_id: int) -> None:
        self.run_id, self.redis, self.retries, self.why = run_id, get_redis(), 0, None

    def note(self, why: str) -> None:
        self.why = why

    def __call__(self, seconds: float) -> None:
        self.retries += 1
        # When, not how long: the panel polls, and counts down to it (it said "in 15 s" for 15 s).
        notice = f"{_now() + seconds:.3f} {self.retries + 1}" + (f" {self.why}" if self.why else "")
        try:
            self.redis.set(KEY.format(self.run_id), notice, px=int(seconds * 1000) + 1000)
        except RedisError:  # only a notice: the sync goes on
            log.warning("run %s: could not store the retry notice", self.run_id)
        _sleep(seconds)


sleep_with_notice = RetryNotice


def retry_notice(run_id: int) -> str | None:
    """The run's current retry notice, if the client is waiting to call Apple again."""
    try:
        value = get_redis().get(KEY.format(run_id))
    except RedisError:
        return None
    if not value:
        return None
    try:
        at, attempt, *why = value.decode().split(" ", 2)
        left = math.ceil(float(at) - _now())
        int(attempt)
    except ValueError:  # written by a worker of an older version, in words: shown as it is
        return value.decode()
    # "Try", not "retry": a synchronization that gives up waits for its own "retry N of 3" (sync._retry_later).
    when = f"in {left:,} s" if left >= 1 else "now"
    return f"{why[0] if why else 'Apple did not answer the last request'}: asking again {when} (try {attempt})."


def clear_notice(run_id: int) -> None:
    try:
        get_redis().delete(KEY.format(run_id))
    except RedisError:
        pass


def _register() -> None:
    from . import bp

    @bp.app_context_processor
    def _notices():
        from .sync import RETRY_DELAYS

        return {"sync_retry_notice": retry_notice, "sync_retries": len(RETRY_DELAYS)}


_register()
