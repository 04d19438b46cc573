"""The Server Synchronization Interval and the token expiry warning threshold."""
from __future__ import annotations

import redis
from flask import current_app, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import InputRequired, NumberRange

from ..activity.record import record_activity
from ..apple_link import warning_days
from ..extensions import db
from ..models.setting import get_setting, set_setting
from . import bp

MAX_INTERVAL = 30 * 86400


class AppleSettingsForm(FlaskForm):
    """Device Assignment settings."""

    sync_interval = IntegerField("Server Synchronization Interval (seconds)", validators=[
        InputRequired("Enter a number of seconds (0 disables automatic synchronization)."),
        NumberRange(0, MAX_INTERVAL, f"Enter 0 (disabled) or a number of seconds up to {MAX_INTERVAL} (30 days).")])
    warning_days = IntegerField("Token expiry warning (days)", validators=[
        InputRequired("Enter a number of days."), NumberRange(1, 180, "Between 1 and 180 days.")])


@bp.route("/apple", methods=["GET", "POST"])
def apple():
    """Show and change the Device Assignment settings; the scheduler follows at once."""
    form = AppleSettingsForm()
    if not form.is_submitted():
        form.sync_interval.data = int(get_setting("sync_interval_seconds"))
        form.warning_days.data = warning_days()
    if form.validate_on_submit():
        old = int(get_setting("sync_interval_seconds"))
        set_setting("sync_interval_seconds", str(form.sync_interval.data))
        set_setting("token_warning_days", str(form.warning_days.data))
        record_activity("settings.apple", summary=(
            f"Server Synchronization Interval {old} → {form.sync_interval.data} s; "
            f"token warning {form.warning_days.data} days"))
        db.session.commit()
        _reschedule()
        return redirect(url_for("settings.apple"))
    return render_template("settings/apple.html", form=form, max_interval=MAX_INTERVAL), (422 if form.errors else 200)


def _reschedule() -> None:
    from jobs.schedule import reconcile_now

    try:
        reconcile_now()
    except (redis.RedisError, OSError, RuntimeError):
        current_app.logger.warning("settings saved but the scheduler could not be updated", exc_info=True)
        flash("Settings saved, but Redis cannot be reached: the schedule changes when the scheduler next starts.",
              "warning")
    else:
        flash("Settings saved; the synchronization schedule was updated.", "success")
