"""Opaque fetch/sync cursors shaped like Apple's: unpadded base64url of colon-separated numbers.

A cursor is self-contained, so the simulator needs no cursor table:
``server_id:event_seq:created_ms:pos_ms:pos_id:done``

- ``event_seq``: sync returns events after it (a fetch snapshots it when it starts).
- ``created_ms``: sim-clock issue time; sync refuses cursors older than 7 days.
- ``pos_ms``/``pos_id``: where a fetch stopped in (device_assigned_date, device id) order.
- ``done``: 1 once the fetch finished (and for every sync cursor); fetching with it is EXHAUSTED.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, replace

MAX_LENGTH = 1000  # Apple documents cursors as strings of at most 1000 characters
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class CursorError(ValueError):
    """The string is not a cursor this simulator issued."""


@dataclass(frozen=True)
class Cursor:
    """Decoded cursor fields (see module docstring)."""

    server_id: int
    seq: int
    created_ms: int
    pos_ms: int = 0
    pos_id: int = 0
    done: bool = False

    def encode(self) -> str:
        """Unpadded base64url text, like Apple's."""
        text = ":".join(str(v) for v in (self.server_id, self.seq, self.created_ms,
                                          self.pos_ms, self.pos_id, int(self.done)))
        return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()

    def advanced(self, **changes) -> "Cursor":
        """A copy with some fields changed."""
        return replace(self, **changes)


def decode(text: str) -> Cursor:
    """Parse a cursor; raises CursorError for anything that is not one."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH or not _BASE64URL.fullmatch(text):
        raise CursorError("not a cursor")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        parts = [int(p) for p in raw.split(":")]
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CursorError("not a cursor") from None
    if len(parts) != 6 or min(parts) < 0 or parts[5] not in (0, 1):
        raise CursorError("not a cursor")
    server_id, seq, created_ms, pos_ms, pos_id, done = parts
    return Cursor(server_id, seq, created_ms, pos_ms, pos_id, bool(done))
