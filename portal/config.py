"""Settings from the environment, with embedded defaults under the instance folder.

Every value an operator can set comes from an environment variable; when it is absent the
portal picks a default that needs no setup on one machine (a SQLite file, an embedded Redis
server, secrets generated once into owner-only files).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

APPLE_DEP_URL = "https://mdmenrollment.apple.com"

# Ranges of the Configuration › Apple settings, held to wherever a value comes from: the settings
# page, the environment (TOKEN_EXPIRY_WARNING_DAYS), a value stored before a limit existed.
SYNC_INTERVAL_MIN = 300  # seconds; 0 disables. Each run calls Apple and adds a history row per server.
SYNC_INTERVAL_MAX = 30 * 86400
WARNING_DAYS_MIN, WARNING_DAYS_MAX = 1, 180


def load_config(instance_path: str) -> dict:
    """Build the app's configuration from the environment and the instance folder."""
    instance = Path(instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    env = os.environ
    return {
        "SECRET_KEY": env.get("SECRET_KEY") or _secret_file(instance / "secret_key", _new_secret_key),
        "ENCRYPTION_KEYS": _encryption_keys(env.get("ENCRYPTION_KEYS"), instance / "encryption_keys"),
        "SQLALCHEMY_DATABASE_URI": database_url(env.get("DATABASE_URL"), instance),
        "REDIS_URL": env.get("REDIS_URL") or None,  # None: the embedded server under instance/
        "EMBEDDED_REDIS_DIR": str(instance / "redis"),
        "APPLE_DEP_URL": env.get("APPLE_DEP_URL", APPLE_DEP_URL).rstrip("/"),
        "DEP_PROTOCOL_VERSION": int(env.get("DEP_PROTOCOL_VERSION", "10")),
        # Apple refuses some User-Agents (USER_AGENT_INVALID, which ones is undocumented): replaceable
        # without a release. None: ade-portal/<version>.
        "APPLE_USER_AGENT": env.get("APPLE_USER_AGENT", "").strip() or None,
        "APPLE_MAX_RETRIES": int(env.get("APPLE_MAX_RETRIES", "4")),
        "APPLE_RETRY_BACKOFF": float(env.get("APPLE_RETRY_BACKOFF", "1.0")),
        "TOKEN_EXPIRY_WARNING_DAYS": _warning_days(env.get("TOKEN_EXPIRY_WARNING_DAYS", "30")),
        # Every this many days a scheduled synchronization is a full one, which also catches devices
        # released in Apple Business Manager (Apple sends no change for them); 0: only on request.
        "FULL_SYNC_DAYS": _full_sync_days(env.get("FULL_SYNC_DAYS", "7")),
        # A notification delivery that failed for a reason that may pass is tried again after each of
        # these delays (seconds), then given up (portal/notification_retries.py).
        "NOTIFICATION_RETRY_DELAYS": _retry_delays(env.get("NOTIFICATION_RETRY_DELAYS", "60,300,1800")),
        "DEPSIM_STATE_DIR": env.get("DEPSIM_STATE_DIR") or str(instance / "depsim"),
        # htmx from its CDN (pinned, integrity-checked), the copy shipped in static/ if that fails; "0" on a network
        # that cannot reach the CDN: a firewall that drops the request silently would hold every page until it
        # times out.
        "HTMX_FROM_CDN": _yes_no("HTMX_FROM_CDN", env.get("HTMX_FROM_CDN", "1")),
        "RQ_QUEUES": ["default"],
        "TRUSTED_PROXIES": int(env.get("TRUSTED_PROXIES", "0")),
        # Sign-in throttling (portal/auth/throttle.py): failures per account name and per client
        # address within the window that lock further attempts; 0 turns a limit off.
        "LOGIN_MAX_FAILURES": int(env.get("LOGIN_MAX_FAILURES", "5")),
        "LOGIN_MAX_FAILURES_PER_ADDRESS": int(env.get("LOGIN_MAX_FAILURES_PER_ADDRESS", "20")),
        "LOGIN_LOCKOUT_MINUTES": int(env.get("LOGIN_LOCKOUT_MINUTES", "15")),
        # Sign-in sessions (portal/auth/sessions.py) end after this long without a request, and this
        # long after sign-in whatever happens (polling pages count as requests).
        "SESSION_IDLE_MINUTES": _whole_number("SESSION_IDLE_MINUTES", env.get("SESSION_IDLE_MINUTES", "480"),
                                              5, 10_080),
        "SESSION_MAX_HOURS": _whole_number("SESSION_MAX_HOURS", env.get("SESSION_MAX_HOURS", "24"), 1, 720),
        # Cookies: Secure is decided per request (see portal.security), the rest is fixed.
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "WTF_CSRF_TIME_LIMIT": None,  # a token lives as long as the session: no lost forms after lunch
        "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
    }


def database_url(value: str | None, instance: Path) -> str:
    """Return a SQLAlchemy URL, defaulting to a SQLite file and selecting psycopg 3 for PostgreSQL."""
    if not value:
        return f"sqlite:///{instance / 'portal.db'}"
    for prefix in ("postgres://", "postgresql://"):
        if value.startswith(prefix):
            return "postgresql+psycopg://" + value[len(prefix):]
    return value


def _warning_days(value: str) -> int:
    """TOKEN_EXPIRY_WARNING_DAYS, refused at start unless the settings page would accept it too."""
    text = value.strip()
    if text.isascii() and text.isdecimal() and WARNING_DAYS_MIN <= int(text) <= WARNING_DAYS_MAX:
        return int(text)
    raise RuntimeError(f"TOKEN_EXPIRY_WARNING_DAYS must be a whole number of days from {WARNING_DAYS_MIN} to "
                       f"{WARNING_DAYS_MAX}, not {value!r}")


def _yes_no(name: str, value: str) -> bool:
    """1/0, true/false, yes/no, on/off (any case); anything else stops the start with a message."""
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise RuntimeError(f"{name} must be 1 or 0 (yes or no), not {value!r}")


def _full_sync_days(value: str) -> int:
    """FULL_SYNC_DAYS: 0 (never automatically) to 365 days; anything else stops the start with a message."""
    text = value.strip()
    if text.isascii() and text.isdecimal() and int(text) <= 365:
        return int(text)
    raise RuntimeError(f"FULL_SYNC_DAYS must be a whole number of days from 0 to 365, not {value!r}")


def _retry_delays(value: str) -> tuple[int, ...]:
    """NOTIFICATION_RETRY_DELAYS: up to 10 comma-separated seconds (0 to 86,400); empty: no retries."""
    parts = [part.strip() for part in value.split(",")] if value.strip() else []
    if len(parts) <= 10 and all(p.isascii() and p.isdecimal() and int(p) <= 86_400 for p in parts):
        return tuple(int(p) for p in parts)
    raise RuntimeError("NOTIFICATION_RETRY_DELAYS must be up to 10 comma-separated whole numbers of seconds "
                       f"from 0 to 86,400 (e.g. 60,300,1800), not {value!r}")


def _whole_number(name: str, value: str, low: int, high: int) -> int:
    """A whole number from `low` to `high`; anything else stops the start with a message."""
    text = value.strip()
    if text.isascii() and text.isdecimal() and low <= int(text) <= high:
        return int(text)
    raise RuntimeError(f"{name} must be a whole number from {low:,} to {high:,}, not {value!r}")


def _new_secret_key() -> str:
    return secrets.token_urlsafe(48)


def _new_fernet_key() -> str:
    return Fernet.generate_key().decode()


def _secret_file(path: Path, make) -> str:
    """Read a generated secret, creating it once with owner-only permissions."""
    if not path.exists():
        # O_EXCL: two processes starting together must not overwrite each other's key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(make() + "\n")
    return path.read_text().strip()


def _encryption_keys(value: str | None, path: Path) -> list[str]:
    """Keys for secrets at rest: the first encrypts, all of them decrypt (rotation)."""
    raw = value if value else _secret_file(path, _new_fernet_key)
    keys = [k.strip() for k in raw.replace("\n", ",").split(",") if k.strip()]
    if not keys:
        raise RuntimeError("ENCRYPTION_KEYS is set but holds no key")
    return keys
