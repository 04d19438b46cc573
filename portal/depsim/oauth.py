"""OAuth 1.0a (HMAC-SHA1) checks for `GET /session`, using oauthlib's RFC 5849 signature functions.

The base string is built over the URL exactly as this simulator received it (scheme, Host
header, path, query), which is what a client signing `<base_url>/session` produces.
Error bodies are the ones observed from Apple (reference §2.2, Jamf/petarov logs).
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from oauthlib.oauth1.rfc5849 import signature, utils

BAD_REQUEST = "oauth_problem_adviceBad Request"
UNAUTHORIZED = "oauth_problem_adviceUnauthorized"
REQUIRED = ("oauth_consumer_key", "oauth_token", "oauth_signature_method", "oauth_timestamp",
            "oauth_nonce", "oauth_signature")
ALLOWED = set(REQUIRED) | {"oauth_version", "realm"}


class OAuthFailure(Exception):
    """A refused /session call: HTTP status and Apple's body token."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


@dataclass(frozen=True)
class OAuthRequest:
    """The parsed Authorization header of a /session call (repr hides the signature)."""

    consumer_key: str
    token: str
    nonce: str
    timestamp: int
    signature: str
    params: list

    def __repr__(self) -> str:
        return f"OAuthRequest(consumer_key={self.consumer_key[:8]}…, timestamp={self.timestamp})"


def parse(header: str | None, query: str = "") -> OAuthRequest:
    """Parse and sanity-check `Authorization: OAuth …`; 400 for malformed, duplicated or unsupported parameters."""
    if not header or header[:6].lower() != "oauth ":
        raise OAuthFailure(400, BAD_REQUEST)
    values: dict[str, str] = {}
    for item in utils.parse_http_list(header[6:]):
        key, sep, value = item.strip().partition("=")
        key = key.strip()
        if not sep or key in values or key not in ALLOWED:
            raise OAuthFailure(400, BAD_REQUEST)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        values[key] = utils.unescape(value) if key.startswith("oauth_") else value
    if any(not values.get(k) for k in REQUIRED) or values["oauth_signature_method"] != "HMAC-SHA1" \
            or values.get("oauth_version", "1.0") != "1.0":
        raise OAuthFailure(400, BAD_REQUEST)
    try:
        timestamp = int(values["oauth_timestamp"])
    except ValueError:
        raise OAuthFailure(401, UNAUTHORIZED) from None
    # realm and oauth_signature are never part of the base string; collect_parameters drops both.
    params = signature.collect_parameters(uri_query=query, headers={"Authorization": header})
    return OAuthRequest(values["oauth_consumer_key"], values["oauth_token"], values["oauth_nonce"],
                        timestamp, values["oauth_signature"], params)


def signature_valid(req: OAuthRequest, url: str, consumer_secret: str, access_secret: str) -> bool:
    """Whether the HMAC-SHA1 signature matches GET `url` with the token's two secrets."""
    request = SimpleNamespace(params=req.params, uri=url, http_method="GET", signature=req.signature)
    try:
        return signature.verify_hmac_sha1(request, consumer_secret, access_secret)
    except ValueError:  # unparseable URL
        return False


def timestamp_fresh(timestamp: int, wall: float, sim: float, skew: float) -> bool:
    """Within `skew` seconds of the wall clock or of the simulated clock.

    Clients sign with the real time while tests shift the simulated clock (cursor and session
    expiry), so either reference is accepted; a stale or far-future stamp still fails.
    """
    return abs(timestamp - wall) <= skew or abs(timestamp - sim) <= skew
