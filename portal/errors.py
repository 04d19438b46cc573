"""Error pages in the layout, and small fragments for htmx requests."""
from __future__ import annotations

import logging

from flask import Flask, g, render_template, request
from flask_wtf.csrf import CSRFError
from redis.exceptions import RedisError
from werkzeug.exceptions import HTTPException, InternalServerError

from .extensions import db
from .htmx import is_htmx

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed here",
    413: "File too large",
    500: "Something went wrong",
    503: "Job queue not answering",
}

EXPLANATIONS = {
    400: "The request could not be understood.",
    403: "You are not allowed to do that.",
    404: "There is nothing at this address. It may have been deleted, or the link is wrong.",
    405: "This address does not accept that kind of request.",
    413: "The uploaded file is larger than the portal accepts (16 MB).",
    500: "The portal hit an unexpected error. Nothing was saved. The error has been logged; try again or contact your administrator.",
    503: ("The portal's job queue (Redis) did not answer, so the work in the background could not be "
          "started or checked. Try again in a moment; if this keeps happening, check that Redis is running "
          "(the System page shows it)."),
}


# What a URL's id names, for the 404 of an object deleted meanwhile (a pop-up left open in another tab, an old link).
MISSING_OBJECTS = {"server_id": "managed server", "profile_id": "enrollment profile",
                   "configuration_id": "server configuration", "certificate_id": "certificate", "key_id": "key pair",
                   "batch_id": "request", "task_id": "request for this device", "device_id": "device"}


def _missing_object_message() -> str | None:
    """ "This managed server no longer exists…" when the URL names an object by its id (the last one: the
    certificate of /configurations/<id>/certificates/<id>), else None (the generic explanation)."""
    names = [MISSING_OBJECTS[key] for key in (request.view_args or {}) if key in MISSING_OBJECTS]
    if not names:
        return None
    return (f"This {names[-1]} no longer exists: it was deleted, perhaps in another tab or by another admin, "
            "or the link is wrong. Nothing was changed.")


def render_error(status: int, message: str | None = None):
    """Render an error as a full page, or as a fragment for htmx."""
    title = TITLES.get(status, "Error")
    message = message or EXPLANATIONS.get(status, "")
    template = "errors/_error.html" if is_htmx() else "errors/page.html"
    return render_template(template, status=status, title=title, message=message), status


def init_app(app: Flask) -> None:
    """Register handlers for HTTP errors, CSRF failures and unexpected exceptions."""

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        from flask_login import current_user

        from .extensions import login_manager
        from .security import PUBLIC_ENDPOINTS

        if request.endpoint == "auth.login":
            from .auth.routes import stale_sign_in_form

            return stale_sign_in_form()
        # Checked before the login gate: a form of a session that ended (signed out in another tab)
        # fails here first, and what the admin needs is to sign in again, not to reload.
        if not current_user.is_authenticated and request.endpoint not in PUBLIC_ENDPOINTS:
            g.session_ended = True
            return login_manager.unauthorized()
        page = _same_site_page()
        if page is not None and request.method == "POST":
            # Signed in again since the page was opened (in another tab): its form's token belongs to the session
            # that ended. The page comes back with a new one and, from this tab's copy, what was typed in it.
            from flask import flash, make_response, redirect

            from .htmx import hx_redirect
            from .security import UNSENT_FORM_MARK, typed_in_a_full_page_form

            flash("Nothing was sent: the form was opened in a session that has ended (signed out and in again, "
                  "perhaps in another tab). Check it and send it again.", "warning")
            if is_htmx():  # a 401 is what makes portal.js keep a pop-up's fields before the page reloads
                return hx_redirect(make_response("", 401), page)
            return redirect(page + (UNSENT_FORM_MARK if typed_in_a_full_page_form() else ""))
        return render_error(400, "The form expired or was sent from elsewhere. Reload the page and try again.")

    def _same_site_page() -> str | None:
        """The page of this site the request was sent from (htmx says which; a plain form, its Referer)."""
        from .security import same_site_path

        url = request.headers.get("HX-Current-URL") if is_htmx() else request.referrer
        return same_site_path(url) if url else None

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code and error.code >= 500:
            db.session.rollback()
        return render_error(error.code or 500, _missing_object_message() if error.code == 404 else None)

    @app.errorhandler(RedisError)
    def redis_error(error: RedisError):
        # Redis down or hung (get_redis bounds the wait): say so, rather than "unexpected error".
        # What was committed before stays: an assignment request whose job could not be queued is
        # started by the periodic retry job, a sync run left without a job is closed by the next one.
        db.session.rollback()
        log.warning("Redis unavailable: %s", error)
        return render_error(503)

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        if isinstance(error, HTTPException):  # pragma: no cover - handled above
            return http_error(error)
        db.session.rollback()
        log.exception("unhandled error")
        return render_error(InternalServerError.code)
