"""Jobs about managed servers: account details, token checks, the periodic status refresh and expiry reminders."""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from portal.activity.record import record_activity
from portal.apple import errors as apple_errors
from portal.apple_link import (client_for, note_apple_error, note_apple_success, note_status_change, server_fields,
                               status_of)
from portal.assignments.retries import release_token_holds
from portal.extensions import db
from portal.models import ManagedServer
from portal.models.setting import reminder_days
from portal.notifications import notify
from portal.token_status import ABOUT_TO_EXPIRE, SERVER_MISMATCH, SERVER_TAKEN, VALID


ACCOUNT_FIELDS = {"apple_server_name": "server_name", "apple_server_uuid": "server_uuid", "org_name": "org_name",
                  "org_email": "org_email", "org_phone": "org_phone", "org_address": "org_address",
                  "org_id": "org_id"}


def fetch_account(server_id: int) -> dict:
    """Read the account details from Apple (GET /account) and store them on the server."""
    server = db.session.get(ManagedServer, server_id)
    if server is None:
        return {"skipped": "server deleted"}
    try:
        account = client_for(server).account()
    except apple_errors.AppleError as exc:
        record_activity("server.account_failed", server, level="error", actor="system",
                        summary=f"Could not read the account details of {server.name} from Apple: {exc.message}",
                        details={"status": exc.status, "code": exc.code})
        changed = note_apple_error(server, exc)  # logs the status change after (above, newest first) the failure
        _refresh_status(server)
        db.session.commit()
        return {"ok": False, "code": exc.code, "state_changed": changed}
    note_apple_success(server)
    holder = _holder_of(server, account.get("server_uuid"))
    if holder is not None:
        _refuse_taken_server(server, holder, account)
        _refresh_status(server)
        db.session.commit()
        return {"ok": False, "code": SERVER_TAKEN}
    if server.apple_state == SERVER_TAKEN:  # its holder is gone (deleted, or renewed to another Apple server)
        server.apple_state = server.apple_state_detail = None
    _store_account(server, account)
    _check_expected_server(server)
    _refresh_status(server)
    record_activity("server.account_fetched", server, actor="system",
                    summary=f"Apple account details of {server.name}: server “{server.apple_server_name}” of "
                            f"{server.org_name or 'an unnamed organisation'}")
    db.session.commit()
    released = release_token_holds(server.id) if status_of(server).can_sync else 0
    return {"ok": True, "released": released}


def check_token(server_id: int) -> dict:
    """Check now: re-test the token against Apple; clears a reported state when Apple accepts it."""
    return fetch_account(server_id)


def refresh_token_statuses() -> dict:
    """Every few minutes (schedule.TOKEN_STATUS_EVERY_S): re-evaluate every server's token status from its expiry
    and log each change; remind of a near expiry."""
    changed = reminded = 0
    now, steps = datetime.now(timezone.utc), reminder_days()
    for server in db.session.execute(select(ManagedServer)).scalars():
        changed += _refresh_status(server)
        reminded += _remind_of_expiry(server, now, steps)
    db.session.commit()
    return {"changed": changed, "reminded": reminded}


def _remind_of_expiry(server: ManagedServer, now: datetime, steps: list[int]) -> int:
    """A reminder in the activity log (and on the webhook and by e-mail) when the token has one of the reminder days
    (Configuration › Apple; 7 and 1 by default) left or fewer, once per step and token (the job runs every few
    minutes), and a renewal's new expiry starts over. Besides the status changes (About to Expire, Expired)."""
    if status_of(server, now).key not in (VALID, ABOUT_TO_EXPIRE):
        return 0  # expired, or a problem Apple reported: its status change said so, and Renew is the fix
    days_left = max(1, math.ceil((server.token_expiry - now) / timedelta(days=1)))
    step = min((days for days in steps if days_left <= days), default=None)
    mark = f"{server.token_expiry:%Y-%m-%dT%H:%M:%S}/{step}"
    if step is None or server.token_reminded == mark:
        return 0
    server.token_reminded = mark
    when = f"{days_left} day{'s' if days_left != 1 else ''}"
    summary = (f"The token of {server.name} expires in {when}, on {server.token_expiry:%d %b %Y %H:%M} UTC: download "
               "a new token for its MDM server in Apple Business Manager and use Renew a server.")
    record_activity("server.token_reminder", server, actor="system", level="warning", summary=summary,
                    details={"days_left": days_left})
    notify(db.session, "token_reminder", summary, **_server_fields(server), days_left=days_left)
    return 1


_server_fields = server_fields


def _store_account(server: ManagedServer, account: dict) -> None:
    values = {column: account.get(key) for column, key in ACCOUNT_FIELDS.items()}
    values["admin_id"] = account.get("admin_id") or account.get("facilitator_id")
    for column, value in values.items():
        limit = ManagedServer.__table__.c[column].type.length  # PostgreSQL refuses longer text
        setattr(server, column, str(value)[:limit] if value not in (None, "") else None)
    server.account_fetched_at = datetime.now(timezone.utc)


def _holder_of(server: ManagedServer, server_uuid: str | None) -> ManagedServer | None:
    """Another managed server already connected to the Apple server `server_uuid`.

    A token's consumer key can change for one Apple server (another admin downloaded it), so Add Server's
    and Renew's check on it can miss; the account check sees the Apple server itself. The server that
    held it first keeps it: one found Already Connected itself does not count as its holder.
    """
    if not server_uuid:
        return None
    return db.session.execute(select(ManagedServer).where(
        ManagedServer.apple_server_uuid == str(server_uuid), ManagedServer.id != server.id,
        ManagedServer.apple_state.is_distinct_from(SERVER_TAKEN)).limit(1)).scalar()


def _refuse_taken_server(server: ManagedServer, holder: ManagedServer, account: dict) -> None:
    """Pause `server`: its token reads the Apple server `holder` synchronizes (its details are not stored)."""
    name = account.get("server_name") or account.get("server_uuid")
    server.apple_state = SERVER_TAKEN
    server.apple_state_detail = (f"The token is for Apple MDM server “{name}”, already connected as “{holder.name}”.")
    server.apple_state_at = datetime.now(timezone.utc)
    record_activity("server.account_taken", server, level="error", actor="system",
                    summary=f"The token of {server.name} is for Apple MDM server “{name}”, already connected as "
                            f"“{holder.name}”: {server.name} does not synchronize until renewed with its own token")


def _check_expected_server(server: ManagedServer) -> None:
    """After a renewal, a token of another Apple server UUID pauses the server until confirmed."""
    expected = server.expected_server_uuid
    if expected and server.apple_server_uuid and expected != server.apple_server_uuid:
        server.apple_state = SERVER_MISMATCH
        server.apple_state_detail = (f"The renewed token is for Apple server {server.apple_server_uuid}, "
                                     f"not {expected}.")
    else:
        server.expected_server_uuid = None


def _refresh_status(server: ManagedServer) -> int:
    return note_status_change(server)
