"""Request-level security: login required everywhere, Secure cookies over HTTPS, proxies."""
from __future__ import annotations

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix

from .extensions import db, login_manager

# Endpoints an anonymous visitor may reach.
PUBLIC_ENDPOINTS = {"auth.login", "static", "areas.favicon"}


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

    @app.before_request
    def refuse_nul_characters():
        # No admin types a NUL, and PostgreSQL cannot store one: refuse it plainly, not with a 500.
        if request.method == "POST" and any("\x00" in value for value in request.form.values()):
            from .errors import render_error

            return render_error(400, "The form contained an invalid (NUL) character: remove it and send it again.")
        return None

    @app.after_request
    def harden(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


@login_manager.user_loader
def load_admin(admin_id: str):
    from .models import Admin

    return db.session.get(Admin, int(admin_id))
