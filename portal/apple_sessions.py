"""Apple session tokens shared by the portal's processes, so each job does not sign in again.

A job used to open its own session (`GET /session`, a round trip to Apple before its first call)
and leave it unused when it ended. Now the session a client signs in to, or that Apple rotates, is
kept in Redis for a few minutes and taken up by the next client of the same server token, on any
worker; a session Apple refuses is replaced by the newest kept one (another job's call may have
rotated it) or by signing in again (portal/apple/client.py). Fewer
sessions is also the cautious side of an open question: Apple may not support several sessions of
one token at the same time (reference §2.3, UNCERTAIN).

The token is encrypted with the portal's keys, under a key derived from the server token, so a
renewed server token never picks up its predecessor's session. Without Redis the client simply
signs in, as before.
"""
from __future__ import annotations

import hashlib
import logging

from flask import current_app
from redis.exceptions import RedisError

from . import vault
from .apple.tokens import ServerToken
from .queue import get_redis

log = logging.getLogger(__name__)

# Apple's session lifetime is undocumented ("expires after a period of inactivity"); micromdm
# signs in again every 3 minutes, and so a kept session is never older than that here.
KEEP_S = 180


class RedisSessionStore:
    """A DEPClient session store (load/save) for one server token; safe to use from any thread."""

    def __init__(self, token: ServerToken):
        digest = hashlib.sha256(f"{token.consumer_key}\0{token.access_token}".encode()).hexdigest()
        self._key = f"ade:apple-session:{digest[:32]}"
        self._redis = get_redis()
        self._keys = current_app.config["ENCRYPTION_KEYS"]  # captured: save() may run outside the app context

    def load(self) -> str | None:
        try:
            stored = self._redis.get(self._key)
            return vault.decrypt(stored, self._keys).decode() if stored else None
        except (RedisError, vault.VaultError) as exc:
            log.warning("no kept Apple session (%s): signing in", type(exc).__name__)
            return None

    def save(self, session_token: str) -> None:
        try:
            self._redis.set(self._key, vault.encrypt(session_token, self._keys), ex=KEEP_S)
        except RedisError as exc:
            log.warning("Apple session not kept (%s)", type(exc).__name__)
