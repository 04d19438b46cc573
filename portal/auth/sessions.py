"""Sign-in sessions kept on the server: signing out ends every copy of the session cookie.

Flask's session is a signed cookie, which the server cannot take back: a copy made before
signing out would stay valid for ever. So sign-in also stores a row (AdminSession) whose random
token only the cookie holds, every request checks it, and sign-out deletes it.

- Idle limit (SESSION_IDLE_MINUTES): the cookie carries the time of its last request, refreshed
  at most once a minute. A copy replayed later carries an older time, never a newer one (the
  cookie is signed), so keeping it in the cookie is safe and spares the database a write per request.
  A background poll (htmx.is_background_poll) is checked like any request but does not refresh that time:
  a tab left open on a polling page would otherwise keep the session alive up to the absolute limit. The
  header can only keep a request from counting, so a client sending it gains nothing.
- Absolute limit (SESSION_MAX_HOURS): counted from the sign-in stored in the row.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from datetime import timedelta

from flask import current_app, g, session
from sqlalchemy import delete

from ..extensions import db
from ..htmx import is_background_poll
from ..models import AdminSession
from ..models.types import utcnow

TOKEN_KEY, SEEN_KEY = "sid", "seen"
SEEN_EVERY_S = 60


def start(admin_id: int) -> None:
    """A new session for the admin who just signed in (the caller commits)."""
    now = utcnow()
    session.clear()  # nothing from before sign-in carries over: a CSRF token or a fixed session id
    token = secrets.token_urlsafe(32)
    _forget_expired(now)
    db.session.add(AdminSession(token_hash=_hash(token), admin_id=admin_id, created_at=now))
    session[TOKEN_KEY], session[SEEN_KEY] = token, int(time.time())


def is_current(admin_id: int) -> bool:
    """Whether this request's cookie belongs to a session of this admin that has not ended."""
    token = session.get(TOKEN_KEY)
    seen = session.get(SEEN_KEY)
    if not isinstance(token, str) or not isinstance(seen, int):
        return False
    now = int(time.time())
    idle_s = current_app.config["SESSION_IDLE_MINUTES"] * 60
    row = db.session.get(AdminSession, _hash(token))
    if row is None or row.admin_id != admin_id or now - seen > idle_s or utcnow() - row.created_at > _max_age():
        g.session_ended = True  # the sign-in page says why
        return False
    if now - seen >= SEEN_EVERY_S and not is_background_poll():
        session[SEEN_KEY] = now
    return True


def end() -> None:
    """Sign-out: the session's row goes, so no copy of the cookie works any more (the caller commits)."""
    token = session.get(TOKEN_KEY)
    if isinstance(token, str):
        db.session.execute(delete(AdminSession).where(AdminSession.token_hash == _hash(token)))
    session.clear()


def end_all(admin_id: int) -> int:
    """Every session of the admin (a new password); returns how many ended (the caller commits)."""
    return db.session.execute(delete(AdminSession).where(AdminSession.admin_id == admin_id)).rowcount


def _forget_expired(now) -> None:
    """Rows of sessions past the absolute limit: nothing can use them any more."""
    db.session.execute(delete(AdminSession).where(AdminSession.created_at < now - _max_age()))


def _max_age() -> timedelta:
    return timedelta(hours=current_app.config["SESSION_MAX_HOURS"])


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
