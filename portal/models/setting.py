"""Portal-wide settings an admin changes in the UI (Configuration › Apple)."""
from __future__ import annotations

import re

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, mapped_column

from ..config import SYNC_INTERVAL_MAX, SYNC_INTERVAL_MIN
from ..extensions import db

DEFAULTS = {
    # BMC's default: synchronize every managed server once a day; 0 disables it.
    "sync_interval_seconds": "86400",
    "token_warning_days": "",  # empty: the TOKEN_EXPIRY_WARNING_DAYS configuration value
    # Reminders of a token's expiry (activity log, webhook, e-mail), this many days before it; empty: none.
    "token_reminder_days": "7, 1",
    "notification_webhook_url": "",  # empty: no notifications outside the portal (portal/notifications.py)
    # E-mail notifications (portal/email_settings.py): off while no SMTP server is set.
    "smtp_host": "",
    "smtp_port": "587",
    "smtp_tls": "starttls",
    "smtp_username": "",
    "smtp_password": "",  # Fernet ciphertext (portal/vault.py), never the password itself
    "smtp_sender": "",
    "smtp_recipients": "",
}


class Setting(db.Model):
    """A named setting stored as text."""

    __tablename__ = "setting"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[str] = mapped_column(String(1000))


def get_setting(key: str) -> str:
    """The stored value of a setting, or its default."""
    value = db.session.execute(select(Setting.value).where(Setting.key == key)).scalar_one_or_none()
    return DEFAULTS[key] if value is None else value


def set_setting(key: str, value: str) -> None:
    """Store a setting (the caller commits)."""
    row = db.session.get(Setting, key)
    if row is None:
        db.session.add(Setting(key=key, value=value))
    else:
        row.value = value


def sync_interval_seconds() -> int:
    """The Server Synchronization Interval in force: 0 (disabled) or seconds within the allowed range.

    A value stored before the minimum existed (1 was accepted, and synchronized every second) runs
    at the minimum until the admin saves the settings again; one that is not a number at the default.
    """
    try:
        value = int(get_setting("sync_interval_seconds"))
    except ValueError:
        value = int(DEFAULTS["sync_interval_seconds"])
    if value <= 0:
        return 0
    return min(max(value, SYNC_INTERVAL_MIN), SYNC_INTERVAL_MAX)


REMINDER_DAYS_MAX, REMINDER_STEPS_MAX = 365, 10


def parse_reminder_days(text: str) -> list[int]:
    """"60, 30 14;7 1" → [60, 30, 14, 7, 1] (largest first, each once); ValueError with the words for the field."""
    words = [word for word in re.split(r"[\s,;]+", text or "") if word]
    if not all(word.isdecimal() for word in words):
        raise ValueError("Give whole numbers of days separated by commas, e.g. 30, 14, 7, 1.")
    days = sorted({int(word) for word in words}, reverse=True)
    if any(not 1 <= day <= REMINDER_DAYS_MAX for day in days):
        raise ValueError(f"Each number of days is from 1 to {REMINDER_DAYS_MAX}.")
    if len(days) > REMINDER_STEPS_MAX:
        raise ValueError(f"Give at most {REMINDER_STEPS_MAX} reminders.")
    return days


def reminder_days() -> list[int]:
    """The days before a token's expiry at which a reminder goes out (largest first); the default if the stored
    value cannot be read."""
    try:
        return parse_reminder_days(get_setting("token_reminder_days"))
    except ValueError:
        return parse_reminder_days(DEFAULTS["token_reminder_days"])


def reminder_words(days: list[int]) -> str:
    """[30, 7, 1] → "30, 7 and 1 days"; [] → "no reminders"."""
    if not days:
        return "no reminders"
    numbers = [str(day) for day in days]
    listed = numbers[0] if len(numbers) == 1 else ", ".join(numbers[:-1]) + " and " + numbers[-1]
    return f"{listed} day{'s' if days != [1] else ''}"
