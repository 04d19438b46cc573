"""The Server Synchronization Interval and the token expiry warning threshold."""
from __future__ import annotations

import redis
from flask import current_app, flash, redirect, render_template, url_for

from ..activity.record import record_activity
from ..apple_link import warning_days
from ..config import SYNC_INTERVAL_MAX, SYNC_INTERVAL_MIN
from ..extensions import db
from ..models.setting import get_setting, set_setting, sync_interval_seconds
from . import bp
from .forms import AppleSettingsForm


@bp.route("/apple", methods=["GET", "POST"])
def apple():
    """Show and change the Device Assignment settings; the scheduler follows at once."""
    form = AppleSettingsForm()
    stored, in_force = get_setting("sync_interval_seconds"), sync_interval_seconds()
    if not form.is_submitted():
        form.sync_interval.data = in_force  # what the scheduler runs, even when something else is stored
        form.warning_days.data = warning_days()
    if form.validate_on_submit():
        set_setting("sync_interval_seconds", str(form.sync_interval.data))
        set_setting("token_warning_days", str(form.warning_days.data))
        record_activity("settings.apple", summary=(
            f"Server Synchronization Interval {_seconds(stored)} → {form.sync_interval.data:,} s; "
            f"token warning {form.warning_days.data:,} days"))
        db.session.commit()
        _reschedule()
        return redirect(url_for("settings.apple"))
    status = 422 if form.errors else 200
    return render_template("settings/apple.html", form=form, interval_notice=_interval_notice(stored, in_force),
                           min_interval=SYNC_INTERVAL_MIN, max_interval=SYNC_INTERVAL_MAX), status


def _seconds(stored: str) -> str:
    """A stored interval as the rest of the portal writes numbers (86,400), or as stored if it is not one."""
    return f"{int(stored):,}" if stored.strip().lstrip("-").isdigit() else stored


def _interval_notice(stored: str, in_force: int) -> str | None:
    """What to say when the stored interval is not the one in force (stored before the minimum existed)."""
    if stored.strip() == str(in_force):
        return None
    below = stored.strip().isdecimal() and int(stored) < SYNC_INTERVAL_MIN
    why = f"is below the minimum of {SYNC_INTERVAL_MIN}" if below else "is not an allowed value"
    runs = f"servers are synchronized every {in_force} seconds" if in_force else "automatic synchronization is off"
    return f"The stored interval, {stored} seconds, {why}: {runs}. Save to store that."


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
