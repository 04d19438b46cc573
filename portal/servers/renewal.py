"""Renew a server: a new token for a managed server, refusing those that would break it.

The view calls renew_server, then commits.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from .. import vault
from ..activity.record import record_activity
from ..apple.tokens import ServerToken
from ..models import ManagedServer
from ..token_status import SERVER_MISMATCH
from .services import FieldErrors, KeyChoice, already_connected, connected_elsewhere, open_token, store_secrets


@dataclass
class Renewal:
    """What Renew a server did: the new token, and whether it connected another Apple MDM server."""

    token: ServerToken
    replaced: bool


def renew_server(server: ManagedServer, token_file: bytes, key: KeyChoice | None, confirm_replace: bool) -> Renewal:
    """Replace the server's token (and optionally its key); refuses another Apple server's token
    unless confirmed, one connected to another managed server, and the token it already has."""
    if key is None:
        opened = open_token(token_file, KeyChoice(data=vault.decrypt(server.key_ciphertext), stored=True))
    else:
        opened = open_token(token_file, key)
    new = opened.token
    replaced = _refuse_unusable(server, new, confirm_replace)
    old_expiry = server.token_expiry
    store_secrets(server, opened)
    server.consumer_key = new.consumer_key
    server.token_expiry = new.access_token_expiry
    server.token_renewed_at = datetime.now(timezone.utc)
    # A new token clears what Apple said about the old one; the account check confirms it.
    server.apple_state = server.apple_state_detail = None
    if replaced:  # another Apple server: its devices, cursor and profiles are not ours
        from ..profiles.services import note_apple_server_replaced

        # The old Apple server's identity is forgotten, not kept as the one to expect: a first account check
        # that fails (a token voided by a newer download) would otherwise make the renewal with that newer
        # token look like yet another Apple server (Different Apple Server).
        server.expected_server_uuid = server.apple_server_uuid = server.apple_server_name = None
        server.sync_cursor, server.fetch_complete = None, False
        note_apple_server_replaced(server.id)
    else:  # the Apple server it had (the one expected still, while a mismatch is unconfirmed)
        server.expected_server_uuid = server.expected_server_uuid or server.apple_server_uuid
    if opened.pending is not None:
        opened.pending.used_by_server_id = server.id
    from ..apple_link import note_status_change

    record_activity("server.renewed", server, summary=(
        f"Renewed {server.name}: token expiry {_expiry_change(old_expiry, server.token_expiry)}"
        + (" (replaced by another Apple MDM server's token, confirmed)" if replaced else "")))
    note_status_change(server, actor=None)  # e.g. Token Revoked → Valid, logged as the admin's
    return Renewal(new, replaced)


def _expiry_change(old, new) -> str:
    """"2026-12-04 → 2027-12-04"; with the times (UTC) when both fall on the same day, which would
    otherwise read as no change at all."""
    if old is None:
        return f"{new:%Y-%m-%d}"
    if old == new:
        return f"unchanged ({new:%Y-%m-%d %H:%M} UTC)"
    if old.date() == new.date():
        return f"{old:%Y-%m-%d %H:%M} → {new:%H:%M} UTC"
    return f"{old:%Y-%m-%d} → {new:%Y-%m-%d}"


def _refuse_unusable(server: ManagedServer, new: ServerToken, confirm_replace: bool) -> bool:
    """Raise FieldErrors for a token that would break the server; True when it connects another Apple MDM server."""
    holder = connected_elsewhere(new.consumer_key, server.id)
    if holder is not None:
        raise already_connected(holder)
    # "Different Apple Server" (the account check after a renewal): Replace anyway confirms it, even
    # with the very token the server holds, which is the one that showed the other Apple server.
    confirming_mismatch = server.apple_state == SERVER_MISMATCH and confirm_replace
    current = _current_token(server)
    if current is not None and new.access_token == current.access_token and not confirming_mismatch:
        raise FieldErrors({"token": (
            f"This is the token {server.name} already uses (it expires on {current.access_token_expiry:%Y-%m-%d}): "
            "nothing changed. To renew, download a new token for this MDM server in Apple Business Manager "
            "and choose it here.")})
    other_key = new.consumer_key != server.consumer_key
    if other_key and not confirm_replace:
        raise FieldErrors({"confirm_replace": (
            "This token belongs to a different MDM server in Apple Business Manager (its consumer key differs "
            "from the current token's). If you really mean to connect this managed server to another Apple "
            "MDM server, tick “Replace anyway” and renew again.")})
    return other_key or confirming_mismatch


def _current_token(server: ManagedServer) -> ServerToken | None:
    try:
        return ServerToken.from_json(vault.decrypt(server.token_ciphertext).decode())
    except (ValueError, vault.VaultError):  # unreadable: nothing to compare with
        return None
