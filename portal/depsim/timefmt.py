"""Time helpers: Apple's whole-second RFC 3339 `Z` format and calendar-year arithmetic."""
from __future__ import annotations

from datetime import datetime, timezone


def iso(ts: float | None) -> str | None:
    """Epoch seconds → `2025-01-17T11:02:21Z` (Apple sends whole seconds with `Z`)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(int(ts), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """RFC 3339 text (with `Z` or an offset) → aware UTC datetime."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def one_year_later(when: datetime) -> datetime:
    """Same instant next calendar year (Apple tokens: 2022-07-01T22:18:53Z → 2023-07-01T22:18:53Z)."""
    try:
        return when.replace(year=when.year + 1)
    except ValueError:  # 29 February
        return when.replace(year=when.year + 1, day=28)
