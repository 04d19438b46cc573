"""Small helpers for answering htmx requests."""
from __future__ import annotations

import json
from urllib.parse import urlsplit

from flask import Response, request


def is_htmx() -> bool:
    """True when the request was made by htmx (and so wants a fragment)."""
    return request.headers.get("HX-Request") == "true"


def current_path() -> str:
    """The path of the page an htmx request was made from (HX-Current-URL), without a trailing slash.

    "" when the header is missing or is not a URL: the client writes it, and urlsplit() refuses
    some text ("http://[x": Invalid IPv6 URL), which would otherwise end the request in a 500.
    """
    try:
        return urlsplit(request.headers.get("HX-Current-URL", "")).path.rstrip("/")
    except ValueError:
        return ""


def hx_trigger(response: Response, **events) -> Response:
    """Add client-side events (refresh a list, show a toast, close the pop-up) to a response."""
    existing = response.headers.get("HX-Trigger")
    merged = json.loads(existing) if existing else {}
    merged.update(events)
    response.headers["HX-Trigger"] = json.dumps(merged)
    return response


def toast(response: Response, message: str, category: str = "success") -> Response:
    """Show a toast message after an htmx request."""
    return hx_trigger(response, toast={"message": message, "category": category})


def hx_redirect(response: Response, url: str) -> Response:
    """Ask htmx to navigate to another page."""
    response.headers["HX-Redirect"] = url
    return response


STOP_POLLING = 286
"""Status code that tells htmx to stop polling and still swap the final markup."""
