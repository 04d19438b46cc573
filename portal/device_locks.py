"""Writers of a managed server's devices take turns (PostgreSQL; SQLite writes one transaction at
a time anyway).

A sync upserts a page of devices in Apple's order, an Add Devices job updates its chunk of
devices, Delete server deletes them all: each locks rows in its own order, so two at once can
deadlock, and PostgreSQL then kills one of them. Each takes this server's transaction-level
advisory lock before its first device write instead, and they wait for each other.

Add Devices / Remove Devices requests of one server take a lock of their own, so a request sees
the tasks of one made a moment earlier and supersedes them (one action per device). So do saves of
its default profiles, so that two at once cannot leave two defaults for one device family.
"""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from .extensions import db

DEVICE_WRITES = 1  # first key of the two-key advisory locks: what is locked; the second: the server id
ASSIGNMENT_REQUESTS = 2
DEFAULT_PROFILES = 3


def lock_device_writes(server_id: int, *, timeout_s: float | None = None) -> None:
    """Wait for the server's other device writers to commit (until `timeout_s`: then Busy)."""
    _lock(DEVICE_WRITES, server_id, timeout_s)


def lock_assignment_requests(server_id: int) -> None:
    """Wait for the server's other Add Devices / Remove Devices request being created."""
    _lock(ASSIGNMENT_REQUESTS, server_id, None)


def lock_default_profiles(server_id: int) -> None:
    """Wait for another save of a default profile of the server: each then sees the defaults the other left."""
    _lock(DEFAULT_PROFILES, server_id, None)


class Busy(Exception):
    """The lock was not free within the timeout (the transaction is rolled back)."""


def _lock(kind: int, server_id: int, timeout_s: float | None) -> None:
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        return
    if timeout_s is not None:
        connection.execute(text(f"SET LOCAL lock_timeout = '{int(timeout_s * 1000)}ms'"))
    try:
        connection.execute(text("SELECT pg_advisory_xact_lock(:kind, :server_id)"),
                           {"kind": kind, "server_id": server_id})
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != "55P03":  # lock_not_available
            raise
        db.session.rollback()
        raise Busy() from exc
    if timeout_s is not None:
        connection.execute(text("SET LOCAL lock_timeout = 0"))
