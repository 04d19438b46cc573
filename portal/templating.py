"""Jinja filters and globals: dates, durations, htmx pinning."""
from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import quote, urlencode

from flask import Flask, request, url_for

# htmx is loaded from a CDN, pinned and checked with SRI; static/vendor holds the same file
# for networks that cannot reach the CDN.
HTMX_VERSION = "2.0.7"
HTMX_CDN_URL = f"https://cdn.jsdelivr.net/npm/htmx.org@{HTMX_VERSION}/dist/htmx.min.js"
HTMX_SRI = "sha384-ZBXiYtYQ6hJ2Y0ZNoYuI+Nq5MqWBr+chMrS/RkXpNzQCApHEhOt2aY8EJgqwHLkJ"
QUERY_SAFE = "!$'()*,/:;?@"  # what url_for() leaves unencoded in a query (werkzeug's _urlencode)


def format_datetime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    """A timestamp in UTC, or an em dash."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime(fmt)


# The future is said to the nearest unit, from the moment the page was drawn: 23 h 59 min left reads "in 1 day" (the
# 24 hours Apple asks for after FAILED, as the reasons beside it say), a one-year token issued a minute ago "in 365
# days", 6 days 23 hours "in 7 days" (floored, they read a day short). The past is never rounded up.


def _nearest(seconds: float, size: int) -> int:
    return int(seconds / size + 0.5)


def _ahead(seconds: float) -> tuple[int, str]:
    """(count, unit) of a time ahead, to the nearest minute, hour or day: each unit from the moment the smaller one
    rounds to a whole one of it (59 min 40 s is 1 hour; 23 h 40 min is 1 day)."""
    if _nearest(seconds, 60) < 60:
        return _nearest(seconds, 60), "minute"
    if _nearest(seconds, 3600) < 24:
        return _nearest(seconds, 3600), "hour"
    return _nearest(seconds, 86400), "day"


def days_until(value: datetime, now: datetime | None = None) -> int:
    """Days left before `value` (0 once past, or when what is left reads in hours), counted as relative_time
    counts "in N days"."""
    seconds = (value - (now or datetime.now(timezone.utc))).total_seconds()
    count, unit = _ahead(seconds) if seconds > 0 else (0, "")
    return count if unit == "day" else 0


def relative_time(value: datetime | None, now: datetime | None = None) -> str:
    """'3 minutes ago', 'in 12 days': how far a timestamp is from now."""
    if value is None:
        return "never"
    now = now or datetime.now(timezone.utc)
    seconds = (value - now).total_seconds()
    if seconds > 0:
        count, unit = _ahead(seconds)
        return f"in {count} {unit}{'s' if count != 1 else ''}" if count else "in less than a minute"
    seconds = -seconds
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def next_try(value: datetime | None, now: datetime | None = None) -> str:
    """When a retry comes: 'in 5 minutes', or 'due now' once its time has passed (the periodic job sends it within a
    minute; "just now" or "2 minutes ago" read as if it had been sent)."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    if value <= (now or datetime.now(timezone.utc)):
        return "due now"
    return relative_time(value, now)


def format_duration(seconds: float | None) -> str:
    """A duration like '850 ms', '2 min 5 s', '3 h 4 min' or '2 days 5 h' (a job stuck for hours read
    "180 min 0 s")."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days:,} day{'s' if days != 1 else ''} {hours} h"


def url_with(**changes) -> str:
    """The current page's URL with some query arguments changed (None removes one).

    The query string is built here, not by url_for(): given the request's arguments as keywords,
    url_for() reads `endpoint`, `_method`, `_scheme`, `_anchor`... as its own options and refuses a
    path variable's name given twice, so a hand-edited URL such as ?endpoint=x ended in a 500.
    """
    args = request.args.to_dict()
    args.update(changes)
    args = {k: v for k, v in args.items() if v not in (None, "")}
    path = url_for(request.endpoint, **(request.view_args or {}))
    return f"{path}?{urlencode(args, quote_via=quote, safe=QUERY_SAFE)}" if args else path


def server_status(server):
    """The token status of a managed server (for badges)."""
    from .apple_link import status_of

    return status_of(server)


def sync_schedule(server):
    """The automatic synchronization schedule of a managed server (for the server page)."""
    from .servers.schedule import sync_schedule as schedule_of

    return schedule_of(server)


def files_sent() -> bool:
    """Whether the request being answered carried a chosen file (browsers cannot keep them after an error)."""
    return any(f.filename for _, f in request.files.items(multi=True))


def assignment_label(state: str | None) -> str:
    """An Assignment state as the filters word it ("not_accessible" → "Not accessible")."""
    from .devices.filters import ASSIGNMENT_LABELS

    return ASSIGNMENT_LABELS.get(state or "none") or str(state).replace("_", " ").capitalize()


def device_family_label(family: str) -> str:
    """Apple's device_family as the portal names it ("AppleTV" → "Apple TV")."""
    from .models.profile import DEVICE_FAMILIES

    return DEVICE_FAMILIES.get(family, family)


def init_app(app: Flask) -> None:
    """Register the filters and globals."""
    app.jinja_env.filters["datetime"] = format_datetime
    app.jinja_env.filters["ago"] = relative_time
    app.jinja_env.filters["next_try"] = next_try
    app.jinja_env.filters["duration"] = format_duration
    app.jinja_env.filters["assignment_label"] = assignment_label
    app.jinja_env.filters["device_family_label"] = device_family_label
    from .activity.labels import action_label

    app.jinja_env.filters["action_label"] = action_label
    from .models.assignment import ACTION_WORDS, ANSWER_NEXT, ANSWER_WORDS, DONE_WORDS, QUEUED_WORDS

    app.jinja_env.globals.update(action_names=ACTION_WORDS, done_words=DONE_WORDS, queued_words=QUEUED_WORDS,
                                 answer_words=ANSWER_WORDS, answer_next=ANSWER_NEXT)
    app.jinja_env.globals.update(url_with=url_with, server_status=server_status, sync_schedule=sync_schedule,
                                 files_sent=files_sent, htmx_cdn_url=HTMX_CDN_URL, htmx_sri=HTMX_SRI,
                                 htmx_vendored=f"vendor/htmx-{HTMX_VERSION}.min.js")
