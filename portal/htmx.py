"""Small helpers for answering htmx requests."""
from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from urllib.parse import parse_qsl, urlsplit

from flask import Response, redirect, request


def is_htmx() -> bool:
    """True when the request was made by htmx (and so wants a fragment)."""
    return request.headers.get("HX-Request") == "true"


# Set by portal.js on the requests a page sends by itself to follow background work (polls, and what their
# answers trigger), never on what the admin does: those do not keep the session alive (auth/sessions.py).
POLL_HEADER = "X-Background-Poll"


def is_background_poll() -> bool:
    """True when the page sent the request by itself to follow background work, not because the admin did something."""
    return request.headers.get(POLL_HEADER) == "true"


def part_of(page_url: Callable[..., str]):
    """A route that answers htmx for a part of a page (a polled panel, a refreshed table or row). Opened in the
    browser itself (a URL copied from the developer tools, a bookmark, a link shared by mistake) it would show a bare,
    unstyled fragment: it goes to the whole page instead, `page_url(**the route's URL variables)`."""
    def decorator(view):
        @wraps(view)
        def fragment_or_page(**kwargs):
            if not is_htmx():
                return redirect(page_url(**kwargs))
            return view(**kwargs)
        return fragment_or_page
    return decorator


def current_path() -> str:
    """The path of the page an htmx request was made from (HX-Current-URL), without a trailing slash.

    "" when the header is missing or is not a URL: the client writes it, and urlsplit() refuses
    some text ("http://[x": Invalid IPv6 URL), which would otherwise end the request in a 500.
    """
    try:
        return urlsplit(request.headers.get("HX-Current-URL", "")).path.rstrip("/")
    except ValueError:
        return ""


def tidy_history(response: Response, search: str = "q") -> Response:
    """Answer a list's pushed request with HX-Replace-Url (which wins over hx-push-url) when a new history entry would
    only be clutter: the URL is the one the page shows already (a filter applied on change, then Apply), or the search
    box `search`, typed in, refines a search the current entry holds already (Back went through ?q=DNP, ?q=DN, ?q=D).
    A search's first keystroke still pushes, so that Back goes to the list as it was before the search."""
    if not is_htmx():
        return response
    current, wanted = _list_state(request.headers.get("HX-Current-URL", "")), _list_state(request.full_path)
    typed_on = request.headers.get("HX-Trigger-Name") == search and dict(current[1]).get(search)
    if current == wanted or (typed_on and current[0] == wanted[0]):
        response.headers["HX-Replace-Url"] = request.full_path.rstrip("?")
    return response


def _list_state(url: str) -> tuple[str, tuple]:
    """A list URL's path and its filled-in parameters, in any order (the lists treat an empty one as a missing one)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "", ()
    return parts.path.rstrip("/"), tuple(sorted(parse_qsl(parts.query)))


def hx_trigger(response: Response, **events) -> Response:
    """Add client-side events (refresh a list, show a toast, close the pop-up) to a response."""
    existing = response.headers.get("HX-Trigger")
    merged = json.loads(existing) if existing else {}
    merged.update(events)
    response.headers["HX-Trigger"] = json.dumps(merged)
    return response


def toast(response: Response, message: str, category: str = "success", *, replaces: str | None = None) -> Response:
    """Show a toast message after an htmx request. `replaces`: a key naming what it is about; a toast shown
    with the same key goes (Apple's answer takes the place of "Checking…", rather than stacking under it)."""
    detail = {"message": message, "category": category}
    if replaces:
        detail["key"] = replaces
    return hx_trigger(response, toast=detail)


def hx_redirect(response: Response, url: str) -> Response:
    """Ask htmx to navigate to another page."""
    response.headers["HX-Redirect"] = url
    return response


STOP_POLLING = 286
ENDED_JOB_STATUSES = ("finished", "failed", "stopped", "canceled")
"""Status code that tells htmx to stop polling and still swap the final markup."""


def polled_job(template: str, job_id: str, func_name: str | None = None) -> tuple[str, int]:
    """A background job's status fragment, polled by the page: 286 (stop polling) once the job has ended
    or is no longer known to Redis. The template gets `job` (or None), `job_id` and `error` (None).
    `func_name`: only a job of that function counts (a test page shows no other job's result)."""
    from flask import render_template

    from .queue import fetch_job

    job = fetch_job(job_id)
    if job is not None and func_name and job.func_name != func_name:
        job = None
    html = render_template(template, job=job, job_id=job_id, error=None)
    ended = job is None or job.get_status(refresh=False) in ENDED_JOB_STATUSES
    return html, (STOP_POLLING if ended else 200)
