"""Stored enrollment profiles of the simulator (one row per define; every define is a new UUID)."""
from __future__ import annotations

import json
import secrets


class ProfileMixin:
    """Profile storage (mixed into SimState)."""

    def store_profile(self, server_id: int, profile: dict) -> str:
        """Save a validated profile (without `devices`) and return its new 32-upper-hex UUID."""
        uuid = secrets.token_hex(16).upper()
        body = {k: v for k, v in profile.items() if k != "devices"}
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO profiles (uuid, server_id, body, created_at) VALUES (?,?,?,?)",
                         (uuid, server_id, json.dumps(body), int(self.now_ts())))
        return uuid

    def profile_body(self, server_id: int, uuid: str) -> dict | None:
        """A server's stored profile by UUID (None when unknown to that server)."""
        rows = self.db.query("SELECT body FROM profiles WHERE uuid = ? AND server_id = ?",
                             (uuid, server_id))
        return json.loads(rows[0]["body"]) if rows else None

    def profiles(self, server_name: str) -> list[dict]:
        """A server's profiles, oldest first, each with its `profile_uuid` (control API / tests)."""
        server = self._server_row(server_name)
        rows = self.db.query("SELECT uuid, body, created_at FROM profiles WHERE server_id = ?"
                             " ORDER BY created_at, rowid", (server["id"],))
        return [{**json.loads(r["body"]), "profile_uuid": r["uuid"]} for r in rows]
