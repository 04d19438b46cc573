"""The simulator's state on disk: clock, settings, MDM servers, their tokens and fault switches.

Device, session and profile operations live in mixins (devices.py, sessions.py, profiles.py)
so each file keeps one job; `SimState` is the single object tests, the CLI and the Flask app use.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import time
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509

from portal.apple.tokenfile import build_token_file, token_credentials

from . import faults as fault_rules
from .db import Database
from .devices import DeviceMixin
from .profiles import ProfileMixin
from .sessions import SessionMixin
from .timefmt import iso, one_year_later

DEFAULT_SETTINGS = {
    "session_rotate_every": 20,     # data calls per session before a new X-ADM-Auth-Session is handed out
    "session_grace_seconds": 120,   # how long a rotated-out session keeps working
    "session_idle_seconds": 1800,   # inactivity after which a session is gone (sim clock)
    "refused_session_status": 401,  # 401 UNAUTHORIZED, or 403 FORBIDDEN (Apple documents both)
    "oauth_skew_seconds": 600,      # accepted distance of oauth_timestamp from the wall or sim clock
    "cursor_max_age_days": 7,       # sync cursors older than this → EXPIRED_CURSOR
    "move_op_type": "added",        # what the destination server's sync reports for a moved device
}
_NAME_RE = re.compile(r"[^A-Za-z0-9]+")


class SimState(SessionMixin, DeviceMixin, ProfileMixin):
    """Everything the simulator knows, kept in <state_dir>/depsim.sqlite3."""

    def __init__(self, state_dir: str | os.PathLike) -> None:
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(self.state_dir / "depsim.sqlite3")

    def __repr__(self) -> str:
        return f"SimState({str(self.state_dir)!r})"

    # --- clock ------------------------------------------------------------------------------
    def clock_offset(self) -> float:
        """Seconds the simulated clock runs ahead of the wall clock."""
        rows = self.db.query("SELECT value FROM meta WHERE key = 'clock_offset'")
        return float(rows[0]["value"]) if rows else 0.0

    def now_ts(self) -> float:
        """Simulated time as epoch seconds."""
        return time.time() + self.clock_offset()

    def now(self) -> datetime:
        """Simulated time (aware UTC)."""
        return datetime.fromtimestamp(self.now_ts(), timezone.utc)

    def advance_clock(self, seconds: float) -> datetime:
        """Move the simulated clock forward (or back, with a negative value)."""
        with self.db.transaction() as conn:
            offset = self._meta(conn, "clock_offset", 0.0) + float(seconds)
            self._set_meta(conn, "clock_offset", offset)
        return self.now()

    def set_clock(self, when: datetime | None) -> datetime:
        """Pin the simulated clock to `when` (it keeps ticking from there); None → wall clock."""
        offset = 0.0 if when is None else when.timestamp() - time.time()
        with self.db.transaction() as conn:
            self._set_meta(conn, "clock_offset", offset)
        return self.now()

    # --- settings ---------------------------------------------------------------------------
    def settings(self) -> dict:
        """Simulator-wide knobs (see DEFAULT_SETTINGS)."""
        rows = self.db.query("SELECT value FROM meta WHERE key = 'settings'")
        stored = json.loads(rows[0]["value"]) if rows else {}
        return {**DEFAULT_SETTINGS, **stored}

    def update_settings(self, **changes) -> dict:
        """Change some settings; unknown names raise ValueError."""
        unknown = set(changes) - set(DEFAULT_SETTINGS)
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(sorted(unknown))}")
        if changes.get("move_op_type", "added") not in ("added", "modified"):
            raise ValueError("move_op_type must be 'added' or 'modified'")
        with self.db.transaction() as conn:
            current = {**DEFAULT_SETTINGS, **self._meta(conn, "settings", {})}
            for key, value in changes.items():
                current[key] = type(DEFAULT_SETTINGS[key])(value)
            self._set_meta(conn, "settings", current)
        return current

    # --- servers ----------------------------------------------------------------------------
    def create_server(self, name: str, *, devices: int = 0, seed: int | None = None,
                      org_name: str = "Example Organization", org_type: str = "org",
                      admin_id: str | None = None) -> dict:
        """Create an MDM server (optionally with `devices` generated devices); returns its summary."""
        name = (name or "").strip()
        if not name or len(name) > 200:
            raise ValueError("server name must be 1-200 characters")
        if org_type not in ("org", "edu"):
            raise ValueError("org_type must be 'org' or 'edu'")
        if seed is None:  # stable per name, so a re-created demo server gets the same fleet
            seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big")
        rng = random.Random(seed)
        slug = _NAME_RE.sub("-", org_name.lower()).strip("-") or "example"
        org_id = str(rng.randrange(1_000_000, 9_999_999))
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM servers WHERE name = ?", (name,)).fetchone():
                raise ValueError(f"MDM server {name!r} already exists")
            conn.execute(
                "INSERT INTO servers (name, uuid, seed, org_name, org_email, org_phone, org_address,"
                " org_id, org_id_hash, org_type, org_version, admin_id, created_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (name, "%032X" % rng.getrandbits(128), seed, org_name, f"it@{slug}.example",
                 "+1 408 555 0100", "1 Apple Park Way, Cupertino, CA 95014", org_id,
                 hashlib.sha256(org_id.encode()).hexdigest()[:52], org_type, "v2",
                 admin_id or f"ade-admin@{slug}.example", int(self.now_ts())))
        if devices:
            self.add_devices(name, count=devices)
        return self.server(name)

    def server(self, name: str) -> dict:
        """A server's public summary (never its token secrets); KeyError if unknown."""
        row = self._server_row(name)
        count = self.db.query("SELECT COUNT(*) AS n FROM devices WHERE server_id = ? AND removed = 0",
                              (row["id"],))[0]["n"]
        return self._summary(row, count)

    def servers(self) -> list[dict]:
        """Every server's summary with its device count, by name."""
        counts = {r["server_id"]: r["n"] for r in self.db.query(
            "SELECT server_id, COUNT(*) AS n FROM devices WHERE removed = 0 GROUP BY server_id")}
        rows = self.db.query("SELECT * FROM servers ORDER BY name")
        return [self._summary(r, counts.get(r["id"], 0)) for r in rows]

    def _summary(self, row, device_count: int) -> dict:
        keys = ("id", "name", "uuid", "seed", "org_name", "org_email", "org_phone", "org_address",
                "org_id", "org_id_hash", "org_type", "org_version", "admin_id")
        summary = {k: row[k] for k in keys}
        summary.update(device_count=device_count, has_token=row["access_token"] is not None,
                       token_issued_at=iso(row["token_issued_at"]),
                       token_expiry=iso(row["token_expiry"]), faults=json.loads(row["faults"]))
        return summary

    def server_row_by_id(self, server_id: int):
        """A server's full row (with secrets) by id; for the request pipeline only."""
        return self.db.query("SELECT * FROM servers WHERE id = ?", (server_id,))[0]

    def server_row_by_access_token(self, access_token: str):
        """The server whose current token is `access_token`, or None."""
        rows = self.db.query("SELECT * FROM servers WHERE access_token = ?", (access_token,))
        return rows[0] if rows else None

    def token_retired(self, access_token: str) -> bool:
        """Whether `access_token` belonged to a token that a newer download replaced."""
        return bool(self.db.query("SELECT 1 FROM retired_tokens WHERE access_token = ?", (access_token,)))

    def _server_row(self, name: str, conn=None):
        row = (conn or self.db.connection()).execute(
            "SELECT * FROM servers WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise KeyError(f"no MDM server named {name!r}")
        return row

    # --- tokens -----------------------------------------------------------------------------
    def issue_credentials(self, server_name: str, *, devices: int | None = None) -> dict:
        """New OAuth credentials for a server (created if missing); the previous token stops working."""
        self._ensure_server(server_name, devices)
        credentials, issued = self._new_credentials(server_name)
        self._install_credentials(server_name, credentials, issued)
        return credentials

    def issue_token(self, server_name: str, certificate_pem: bytes, *,
                    devices: int | None = None) -> bytes:
        """A token file (.p7m bytes) for the server, encrypted to `certificate_pem`.

        The file is built before the new credentials are stored, so a bad certificate
        (ValueError) leaves the server and its current token untouched.
        """
        x509.load_pem_x509_certificate(certificate_pem)  # ValueError before anything changes
        self._ensure_server(server_name, devices)
        credentials, issued = self._new_credentials(server_name)
        data = build_token_file(certificate_pem, credentials)
        self._install_credentials(server_name, credentials, issued)
        return data

    def _ensure_server(self, server_name: str, devices: int | None) -> None:
        try:
            self._server_row(server_name)
        except KeyError:
            self.create_server(server_name, devices=devices or 0)

    def _new_credentials(self, server_name: str) -> tuple[dict, datetime]:
        issued = self.now().replace(microsecond=0)
        expiry = one_year_later(issued)
        credentials = dict(token_credentials(expiry))
        current = self._server_row(server_name)["consumer_key"]
        if current:  # Apple keeps the consumer key when the same admin renews a server's token
            credentials["consumer_key"] = current
        credentials["access_token_expiry"] = iso(expiry.timestamp())
        return credentials, issued

    def _install_credentials(self, server_name: str, credentials: dict, issued: datetime) -> None:
        """Make `credentials` the server's token; the old one is retired and its sessions end."""
        expiry = one_year_later(issued)
        with self.db.transaction() as conn:
            row = self._server_row(server_name, conn)
            if row["access_token"]:
                conn.execute("INSERT OR REPLACE INTO retired_tokens VALUES (?,?,?)",
                             (row["access_token"], row["id"], int(issued.timestamp())))
            conn.execute(
                "UPDATE servers SET consumer_key=?, consumer_secret=?, access_token=?, access_secret=?,"
                " token_expiry=?, token_issued_at=? WHERE id=?",
                (credentials["consumer_key"], credentials["consumer_secret"],
                 credentials["access_token"], credentials["access_secret"],
                 int(expiry.timestamp()), int(issued.timestamp()), row["id"]))
            conn.execute("DELETE FROM sessions WHERE server_id = ?", (row["id"],))

    def token_filename(self, server_name: str) -> str:
        """Apple's download name: `<name>_Token_<UTC issue time, ':'→'-'>_smime.p7m`."""
        row = self._server_row(server_name)
        stamp = (iso(row["token_issued_at"]) or "").replace(":", "-")
        return f"{server_name}_Token_{stamp}_smime.p7m"

    def credentials(self, server_name: str) -> dict:
        """The server's current token JSON (for tests that sign requests without a token file)."""
        row = self._server_row(server_name)
        if row["access_token"] is None:
            raise KeyError(f"MDM server {server_name!r} has no token yet")
        return {"consumer_key": row["consumer_key"], "consumer_secret": row["consumer_secret"],
                "access_token": row["access_token"], "access_secret": row["access_secret"],
                "access_token_expiry": iso(row["token_expiry"])}

    # --- faults -----------------------------------------------------------------------------
    def set_fault(self, server_name: str, fault: str, value) -> None:
        """Switch a fault on (value per faults.normalize) or off (None/False)."""
        stored = fault_rules.normalize(fault, value)
        with self.db.transaction() as conn:
            row = self._server_row(server_name, conn)
            current = json.loads(row["faults"])
            if stored is None:
                current.pop(fault, None)
            else:
                current[fault] = stored
            conn.execute("UPDATE servers SET faults = ? WHERE id = ?", (json.dumps(current), row["id"]))

    def clear_faults(self, server_name: str) -> None:
        """Switch every fault of a server off."""
        with self.db.transaction() as conn:
            row = self._server_row(server_name, conn)
            conn.execute("UPDATE servers SET faults = '{}' WHERE id = ?", (row["id"],))

    def faults(self, server_name: str) -> dict:
        """The server's active faults."""
        return json.loads(self._server_row(server_name)["faults"])

    def take_server_error(self, server_id: int) -> dict | None:
        """Consume one injected 5xx for this server, if any is pending."""
        with self.db.transaction() as conn:
            row = conn.execute("SELECT faults FROM servers WHERE id = ?", (server_id,)).fetchone()
            current = json.loads(row["faults"])
            spec = current.get("server_error")
            if not spec:
                return None
            spec = dict(spec)
            remaining = dict(spec, count=spec["count"] - 1)
            if remaining["count"] > 0:
                current["server_error"] = remaining
            else:
                current.pop("server_error")
            conn.execute("UPDATE servers SET faults = ? WHERE id = ?", (json.dumps(current), server_id))
        return spec

    # --- meta helpers -----------------------------------------------------------------------
    @staticmethod
    def _meta(conn, key: str, default):
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    @staticmethod
    def _set_meta(conn, key: str, value) -> None:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

