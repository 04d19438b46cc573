"""Bridges the Flask app and portal.apple: a DEP client for a managed server, secrets decrypted
only in memory, and the server's Apple state kept up to date."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import current_app

from . import vault
from .apple.client import DEPClient
from .apple.keys import load_private_key
from .apple.tokens import ServerToken
from .apple_sessions import RedisSessionStore
from .models import ManagedServer
from .models.setting import get_setting
from .token_status import PORTAL_STATES, Status, apple_state_for, compute_status


def client_for(server: ManagedServer, **options) -> DEPClient:
    """A DEP client for `server`, configured from the app."""
    token = ServerToken.from_json(vault.decrypt(server.token_ciphertext).decode())
    config = current_app.config
    options.setdefault("max_retries", config["APPLE_MAX_RETRIES"])
    options.setdefault("backoff", config["APPLE_RETRY_BACKOFF"])
    options.setdefault("session_store", RedisSessionStore(token))
    options.setdefault("user_agent", config.get("APPLE_USER_AGENT"))
    return DEPClient(token, config["APPLE_DEP_URL"], protocol_version=config["DEP_PROTOCOL_VERSION"], **options)


def server_private_key(server: ManagedServer):
    """The server's private key (decrypted in memory only)."""
    return load_private_key(vault.decrypt(server.key_ciphertext))


def warning_days() -> int:
    """Days before expiry when a token becomes About to Expire."""
    return int(get_setting("token_warning_days") or current_app.config["TOKEN_EXPIRY_WARNING_DAYS"])


def status_of(server: ManagedServer, now: datetime | None = None) -> Status:
    """The server's token status now."""
    return compute_status(server.token_expiry, server.apple_state, warning_days(), now)


def note_apple_error(server: ManagedServer, error: Exception) -> bool:
    """Record an Apple error that changes the server's state; True if it did."""
    state = apple_state_for(error)
    if state is None:
        return False
    server.apple_state = state
    server.apple_state_detail = getattr(error, "message", str(error))
    server.apple_state_at = datetime.now(timezone.utc)
    return True


def note_apple_success(server: ManagedServer) -> None:
    """Apple accepted the token: clear a state it reported earlier (not one the portal found itself)."""
    if server.apple_state and server.apple_state not in PORTAL_STATES:
        server.apple_state = None
        server.apple_state_detail = None
        server.apple_state_at = datetime.now(timezone.utc)
