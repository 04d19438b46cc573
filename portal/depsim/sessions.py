"""Auth sessions (`X-ADM-Auth-Session`) and OAuth nonce memory of the simulator.

Apple hands out a new session token in responses "periodically" and expires sessions after
inactivity. The simulator rotates deterministically every `session_rotate_every` data calls
(so tests can count on it) and keeps the rotated-out token working for a short grace period,
as concurrent requests of a real client may still carry it. Whether Apple does is undocumented
(reference §2.3, §9): `session_rotate_every=1, session_grace_seconds=0` is the strictest reading,
a new token on every answer and the previous one refused at once.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

NONCE_MEMORY_SECONDS = 3600  # comfortably longer than the accepted timestamp skew


@dataclass(frozen=True)
class SessionUse:
    """A validated data call: whose session it is and which token to send back."""

    server_id: int
    header_token: str


class SessionMixin:
    """Session and nonce bookkeeping (mixed into SimState)."""

    def remember_nonce(self, consumer_key: str, nonce: str, timestamp: int) -> bool:
        """Record an OAuth (nonce, timestamp); False if that pair was already used."""
        with self.db.transaction() as conn:
            # Wall-clock pruning: a replay older than this fails the timestamp check anyway.
            conn.execute("DELETE FROM nonces WHERE seen_at < ?", (time.time() - NONCE_MEMORY_SECONDS,))
            cur = conn.execute("INSERT OR IGNORE INTO nonces VALUES (?,?,?,?)",
                               (consumer_key, nonce, timestamp, time.time()))
            return cur.rowcount == 1

    def create_session(self, server_id: int, access_token: str) -> str:
        """Open a session for a server's current token; returns the auth_session_token."""
        now = self.now_ts()
        token = secrets.token_hex(24)
        idle = self.settings()["session_idle_seconds"]
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE last_used < ? OR retired_until < ?", (now - idle, now))
            conn.execute("INSERT INTO sessions (token, server_id, access_token, created_at, last_used)"
                         " VALUES (?,?,?,?,?)", (token, server_id, access_token, now, now))
        return token

    def use_session(self, token: str | None) -> SessionUse | None:
        """Validate a data call's session (None → 401), counting it toward rotation."""
        if not token:
            return None
        now = self.now_ts()
        settings = self.settings()
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT s.*, v.access_token AS current_token, v.token_expiry FROM sessions s"
                " JOIN servers v ON v.id = s.server_id WHERE s.token = ?", (token,)).fetchone()
            if row is None:
                return None
            if not self._session_alive(row, now, settings):
                conn.execute("DELETE FROM sessions WHERE token = ?", (token,))
                return None
            if row["retired_until"] is not None:  # in its grace period: point at the newer token
                return SessionUse(row["server_id"], row["successor"] or token)
            calls = row["calls"] + 1
            rotate_every = settings["session_rotate_every"]
            if rotate_every > 0 and calls >= rotate_every:
                successor = secrets.token_hex(24)
                conn.execute("INSERT INTO sessions (token, server_id, access_token, created_at, last_used)"
                             " VALUES (?,?,?,?,?)", (successor, row["server_id"], row["access_token"], now, now))
                conn.execute("UPDATE sessions SET calls=?, last_used=?, retired_until=?, successor=?"
                             " WHERE token=?",
                             (calls, now, now + settings["session_grace_seconds"], successor, token))
                return SessionUse(row["server_id"], successor)
            conn.execute("UPDATE sessions SET calls=?, last_used=? WHERE token=?", (calls, now, token))
            return SessionUse(row["server_id"], token)

    @staticmethod
    def _session_alive(row, now: float, settings: dict) -> bool:
        """A session dies with its token (replaced or expired), after inactivity, or after its grace."""
        if row["access_token"] != row["current_token"]:
            return False
        if row["token_expiry"] is not None and now >= row["token_expiry"]:
            return False
        if row["retired_until"] is not None:  # a grace of 0: dead from the rotation on
            return now < row["retired_until"]
        return now - row["last_used"] <= settings["session_idle_seconds"]
