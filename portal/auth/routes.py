"""Login and logout views."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from flask_wtf.csrf import generate_csrf

from ..activity.record import record_activity
from ..extensions import db
from ..models import Admin
from ..models.admin import burn_password_check, find_admin
from ..models.types import utcnow
from . import bp, sessions, throttle
from .forms import LoginForm

log = logging.getLogger(__name__)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in; failures never say whether the name or the password was wrong, nor do locks."""
    if current_user.is_authenticated:  # signed in again meanwhile (another tab): on to where the link led
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm()
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form), (422 if form.errors else 200)
    name = form.username.data.strip()
    attempt = throttle.start(name, request.remote_addr)
    if attempt.lock:  # refused before the password is checked: a guess made now tells nothing
        return _refused(form, attempt.lock)
    admin = find_admin(name)
    if admin is None:
        burn_password_check(form.password.data)
    if admin is not None and admin.check_password(form.password.data):
        attempt.succeeded()
        sessions.start(admin.id)
        login_user(admin)
        admin.last_login_at = utcnow()
        record_activity("admin.login", admin, summary=f"{admin.username} signed in")
        db.session.commit()
        return redirect(_safe_next(request.args.get("next")))
    lock = failed_attempt(attempt, admin)
    if lock:
        return _refused(form, lock)
    form.password.errors.append("Incorrect user name or password.")
    return render_template("auth/login.html", form=form), 422


def stale_sign_in_form():
    """The sign-in form sent from a page older than the session (CSRFError): signed in or out in another tab since,
    or the browser restarted without its cookies. An admin signed in meanwhile goes on to where the link led; anyone
    else gets the form again, with a token that works and the name kept, rather than a "Bad request" page. (Signing
    in with the stale token is still refused: that is what keeps another site from signing a browser in.)"""
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")))
    form = LoginForm(formdata=None, data={"username": (request.form.get("username") or "").strip()[:80]})
    form.form_errors.append("This sign-in page was out of date (you signed in or out in another tab, or the browser "
                            "was restarted). Enter your password again.")
    return render_template("auth/login.html", form=form), 422


@bp.route("/session")
def session_state():
    """Asked by a page whose poll found the session ended, when the admin comes back to its tab: signed in again
    meanwhile (in another tab), the page goes on, with the CSRF token of the new session (signing in starts a new
    one, so the token the page holds is refused). Signed out, the login gate answers as for any request."""
    return jsonify(admin=current_user.id, csrf_token=generate_csrf())


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out (POST, so a link elsewhere cannot sign an admin out): the session ends on the server too,
    so no copy of its cookie signs anyone in any more."""
    if current_user.is_authenticated:
        admin = current_user._get_current_object()
        record_activity("admin.logout", admin, summary=f"{admin.username} signed out")
    sessions.end()
    logout_user()
    db.session.commit()
    flash("You have been signed out.", "info")
    return redirect(url_for("auth.login"))


def _refused(form: LoginForm, lock: throttle.Lock):
    """The form again (name kept, password not) with how long to wait: 429 with Retry-After."""
    form.form_errors.append(lock.message)
    return render_template("auth/login.html", form=form), 429, {"Retry-After": str(lock.seconds)}


def failed_attempt(attempt: throttle.Attempt, admin: Admin | None) -> throttle.Lock | None:
    """A wrong password (at sign-in, or as the current one in Change password): the longest lock it started, logged
    and recorded in the activity log, or None."""
    locks = attempt.failed()
    if not locks:
        return None
    _record_locks(locks, admin)
    db.session.commit()
    return max(locks, key=lambda lock: lock.seconds)


def _record_locks(locks: list[throttle.Lock], admin: Admin | None) -> None:
    """Log each lock just started and add it to the activity log (an unknown name is not written out)."""
    address = request.remote_addr or "unknown"
    for lock in locks:
        wait = throttle.wait_text(lock.seconds)
        if lock.kind == "name":
            who = admin.username if admin else "an unknown account name"
            summary = f"Sign-in as {who} locked for {wait} after {lock.failures:,} failed attempts (the last from {address})"
        else:
            summary = f"Sign-in from {address} locked for {wait} after {lock.failures:,} failed attempts"
        log.warning("%s", summary)
        record_activity("admin.login_locked", admin if lock.kind == "name" else None, level="warning",
                        actor=address[:80], summary=summary,
                        details={"locked": lock.kind, "address": address, "failures": lock.failures,
                                 "seconds": lock.seconds})


def _safe_next(target: str | None) -> str:
    """Only follow `next` to a path on this site.

    Control characters send the admin home: urlsplit() drops tabs and line breaks before parsing,
    so it cannot vouch for a target holding them, and a line break in the Location header makes
    werkzeug refuse the answer (a 500 once signed in).
    """
    if target and not any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//"):
            return target
    return url_for("areas.home")
