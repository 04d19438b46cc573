"""The clock and the waits of the assignment queue, in one place.

Every module asks `timing.now()` for the time (never datetime.now directly), so tests can move
the portal's clock forward to "after the wait" without sleeping.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

CHUNK_SIZE = 1000                   # Apple: at most 1000 devices per call, on every path
FAILED_WAIT = timedelta(hours=24)   # Apple's guidance after a FAILED device
THROTTLED_WAIT = 60                 # seconds, when Apple throttled without saying how long
PROFILE_WAIT = timedelta(minutes=5)  # the profile is being (re)configured: look again soon
TOKEN_WAIT = timedelta(minutes=15)  # the server's token needs the admin: look again later
MAX_CALL_WAIT = 3600                # cap of the backoff after whole-call errors (seconds)
TURN_WAIT = timedelta(minutes=1)    # another request of the server kept Apple busy too long
NEW_JOB_GRACE = timedelta(minutes=2)  # a batch this young may still be on its way to the queue


def now() -> datetime:
    """The current time, aware UTC (tests replace this function)."""
    return datetime.now(timezone.utc)


def throttled_wait(retry_after: int | None, attempts: int) -> int:
    """Seconds before a throttled device is sent again: Apple's retry_after_seconds the first time, then
    twice as long after each throttle in a row (capped at an hour, unless Apple asks for longer), so a
    device Apple keeps throttling is not sent back at Apple's shortest pace for ever."""
    asked = int(retry_after or THROTTLED_WAIT)
    if attempts <= 1:
        return asked
    return max(asked, min(MAX_CALL_WAIT, asked * 2 ** (attempts - 1)))


def call_backoff(attempts: int) -> int:
    """Seconds before sending again after Apple kept failing a whole call: 1, 2, 4 … 60 minutes."""
    return min(MAX_CALL_WAIT, 60 * 2 ** max(0, attempts - 1))
