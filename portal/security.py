"""Request-level security: login required everywhere, Secure cookies over HTTPS, proxies."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, current_app, flash, g, make_response, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from .extensions import db, login_manager
from .htmx import hx_redirect, is_htmx

# Endpoints an anonymous visitor may reach.
PUBLIC_ENDPOINTS = {"auth.login", "static", "areas.favicon"}
# Files that are the same for everyone: cached as usual, signed in or not.
CACHEABLE_ENDPOINTS = {"static", "areas.favicon"}


class _SessionInterface(SecureCookieSessionInterface):
    """Mark the session cookie Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def init_app(app: Flask) -> None:
    """Install the login gate, the session interface and, if configured, ProxyFix."""
    app.session_interface = _SessionInterface()
    hops = app.config.get("TRUSTED_PROXIES", 0)
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    @app.before_request
    def require_login():
        # Unknown URLs too (endpoint None): an anonymous visitor learns nothing about what exists.
        if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
            return None
        return login_manager.unauthorized()

    @app.after_request
    def harden(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if current_user.is_authenticated and request.endpoint not in CACHEABLE_ENDPOINTS:
            # What a signed-in admin sees (pages, fragments, exports) stays out of every cache: after Sign out,
            # Back must not show it again, nor a shared machine's disk keep it. It also keeps Back from restoring a
            # page from the browser's back-forward cache with the filters as they were left, not as its URL says.
            response.headers["Cache-Control"] = "no-store"
        return response


@login_manager.user_loader
def load_admin(admin_id: str):
    """The signed-in admin, if the cookie's session has not ended (portal/auth/sessions.py)."""
    from .auth import sessions
    from .models import Admin

    admin = db.session.get(Admin, int(admin_id))
    return admin if admin is not None and sessions.is_current(admin.id) else None


# Added to the page a full-page form (Configuration › Apple) was sent from, when it was not taken because the session
# ended or changed: portal.js, which kept what was typed in this tab, puts it back into the form there.
UNSENT_FORM_MARK = "#unsent-form"


def typed_in_a_full_page_form() -> bool:
    """Whether the request is a form sent by the browser itself (not htmx) with more than its CSRF token (a button
    such as Synchronize without JavaScript has nothing to put back)."""
    return not is_htmx() and request.method == "POST" and any(name != "csrf_token" for name in request.form)


@login_manager.unauthorized_handler
def sign_in_first():
    """To the sign-in page, then back to the page the admin was on.

    An htmx request (a pop-up's form, a poll) is answered with HX-Redirect, so the whole page goes to
    the sign-in page rather than the sign-in page landing inside a pop-up or a table. Back to the page,
    not to the URL of a form's POST, which a GET after sign-in would answer with 405.
    """
    if g.get("session_ended"):
        _flash_once("Your session has ended (signed out, or unused for too long): sign in again.", "info")
    else:
        _flash_once(login_manager.login_message, login_manager.login_message_category)
    page = _page_to_return_to()
    if page and typed_in_a_full_page_form():
        page += UNSENT_FORM_MARK  # a full-page form's Save: its page puts back what was typed (portal.js)
    target = url_for("auth.login", next=page)
    if is_htmx():
        return hx_redirect(make_response("", 401), target)
    return redirect(target)


def _flash_once(message: str, category: str) -> None:
    """Flash unless the same message already waits to be shown. Signed-out requests can come several
    before a page shows the messages (polls of an open page, other tabs, a link opened after Sign out),
    and the sign-in page stacked one "Please sign in to continue." per request."""
    waiting = session.get("_flashes", [])  # where flask.flash() keeps them, as (category, message)
    if not any(tuple(entry) == (category, message) for entry in waiting):
        flash(message, category)


def _page_to_return_to() -> str | None:
    if is_htmx():
        page = same_site_path(request.headers.get("HX-Current-URL"))
    elif request.method in ("GET", "HEAD") and not _answers_with_a_file():
        page = request.full_path.rstrip("?")
    else:
        page = same_site_path(request.referrer)
    return page


def _answers_with_a_file() -> bool:
    """A download (downloads.download): signing in goes back to the page it was asked from, if any."""
    view = current_app.view_functions.get(request.endpoint or "")
    return bool(getattr(view, "answers_with_a_file", False)) and bool(request.referrer)


def same_site_path(url: str | None) -> str | None:
    """The path and query of a URL of this site (sign-in then checks it again), or None."""
    try:
        parts = urlsplit(url or "")
    except ValueError:
        return None
    if parts.netloc and parts.netloc != request.host:
        return None
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
