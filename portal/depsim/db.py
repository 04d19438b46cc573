"""SQLite plumbing for the DEP simulator: schema, per-thread connections, short transactions.

The state lives in one file so that a CLI process (issuing a token) and the running simulator
see the same servers, tokens and clock. WAL mode lets readers run while a writer commits.
"""
from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS servers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    uuid TEXT NOT NULL,
    seed INTEGER NOT NULL,
    org_name TEXT NOT NULL, org_email TEXT NOT NULL, org_phone TEXT NOT NULL,
    org_address TEXT NOT NULL, org_id TEXT NOT NULL, org_id_hash TEXT NOT NULL,
    org_type TEXT NOT NULL, org_version TEXT NOT NULL, admin_id TEXT NOT NULL,
    consumer_key TEXT, consumer_secret TEXT, access_token TEXT UNIQUE, access_secret TEXT,
    token_expiry INTEGER, token_issued_at INTEGER,
    faults TEXT NOT NULL DEFAULT '{}',
    next_index INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
-- Tokens superseded by a newer download: /session answers 403 token_rejected for them.
CREATE TABLE IF NOT EXISTS retired_tokens (
    access_token TEXT PRIMARY KEY, server_id INTEGER NOT NULL, retired_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    token TEXT PRIMARY KEY,
    server_id INTEGER NOT NULL,
    access_token TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_used REAL NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    retired_until REAL,
    successor TEXT
);
CREATE TABLE IF NOT EXISTS nonces (
    consumer_key TEXT NOT NULL, nonce TEXT NOT NULL, timestamp INTEGER NOT NULL,
    seen_at REAL NOT NULL,
    PRIMARY KEY (consumer_key, nonce, timestamp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY,
    serial TEXT NOT NULL UNIQUE,
    server_id INTEGER NOT NULL,
    family TEXT NOT NULL, os TEXT NOT NULL, model TEXT NOT NULL,
    description TEXT NOT NULL, color TEXT NOT NULL, asset_tag TEXT,
    assigned_by TEXT NOT NULL, assigned_at INTEGER NOT NULL,
    profile_uuid TEXT, profile_status TEXT NOT NULL DEFAULT 'empty',
    profile_assign_time INTEGER, profile_push_time INTEGER,
    removed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS devices_fetch ON devices (server_id, removed, assigned_at, id);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    server_id INTEGER NOT NULL,
    device_id INTEGER NOT NULL,
    op_type TEXT NOT NULL,
    op_date INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_sync ON events (server_id, seq);
CREATE TABLE IF NOT EXISTS profiles (
    uuid TEXT PRIMARY KEY,
    server_id INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
"""


class Database:
    """One SQLite file; a connection per thread, autocommit unless inside `transaction()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        # executescript commits statement by statement; IF NOT EXISTS makes a race harmless.
        self.connection().executescript(SCHEMA)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection (werkzeug serves each request on its own thread)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable enough for a simulator and keeps bulk inserts fast.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction; IMMEDIATE takes the write lock up front to avoid upgrade deadlocks."""
        conn = self.connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        """Run a read-only statement outside any transaction."""
        return self.connection().execute(sql, params).fetchall()

    def close(self) -> None:
        """Close this thread's connection (other threads' connections close when collected)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
