"""Response shapes of the simulated Apple service: compact JSON and bare plain-text error tokens."""
from __future__ import annotations

import json

from flask import Response

JSON_TYPE = "application/json;charset=UTF8"   # Apple's spelling: no hyphen in UTF8
TEXT_TYPE = "text/plain;charset=UTF8"


class ApiError(Exception):
    """An Apple-style error answer: status + bare token body (+ optional headers)."""

    def __init__(self, status: int, token: str = "", headers: dict | None = None) -> None:
        super().__init__(f"{status} {token}")
        self.status = status
        self.token = token
        self.headers = headers or {}


def json_response(payload, status: int = 200) -> Response:
    """Compact JSON with Apple's Content-Type."""
    body = json.dumps(payload, separators=(",", ":"))
    return Response(body, status=status, content_type=JSON_TYPE)


def error_response(error: ApiError, *, quoted: bool = False) -> Response:
    """The error body as Apple sends it (`UNAUTHORIZED`), or depsim-style quoted (`"UNAUTHORIZED"`)."""
    if not error.token:  # e.g. 405: empty body
        response = Response(b"", status=error.status)
        response.headers.pop("Content-Type", None)
    else:
        body = f'"{error.token}"' if quoted else error.token
        response = Response(body, status=error.status, content_type=TEXT_TYPE)
    response.headers.update(error.headers)
    return response
