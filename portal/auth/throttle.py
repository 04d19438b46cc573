"""Sign-in throttling: failed sign-ins counted in Redis per account name and per client address.

Every web process on every machine shares the counts through Redis. Each key lives only as
long as it matters (Redis expires it), so there is nothing to clean up:

- `ade:login:failures:<kind>:<id>` counts password checks. The first opens a window of
  LOGIN_LOCKOUT_MINUTES; reaching the limit within it locks the name (or address) by giving the
  key the lock's duration. An attempt takes its place in the count before its password is checked,
  in one Redis script with the test for a lock, so parallel requests cannot slip extra guesses in
  between; a successful sign-in gives its place back (and clears its name's count). While locked,
  attempts are refused before the password is checked and are not counted, so an admin who
  retries during the wait does not prolong it.
- `ade:login:lockouts:<kind>:<id>` counts the locks: each one lasts twice as long as the previous
  (15 minutes, 30, 60, ... up to a day) until a day after the last one ends or, for a name, until
  the admin signs in. A guesser gets LIMIT tries per lock: after the first day, five a day.

Names are compared case-insensitively and stored only as an HMAC (SECRET_KEY), so a password
typed into the name field never lands in Redis; whether the account exists plays no part.
Without Redis, sign-in works unthrottled (fail open, logged): refusing every sign-in instead
would lock every admin out of the portal whenever Redis is down.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
from dataclasses import dataclass

from flask import current_app
from redis.exceptions import RedisError

from ..queue import get_redis

log = logging.getLogger(__name__)

MAX_LOCK_S = 24 * 3600
LOCKOUT_MEMORY_S = 24 * 3600
REDIS_DOWN = (RedisError, OSError)

# Refused when a counter is at its limit (answers the index of the longest lock and its milliseconds
# left); otherwise takes a place in every counter, opening its window if needed (answers 0, counts).
TAKE = """
local longest, which = 0, 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
    local left = redis.call('PTTL', key)
    if left > longest then longest, which = left, i end
  end
end
if which > 0 then return {which, longest} end
local counts = {0}
for i, key in ipairs(KEYS) do
  redis.call('SET', key, 0, 'EX', ARGV[1], 'NX')
  counts[i + 1] = redis.call('INCR', key)
end
return counts
"""

# A place given back to a counter that still exists (one that expired meanwhile stays gone).
GIVE_BACK = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('DECR', key) end
end
"""


@dataclass(frozen=True)
class Subject:
    """What failures are counted against: an account name or a client address."""

    kind: str  # "name" or "address"
    ident: str
    limit: int

    @property
    def failures_key(self) -> str:
        return f"ade:login:failures:{self.kind}:{self.ident}"

    @property
    def lockouts_key(self) -> str:
        return f"ade:login:lockouts:{self.kind}:{self.ident}"


@dataclass(frozen=True)
class Lock:
    """A refusal: which subject is locked, and for how many more seconds."""

    kind: str
    seconds: int
    failures: int = 0  # set when this lock was just started

    @property
    def message(self) -> str:
        """The text shown on the form."""
        what = "for this account" if self.kind == "name" else "from your network address"
        return f"Too many failed sign-ins {what}. Try again in {wait_text(self.seconds)}."


def subjects(username: str, remote_addr: str | None) -> list[Subject]:
    """The name's and the address's counters (a limit of 0 turns one off)."""
    config = current_app.config
    found = []
    if config["LOGIN_MAX_FAILURES"] > 0:
        found.append(Subject("name", name_id(username), config["LOGIN_MAX_FAILURES"]))
    if config["LOGIN_MAX_FAILURES_PER_ADDRESS"] > 0:
        found.append(Subject("address", address_id(remote_addr), config["LOGIN_MAX_FAILURES_PER_ADDRESS"]))
    return found


def name_id(username: str) -> str:
    """A stable, case-insensitive identifier of a typed name that does not reveal it."""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, username.strip().casefold().encode(), hashlib.sha256).hexdigest()[:32]


def address_id(remote_addr: str | None) -> str:
    """The client address; IPv6 by /64, since one host usually holds a whole /64."""
    try:
        ip = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return "unknown"
    if ip.version == 6 and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass
class Attempt:
    """One sign-in attempt: refused by a lock, or holding a place in each counter until it ends."""

    subjects: list[Subject]
    counts: list[int]  # the count each counter reached with this attempt; empty without Redis
    lock: Lock | None = None

    def succeeded(self) -> None:
        """Clear the name's failures and locks; give the address its place back."""
        names = [key for s in self.subjects if s.kind == "name" for key in (s.failures_key, s.lockouts_key)]
        others = [s.failures_key for s in self.subjects if s.kind != "name"]
        try:
            r = get_redis()
            if names:
                r.delete(*names)
            if others and self.counts:
                r.register_script(GIVE_BACK)(keys=others)
        except REDIS_DOWN as exc:
            _unavailable(exc)

    def failed(self) -> list[Lock]:
        """Keep the places taken; lock each counter this attempt filled (usually none)."""
        filled = [(s, count) for s, count in zip(self.subjects, self.counts) if count == s.limit]
        if not filled:
            return []
        try:
            r = get_redis()
            return [_lock(r, s, _window(), count) for s, count in filled]
        except REDIS_DOWN as exc:
            _unavailable(exc)
            return []


def start(username: str, remote_addr: str | None) -> Attempt:
    """Begin an attempt: refused (`.lock`) when the name or address is locked (never when Redis is down)."""
    found = subjects(username, remote_addr)
    if not found:
        return Attempt(found, [])
    try:
        answer = get_redis().register_script(TAKE)(keys=[s.failures_key for s in found],
                                                   args=[_window(), *(s.limit for s in found)])
    except REDIS_DOWN as exc:
        _unavailable(exc)
        return Attempt(found, [])
    if answer[0]:
        return Attempt(found, [], Lock(found[answer[0] - 1].kind, math.ceil(answer[1] / 1000)))
    return Attempt(found, [int(count) for count in answer[1:]])


def clear_name(username: str) -> None:
    """Forget the failures and locks of an account name (after it signed in, or got a new password)."""
    s = Subject("name", name_id(username), 0)
    try:
        get_redis().delete(s.failures_key, s.lockouts_key)
    except REDIS_DOWN as exc:
        _unavailable(exc)


def wait_text(seconds: int) -> str:
    """'1 minute', '15 minutes', '4 hours': rounded up, so the admin never comes back too early."""
    minutes = max(1, math.ceil(seconds / 60))
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{math.ceil(minutes / 60)} hours"


def _lock(r, s: Subject, window: int, failures: int) -> Lock:
    """Lock `s`: the first lock lasts the window, each further one twice the previous, up to a day."""
    pipe = r.pipeline()  # MULTI: the lock count never exists without an expiry either
    pipe.incr(s.lockouts_key)
    pipe.expire(s.lockouts_key, MAX_LOCK_S + LOCKOUT_MEMORY_S)
    lockouts = pipe.execute()[0]
    seconds = min(window * 2 ** min(lockouts - 1, 16), MAX_LOCK_S)
    pipe = r.pipeline()
    pipe.expire(s.failures_key, seconds)
    pipe.expire(s.lockouts_key, seconds + LOCKOUT_MEMORY_S)
    pipe.execute()
    return Lock(s.kind, seconds, failures)


def _window() -> int:
    return max(1, current_app.config["LOGIN_LOCKOUT_MINUTES"]) * 60


def _unavailable(exc: Exception) -> None:
    log.warning("sign-in throttling skipped: Redis unavailable (%s: %s)", type(exc).__name__, exc)
