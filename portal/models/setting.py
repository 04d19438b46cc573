"""Portal-wide settings an admin changes in the UI (Configuration › Apple)."""
from __future__ import annotations

from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, mapped_column

from ..config import SYNC_INTERVAL_MAX, SYNC_INTERVAL_MIN
from ..extensions import db

DEFAULTS = {
    # BMC's default: synchronize every managed server once a day; 0 disables it.
    "sync_interval_seconds": "86400",
    "token_warning_days": "",  # empty: the TOKEN_EXPIRY_WARNING_DAYS configuration value
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
