"""Define-profile validation with Apple's error codes (reference §3.6).

Type errors (a string where a boolean belongs, a list that is not a list) are what Apple's JSON
reader rejects before any field rule runs, so they answer MALFORMED_REQUEST_BODY.

Lengths: Apple gives its limits in "UTF-8 characters" (§3.6) without saying whether a character
is a code point or a byte. The strict reading is taken: bytes of UTF-8 (é counts 2, 日 3, 😀 4),
and the URL's 2000 "URL-encoded characters" count each non-ASCII byte as its %XX escape.
"""
from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import quote, urlsplit

from cryptography import x509

BOOLEAN_DEFAULTS = {  # GET /profile returns every boolean explicitly
    "allow_pairing": True, "is_supervised": False, "is_multi_user": False, "is_mandatory": False,
    "await_device_configured": False, "is_mdm_removable": True, "auto_advance_setup": False,
    "do_not_use_profile_from_backup": False, "is_return_to_service": False,
}
V2_FIELDS = ("auto_advance_setup", "await_device_configured", "is_multi_user", "support_email_address")
STRING_FIELDS = ("profile_name", "url", "configuration_web_url", "department", "support_phone_number",
                 "support_email_address", "org_magic", "language", "region")
LIST_FIELDS = ("anchor_certs", "supervising_host_certs", "skip_setup_items", "devices")
# The Profile object's fields (reference §3.6) that GET /profile can return; Apple ignores others.
PROFILE_FIELDS = (frozenset(BOOLEAN_DEFAULTS) | frozenset(STRING_FIELDS) | frozenset(LIST_FIELDS)) - {"devices"}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_LANGUAGE = re.compile(r"[a-z]{2,3}")
_REGION = re.compile(r"[A-Z]{2}")


class ProfileError(ValueError):
    """A rejected profile; `code` is Apple's error token."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def validate_profile(profile) -> dict:
    """Check a Define Profile body; returns it unchanged or raises ProfileError(code)."""
    if not isinstance(profile, dict):
        raise ProfileError("MALFORMED_REQUEST_BODY")
    _check_types(profile)
    name = profile.get("profile_name")
    if not name:
        raise ProfileError("CONFIG_NAME_REQUIRED")
    if utf8_length(name) > 125:
        raise ProfileError("CONFIG_NAME_INVALID")
    url = profile.get("url")
    if not url:
        raise ProfileError("CONFIG_URL_REQUIRED")
    if not _valid_url(url) or ("configuration_web_url" in profile
                               and not _valid_url(profile["configuration_web_url"])):
        raise ProfileError("CONFIG_URL_INVALID")
    _check_optional_text(profile, "department", 125, "DEPARTMENT_INVALID")
    _check_optional_text(profile, "support_phone_number", 50, "SUPPORT_PHONE_INVALID")
    _check_optional_text(profile, "org_magic", 256, "MAGIC_INVALID")
    email = profile.get("support_email_address")
    if email is not None and (utf8_length(email) > 250 or (email and not _EMAIL.fullmatch(email))):
        raise ProfileError("SUPPORT_EMAIL_INVALID")
    if profile.get("is_mdm_removable") is False and profile.get("is_supervised") is not True:
        raise ProfileError("FLAGS_INVALID")
    if ("language" in profile and not _LANGUAGE.fullmatch(profile["language"])) or \
            ("region" in profile and not _REGION.fullmatch(profile["region"])):
        raise ProfileError("LOCALE_INVALID")
    for key in ("anchor_certs", "supervising_host_certs"):
        if not all(_is_der_certificate(item) for item in profile.get(key, [])):
            raise ProfileError("MALFORMED_REQUEST_BODY")
    return profile


def _check_types(profile: dict) -> None:
    for key in BOOLEAN_DEFAULTS:
        if key in profile and not isinstance(profile[key], bool):
            raise ProfileError("MALFORMED_REQUEST_BODY")
    for key in STRING_FIELDS:
        if key in profile and not (isinstance(profile[key], str) and _is_unicode(profile[key])):
            raise ProfileError("MALFORMED_REQUEST_BODY")
    for key in LIST_FIELDS:
        value = profile.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and _is_unicode(v) for v in value):
            raise ProfileError("MALFORMED_REQUEST_BODY")


def _is_unicode(text: str) -> bool:
    """False for a lone surrogate (JSON's "\\ud800"), which no UTF-8 reader accepts."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def utf8_length(text: str) -> int:
    """Length as Apple's limits are read here: bytes of UTF-8 (see module docstring)."""
    return len(text.encode("utf-8"))


def url_encoded_length(url: str) -> int:
    """Length once percent-encoded: ASCII as typed, each non-ASCII UTF-8 byte as %XX."""
    return len(quote(url, safe="".join(chr(c) for c in range(128))))


def _check_optional_text(profile: dict, key: str, limit: int, code: str) -> None:
    """Present means non-empty and at most `limit` characters."""
    if key in profile and not 0 < utf8_length(profile[key]) <= limit:
        raise ProfileError(code)


def _valid_url(url: str) -> bool:
    """≤2000 URL-encoded chars, absolute http(s) URL with a host, no whitespace (RFC 2396 syntax)."""
    if url_encoded_length(url) > 2000 or any(ch.isspace() for ch in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # raises for a malformed port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _is_der_certificate(item: str) -> bool:
    try:
        x509.load_der_x509_certificate(base64.b64decode(item, validate=True))
    except (binascii.Error, ValueError):
        return False
    return True


def profile_for_get(body: dict, uuid: str, version: int) -> dict:
    """GET /profile shape: stored Profile fields, explicit booleans, `profile_uuid`, no `devices`.

    Keys Apple does not know are left out, so a misspelt key a client sent cannot look accepted."""
    result = {**BOOLEAN_DEFAULTS, **{k: v for k, v in body.items() if k in PROFILE_FIELDS}}
    if version < 2:  # these fields arrived with protocol version 2
        for key in V2_FIELDS:
            result.pop(key, None)
    result["profile_uuid"] = uuid
    return result
