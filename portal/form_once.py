"""One sending per drawn form: a repeated identical POST does nothing twice.

With JavaScript off, a double click on a form's button (Add Server, Create Profile, OK in Add Devices, Remove
Devices, Release Devices, Synchronize…) sends the form twice; the browser shows only the answer to the second.
Each drawn form carries a fresh token (`form_once()` in a template, next to the CSRF token). The first POST with
a token claims it in Redis (SET NX: two requests at once cannot both win); once it succeeded (a redirect, or 204
for htmx) its answer is kept under the token, and any later POST with the same token is sent to that answer, with
the first one's messages and a note, instead of creating or releasing a second time. A POST that failed (the form
back with errors) gives the token up again: the form as fixed is sent with a token of its own anyway, and a
second click that waited behind it is then handled as the first.

Redis, not the cookie session: the two POSTs of a double click carry the same cookie and run at the same time.
"""
from __future__ import annotations

import json
import logging
import secrets
import time

import redis
from flask import Flask, Response, flash, g, make_response, redirect, request, session, url_for
from flask_login import current_user
from markupsafe import Markup

from .htmx import hx_redirect, hx_trigger, is_htmx, toast
from .queue import get_redis

log = logging.getLogger(__name__)

FIELD = "form_once"
MAX_TOKEN_LENGTH = 64
PENDING = "pending"
PENDING_TTL_S = 120  # longer than any form takes (Add Server asks Apple, within its own timeouts)
RESULT_TTL_S = 24 * 3600  # a Back and a resend the next morning still finds the first answer
WAIT_FOR_FIRST_S = 15  # a second click waits this long for the first one's answer
POLL_S = 0.05
REPEATED = "This form had already been sent (its button was clicked twice, say): it was not sent a second time."


def form_once() -> Markup:
    """The hidden field of a drawn form's token (a Jinja global)."""
    return Markup(f'<input type="hidden" name="{FIELD}" value="{secrets.token_urlsafe(16)}">')


def init_app(app: Flask) -> None:
    """Registered after the CSRF check and the login gate: only a signed-in admin's valid POST claims a token."""
    app.add_template_global(form_once)
    app.before_request(_claim)
    app.after_request(_settle)
    app.teardown_request(_give_up)


def _key(token: str) -> str:
    return f"portal:form-once:{current_user.get_id()}:{token}"


def _token() -> str | None:
    if request.method != "POST":
        return None
    token = request.form.get(FIELD, "")
    return token if 0 < len(token) <= MAX_TOKEN_LENGTH else None


def _claim():
    """The first POST of a token goes on; a repeated one gets the first one's answer."""
    token = _token()
    if token is None or not current_user.is_authenticated:
        return None
    key = _key(token)
    try:
        conn = get_redis()
        deadline = time.monotonic() + WAIT_FOR_FIRST_S
        while True:
            if conn.set(key, PENDING, nx=True, ex=PENDING_TTL_S):
                g.form_once_key = key
                return None
            kept = conn.get(key)
            if kept is not None and kept.decode() != PENDING:
                return _repeated(json.loads(kept))
            if time.monotonic() >= deadline:
                return _repeated({"location": None, "flashes": [], "still_running": True})
            time.sleep(POLL_S)
    except redis.RedisError:
        # Without Redis the portal cannot queue jobs either; the form goes on unguarded rather than failing.
        log.warning("form_once: Redis unavailable, POST %s not guarded against a repeat", request.path)
        return None


def _settle(response: Response) -> Response:
    """A success keeps its answer under the token; anything else gives the token up."""
    key = g.pop("form_once_key", None)
    if key is None:
        return response
    location = response.headers.get("HX-Redirect") or response.headers.get("Location")
    succeeded = response.status_code == 204 or 300 <= response.status_code < 400
    try:
        conn = get_redis()
        if succeeded:
            flashes = [list(f) for f in session.get("_flashes", [])]
            conn.set(key, json.dumps({"location": location, "flashes": flashes}), ex=RESULT_TTL_S)
        else:
            conn.delete(key)
    except redis.RedisError:
        log.warning("form_once: Redis unavailable, the answer to POST %s not kept", request.path)
    return response


def _give_up(exc):
    """A request that ended in an exception (after_request did not run) gives its token up."""
    key = g.pop("form_once_key", None)
    if key is None:
        return
    try:
        get_redis().delete(key)
    except redis.RedisError:
        pass


def _repeated(result: dict) -> Response:
    """The answer to a repeated POST: where the first one went, with what it said and a note."""
    if result.get("still_running"):
        note = ("This form is still being sent from an earlier click: it was not sent a second time. "
                "Check the result in a moment before sending it again.")
    else:
        note = REPEATED
    location = result.get("location") or _same_site_referrer() or url_for("areas.home")
    if is_htmx():
        response = make_response("", 204)
        hx_trigger(response, closeModal=True)
        if result.get("location"):
            for category, message in result.get("flashes", []):
                flash(message, category)
            flash(note, "info")
            return hx_redirect(response, location)
        return toast(response, note, "info")
    for category, message in result.get("flashes", []):
        flash(message, category)
    flash(note, "info")
    return redirect(location)


def _same_site_referrer() -> str | None:
    from .security import same_site_path

    return same_site_path(request.referrer) if request.referrer else None
