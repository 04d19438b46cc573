"""Apple DEP error parsing and classification (pure functions, no HTTP)."""

import pickle
from datetime import datetime, timezone

import pytest

from portal.apple import errors
from portal.apple.errors import (AccessDenied, AppleError, BadRequest, CursorExhausted,
                                 CursorExpired, CursorInvalid, CursorRequired, NotFound,
                                 ProfileInvalid, SessionExpired, TermsNotSigned, Throttled,
                                 TokenRejected, TransientError, error_from_response,
                                 parse_error_code, parse_retry_after)


@pytest.mark.parametrize("body, code", [
    ("T_C_NOT_SIGNED", "T_C_NOT_SIGNED"),
    ("T_C_NOT_SIGNED\n", "T_C_NOT_SIGNED"),
    ('"INVALID_CURSOR"', "INVALID_CURSOR"),
    ('"INVALID_CURSOR"\r\n', "INVALID_CURSOR"),
    ('{"code": "EXPIRED_CURSOR"}', "EXPIRED_CURSOR"),
    ('{"error": "ACCESS_DENIED", "message": "nope"}', "ACCESS_DENIED"),
    ('{"message": "no code here"}', None),
    ('"token_rejected"', "token_rejected"),
    ("oauth_problem_adviceUnauthorized", "oauth_problem_adviceUnauthorized"),
    ("oauth_problem_adviceBad Request", "oauth_problem_adviceBad Request"),
    ("oauth_problem=signature_invalid&oauth_problem_advice=check", "signature_invalid"),
    ("", None),
    ("   ", None),
    ("Internal Server Error", None),
    ("<html><body>502 Bad Gateway</body></html>", None),
    ('"unterminated', "unterminated"),
    ("[1, 2]", None),
])
def test_parse_error_code_accepts_every_body_shape(body, code):
    assert parse_error_code(body) == code


def test_parse_retry_after_seconds_and_dates():
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("30") == 30
    assert parse_retry_after(" 2.5 ") == 3
    assert parse_retry_after("Wed, 01 Jan 2025 12:01:30 GMT", now=now) == 90
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("-5") == 0
    for nothing in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(nothing) is None


@pytest.mark.parametrize("status, body, path, cls", [
    (403, "T_C_NOT_SIGNED", "/session", TermsNotSigned),
    (403, '"T_C_NOT_SIGNED"', "/account", TermsNotSigned),
    (403, "ACCESS_DENIED", "/session", AccessDenied),
    (403, "token_rejected", "/session", TokenRejected),
    (401, '"signature_invalid"', "/session", TokenRejected),
    (403, "token_expiredForbidden", "/session", TokenRejected),
    (401, "oauth_problem_adviceUnauthorized", "/session", TokenRejected),
    (401, "UNAUTHORIZED", "/session", TokenRejected),
    (403, "FORBIDDEN", "/session", TokenRejected),
    (403, "FORBIDDEN", "/server/devices", TokenRejected),
    (401, "UNAUTHORIZED", "/account", SessionExpired),
    (400, "EXPIRED_CURSOR", "/devices/sync", CursorExpired),
    (400, '"INVALID_CURSOR"', "/server/devices", CursorInvalid),
    (400, "EXHAUSTED_CURSOR", "/server/devices", CursorExhausted),
    (400, "CURSOR_REQUIRED", "/devices/sync", CursorRequired),
    (400, "NOT_FOUND", "/profile", NotFound),
    (400, "PROFILE_NOT_FOUND", "/profile/devices", NotFound),
    (404, "", "/profile/devices", NotFound),
    (400, "CONFIG_URL_INVALID", "/profile", ProfileInvalid),
    (400, "USER_AGENT_INVALID", "/server/devices", BadRequest),
    (400, "oauth_problem_adviceBad Request", "/session", BadRequest),
    (400, "SOMETHING_NEW", "/account", BadRequest),
    (500, "SERVER_ERROR", "/account", TransientError),
    (502, "<html>bad gateway</html>", "/account", TransientError),
    (503, "", "/account", TransientError),
    (429, "TOO_MANY_REQUESTS", "/session", Throttled),
    (405, "", "/account", AppleError),
])
def test_error_from_response_maps_status_and_code(status, body, path, cls):
    exc = error_from_response(status, body, path=path)
    assert type(exc) is cls
    assert exc.status == status
    assert exc.body == body
    assert exc.message and str(exc) == exc.message


def test_cursor_required_is_handled_like_an_invalid_cursor():
    assert issubclass(CursorRequired, CursorInvalid)
    assert all(issubclass(c, errors.CursorError) for c in (CursorExpired, CursorExhausted))


def test_terms_not_signed_tells_the_admin_what_to_do():
    exc = error_from_response(403, "T_C_NOT_SIGNED", path="/session")
    assert exc.code == "T_C_NOT_SIGNED"
    assert exc.message == ("Apple Business Manager's terms and conditions have changed: an administrator "
                           "must sign in to Apple Business Manager and accept them.")


@pytest.mark.parametrize("code, field", [
    ("CONFIG_NAME_REQUIRED", "profile_name"), ("CONFIG_NAME_INVALID", "profile_name"),
    ("CONFIG_URL_REQUIRED", "url"), ("CONFIG_URL_INVALID", "url"),
    ("DEPARTMENT_INVALID", "department"), ("FLAGS_INVALID", "is_mdm_removable"),
    ("LOCALE_INVALID", "language"), ("MAGIC_INVALID", "org_magic"),
    ("SUPPORT_EMAIL_INVALID", "support_email_address"),
    ("SUPPORT_PHONE_INVALID", "support_phone_number"),
])
def test_profile_codes_name_the_field(code, field):
    exc = error_from_response(400, f'"{code}"', path="/profile")
    assert isinstance(exc, ProfileInvalid)
    assert (exc.code, exc.field) == (code, field)
    assert exc.message != ProfileInvalid.default_message


def test_throttled_carries_retry_after():
    exc = error_from_response(429, "", path="/account", retry_after=42)
    assert isinstance(exc, Throttled) and exc.retry_after == 42
    assert "42 seconds" in exc.message
    with_header = error_from_response(503, "", path="/account", retry_after=7)
    assert isinstance(with_header, Throttled) and with_header.retry_after == 7
    assert error_from_response(429, "", path="/account").retry_after > 0


def test_body_is_truncated_to_one_kib_and_kept_out_of_repr_and_message():
    body = "X" * 5000
    exc = error_from_response(500, body, path="/account")
    assert exc.body == "X" * 1024
    assert "XXXX" not in repr(exc) and "XXXX" not in str(exc)
    assert repr(exc) == "TransientError(status=500, code=None)"


def test_exceptions_survive_pickling():
    # RQ and logging handlers may pickle exceptions; attributes must come back.
    for exc in (error_from_response(400, "FLAGS_INVALID", path="/profile"),
                error_from_response(429, "", path="/account", retry_after=9),
                error_from_response(403, "T_C_NOT_SIGNED", path="/session")):
        clone = pickle.loads(pickle.dumps(exc))
        assert type(clone) is type(exc)
        assert (clone.status, clone.code, clone.body, clone.message) == \
            (exc.status, exc.code, exc.body, exc.message)
        assert getattr(clone, "field", None) == getattr(exc, "field", None)
        assert getattr(clone, "retry_after", None) == getattr(exc, "retry_after", None)
