"""The signed-in admin's own account: Change password.

Admins are created, and their passwords reset, with `flask create-admin` (README); here an admin changes their own
password, which the demo admin's printed one calls for. The current password is asked first (a session left open
on a shared screen must not be enough), and a wrong one counts towards the sign-in lock of the name, like a failed
sign-in: it is the same secret being guessed.
"""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user

from ..activity.record import record_activity
from ..extensions import db
from . import bp, sessions, throttle
from .forms import ChangePasswordForm
from .routes import failed_attempt


@bp.route("/account/password", methods=["GET", "POST"])
def change_password():
    """Change password: every other session of the admin ends (whoever knew the old password is signed out)."""
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return _page(form, 422 if form.errors else 200)
    admin = current_user._get_current_object()
    attempt = throttle.start(admin.username, request.remote_addr)
    if attempt.lock:
        return _locked(form, attempt.lock)
    if not admin.check_password(form.current_password.data):
        lock = failed_attempt(attempt, admin)
        if lock:
            return _locked(form, lock)
        form.current_password.errors.append("Incorrect password.")
        return _page(form, 422)
    if form.new_password.data == form.current_password.data:
        form.new_password.errors.append("This is your current password: choose another one.")
        return _page(form, 422)
    attempt.succeeded()
    admin.set_password(form.new_password.data)
    others = sessions.end_all(admin.id) - 1  # this one too, started again below with a new token
    sessions.start(admin.id)
    login_user(admin)
    signed_out = f"; {others:,} other session{'s' if others != 1 else ''} signed out" if others > 0 else ""
    record_activity("admin.password_changed", admin, summary=f"{admin.username} changed their password{signed_out}")
    db.session.commit()
    flash("Your password was changed." + (f" Your {others:,} other session{'s were' if others != 1 else ' was'} "
                                          "signed out." if others > 0 else ""), "success")
    return redirect(url_for("auth.change_password"))


def _locked(form: ChangePasswordForm, lock: throttle.Lock):
    """The form again with how long to wait, as the sign-in page says it: 429 with Retry-After."""
    form.current_password.errors.append(lock.message)
    return _page(form, 429, {"Retry-After": str(lock.seconds)})


def _page(form: ChangePasswordForm, status: int, headers: dict | None = None):
    if form.errors:  # the keyboard starts on the field to fix (static/js/portal.js), not on the first field
        form.current_password.render_kw = {k: v for k, v in form.current_password.render_kw.items() if k != "autofocus"}
    return render_template("auth/password.html", form=form), status, headers or {}
