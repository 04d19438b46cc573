"""The form of Configuration › Apple: each number keeps to its range, with one message saying it."""
from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import URLField
from wtforms.validators import ValidationError

from ..config import SYNC_INTERVAL_MAX, SYNC_INTERVAL_MIN, WARNING_DAYS_MAX, WARNING_DAYS_MIN
from ..converters import WholeNumberField
from ..notifications import url_problem

INTERVAL_MESSAGE = (f"Enter 0 (disabled) or a number of seconds from {SYNC_INTERVAL_MIN} to {SYNC_INTERVAL_MAX:,} "
                    f"({SYNC_INTERVAL_MAX // 86400} days).")
WARNING_DAYS_MESSAGE = f"Enter a number of days from {WARNING_DAYS_MIN} to {WARNING_DAYS_MAX}."


class AppleSettingsForm(FlaskForm):
    """Device Assignment settings."""

    sync_interval = WholeNumberField("Server Synchronization Interval (seconds)", SYNC_INTERVAL_MIN,
                                     SYNC_INTERVAL_MAX, INTERVAL_MESSAGE, also=(0,))
    warning_days = WholeNumberField("Token expiry warning (days)", WARNING_DAYS_MIN, WARNING_DAYS_MAX,
                                    WARNING_DAYS_MESSAGE)
    webhook_url = URLField("Notification webhook URL", filters=[lambda v: v.strip() if isinstance(v, str) else v],
                           render_kw={"placeholder": "https://hooks.example.com/…", "autocomplete": "off"})

    def validate_webhook_url(self, field) -> None:
        problem = url_problem(field.data) if field.data else None
        if problem:
            raise ValidationError(problem)
