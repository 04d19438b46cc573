"""Bridges the Flask app and portal.apple: a DEP client for a managed server, secrets decrypted
only in memory, and the server's Apple state kept up to date."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import current_app
from sqlalchemy.orm.attributes import set_committed_value

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
    """Record an Apple error that changes the server's state; True if it did.

    A new token status is logged and announced at once (note_status_change), whichever job found it;
    the caller commits."""
    state = apple_state_for(error)
    if state is None:
        return False
    server.apple_state = state
    server.apple_state_detail = getattr(error, "message", str(error))
    server.apple_state_at = datetime.now(timezone.utc)
    note_status_change(server)
    return True


def note_apple_success(server: ManagedServer) -> None:
    """Apple accepted the token: clear a state it reported earlier (not one the portal found itself),
    logging and announcing the status change (the caller commits)."""
    if server.apple_state and server.apple_state not in PORTAL_STATES:
        server.apple_state = None
        server.apple_state_detail = None
        server.apple_state_at = datetime.now(timezone.utc)
        note_status_change(server)


def note_status_change(server: ManagedServer, actor: str | None = "system") -> int:
    """Store the server's token status; when it changed, log it ("Token status of … is now …") and announce
    it on the webhook and by e-mail. 1 when it changed, else 0; the caller commits.

    Every path that may change the status calls this (Check now, a synchronization, an assignment, release or
    configure job, the periodic refresh, Renew a server). The stored status is changed by one conditional UPDATE, so
    when several jobs find the same change at once only the one whose UPDATE changed the row logs it: the others
    wait for its commit (PostgreSQL row lock) and then find nothing to change."""
    from sqlalchemy import update

    from .activity.record import record_activity
    from .extensions import db
    from .notifications import notify

    status = status_of(server)
    if status.key == server.token_status:
        return 0
    changed = db.session.execute(
        update(ManagedServer).where(ManagedServer.id == server.id, ManagedServer.token_status != status.key)
        .values(token_status=status.key).execution_options(synchronize_session=False)).rowcount
    set_committed_value(server, "token_status", status.key)
    if not changed:  # another job logged this change already
        return 0
    summary = f"Token status of {server.name} is now {status.label}"
    record_activity("server.token_status", server, actor=actor,
                    level="info" if status.badge == "ok" else status.badge, summary=summary)
    notify(db.session, "token_status", f"{summary}. {status.remedy}", **server_fields(server))
    return 1


def server_fields(server: ManagedServer) -> dict:
    """What a notification says of the server, besides its text."""
    return {"server": server.name, "server_id": server.id, "status": status_of(server).label,
            "token_expires_at": server.token_expiry.isoformat(timespec="seconds")}
