"""Per-server fault switches: names, accepted value shapes, and how a fault picks its victims.

Stored as one JSON object on the server row, so toggling a fault from another process (the
control API, a test, the CLI) is seen by the very next request.
"""
from __future__ import annotations

import hashlib

BOOLEAN_FAULTS = ("terms_not_signed", "access_denied", "token_revoked", "quote_errors")
FAULT_NAMES = BOOLEAN_FAULTS + ("server_error", "latency", "throttle", "assign_failed")
SERVER_ERROR_STATUSES = (429, 500, 502, 503, 504)
MIN_RETRY_AFTER = 10  # Apple's retry_after_seconds is never below 10
DEFAULT_RETRY_AFTER = 30


def normalize(fault: str, value):
    """The stored form of a fault value, or None when the value switches the fault off."""
    if fault not in FAULT_NAMES:
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULT_NAMES)}")
    if value is None or value is False:
        return None
    if fault in BOOLEAN_FAULTS:
        return True if _truthy(value) else None
    if fault == "latency":
        seconds = float(value)
        if not 0 <= seconds <= 120:
            raise ValueError("latency must be between 0 and 120 seconds")
        return seconds or None
    if fault == "server_error":
        return _server_error(value)
    if fault == "throttle":
        return _throttle(value)
    return _serials(value) or None  # assign_failed


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _serials(value) -> list[str]:
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, str) for s in value):
        raise ValueError("expected a list of serial numbers")
    return sorted({s.strip() for s in value if s.strip()})


def _server_error(value) -> dict | None:
    """`N` (500 for N calls) or {"count": N, "status": 429|500|502|503|504, "retry_after": seconds}."""
    spec = {"count": value} if not isinstance(value, dict) else dict(value)
    count = spec.get("count", 1)
    count = int(count) if not isinstance(count, bool) else int(count)
    status = int(spec.get("status", 500))
    if status not in SERVER_ERROR_STATUSES:
        raise ValueError(f"server_error status must be one of {SERVER_ERROR_STATUSES}")
    if count <= 0:
        return None
    result = {"count": count, "status": status}
    if spec.get("retry_after") not in (None, ""):
        result["retry_after"] = max(0, int(spec["retry_after"]))
    return result


def _throttle(value) -> dict | None:
    """A serial list, a fraction, or {"serials": [...], "fraction": 0..1, "retry_after": >=10}."""
    if isinstance(value, bool):
        value = {"fraction": 1.0}
    elif isinstance(value, (int, float)):
        value = {"fraction": value}
    elif isinstance(value, (list, tuple, str)):
        value = {"serials": value}
    serials = _serials(value.get("serials", []))
    fraction = float(value.get("fraction", 0))
    if not 0 <= fraction <= 1:
        raise ValueError("throttle fraction must be between 0 and 1")
    retry_after = max(MIN_RETRY_AFTER, int(value.get("retry_after", DEFAULT_RETRY_AFTER)))
    if not serials and not fraction:
        return None
    return {"serials": serials, "fraction": fraction, "retry_after": retry_after}


def is_throttled(serial: str, spec: dict | None) -> bool:
    """Whether the throttle fault hits `serial` (a hash, so the same serials stay throttled)."""
    if not spec:
        return False
    if serial in spec["serials"]:
        return True
    bucket = int.from_bytes(hashlib.sha256(serial.encode()).digest()[:4], "big") / 2**32
    return bucket < spec["fraction"]
