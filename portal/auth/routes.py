"""Login and logout views."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select

from ..activity.record import record_activity
from ..extensions import db
from ..models import Admin
from ..models.admin import burn_password_check
from ..models.types import utcnow
from . import bp
from .forms import LoginForm


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in; failures never say whether the name or the password was wrong."""
    if current_user.is_authenticated:
        return redirect(url_for("areas.home"))
    form = LoginForm()
    if form.validate_on_submit():
        admin = db.session.execute(select(Admin).where(Admin.username == form.username.data.strip())).scalar_one_or_none()
        if admin is None:
            burn_password_check(form.password.data)
        if admin is not None and admin.check_password(form.password.data):
            login_user(admin)
            admin.last_login_at = utcnow()
            record_activity("admin.login", admin, summary=f"{admin.username} signed in")
            db.session.commit()
            return redirect(_safe_next(request.args.get("next")))
        form.password.errors.append("Incorrect user name or password.")
    return render_template("auth/login.html", form=form), (422 if form.errors else 200)


@bp.route("/logout", methods=["POST"])
def logout():
    """Sign out (POST, so a link elsewhere cannot sign an admin out)."""
    logout_user()
    flash("You have been signed out.", "info")
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str:
    """Only follow `next` to a path on this site."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//"):
            return target
    return url_for("areas.home")
