"""Decrypting Apple server tokens: the real 2025 token, every accepted form, and every bad input."""

from __future__ import annotations

import base64
import json
import os
import pickle
from datetime import datetime, timezone

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from portal.apple.errors import (CorruptToken, NotATokenFile, TokenFileError, UnexpectedContent,
                                 WrongRecipient, format_serial)
from portal.apple.tokenfile import build_token_file, encrypt_plaintext, token_credentials, token_plaintext
from portal.apple.tokens import (ServerToken, decrypt_token, decrypt_token_plaintext,
                                 parse_token_plaintext, read_recipient)

TODAY = datetime(2026, 11, 26, tzinfo=timezone.utc)
REAL_EXPIRY = datetime(2026, 1, 17, 11, 2, 21, tzinfo=timezone.utc)
REAL_ISSUER = "CN=apple-mdm-client-tests,OU=com.github.petarov,C=DE"
REAL_SERIAL = 0x70FEDDC7D5AFA393


def secrets_of(creds: dict) -> list[str]:
    """The values that must never appear in a repr or an error message."""
    return [creds["consumer_secret"], creds["access_token"], creds["access_secret"]]


def mime_body(token: bytes) -> bytes:
    """The base64 part of a MIME token file (after the blank line)."""
    return token.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]


# --- the real token ------------------------------------------------------------------------------

def test_real_token_decrypts_with_private_key_alone(abm_vector):
    token = decrypt_token(abm_vector.token, abm_vector.private_key)
    assert token.access_token_expiry == REAL_EXPIRY
    assert token.access_token_expiry.utcoffset().total_seconds() == 0
    assert token.consumer_key.startswith("CK_") and len(token.consumer_key) == 99
    assert token.consumer_secret.startswith("CS_") and len(token.consumer_secret) == 43
    assert token.access_token.startswith("AT_O") and token.access_token.count("O") >= 3
    assert token.access_secret.startswith("AS_") and len(token.access_secret) == 43


def test_real_token_is_expired_today_but_not_before_expiry(abm_vector):
    token = decrypt_token(abm_vector.token, abm_vector.private_key)
    assert token.is_expired(TODAY)
    assert token.is_expired()  # the real clock is past 2026-01-17 too
    assert not token.is_expired(datetime(2026, 1, 17, 11, 2, 20, tzinfo=timezone.utc))
    assert token.is_expired(REAL_EXPIRY)


def test_real_token_plaintext_has_apples_exact_layout(abm_vector):
    text = decrypt_token_plaintext(abm_vector.token, abm_vector.private_key)
    header, rest = text.split(b"\r\n\r\n", 1)
    assert header == b"Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit"
    lines = rest.split(b"\n")
    assert lines[0] == b"-----BEGIN MESSAGE-----" and lines[2:] == [b"-----END MESSAGE-----", b""]
    assert lines[1].startswith(b'{"consumer_key":"CK_') and len(lines[1]) == 376
    assert b"\r" not in rest and len(text) == 498


def test_real_token_recipient_is_read_without_decrypting(abm_vector):
    assert read_recipient(abm_vector.token) == (REAL_ISSUER, REAL_SERIAL)


@pytest.mark.parametrize("form", ["crlf", "bare_base64", "one_line_base64", "der"])
def test_real_token_in_other_forms(abm_vector, form):
    body = mime_body(abm_vector.token)
    data = {
        "crlf": abm_vector.token.replace(b"\n", b"\r\n"),
        "bare_base64": body,
        "one_line_base64": b"".join(body.split()),
        "der": base64.b64decode(body),
    }[form]
    token = decrypt_token(data, abm_vector.private_key)
    assert token == decrypt_token(abm_vector.token, abm_vector.private_key)


def test_definite_length_der_token_decrypts(mdm_pair, mdm_key, token_creds):
    # openssl cms -outform DER writes definite lengths; its last byte may look like whitespace.
    for _ in range(3000):
        ber = build_token_file(mdm_pair.certificate_pem, token_creds, form="der")
        der = cms.ContentInfo.load(ber).dump(force=True)
        if der[-1:].isspace():
            break
    assert der[:2] == b"\x30\x82" and der[-1:].isspace()
    assert decrypt_token(der, mdm_key) == ServerToken.from_dict(token_creds)


def test_real_token_with_another_key_names_its_certificate(abm_vector, mdm_key):
    with pytest.raises(WrongRecipient) as caught:
        decrypt_token(abm_vector.token, mdm_key)
    assert (caught.value.issuer, caught.value.serial) == (REAL_ISSUER, REAL_SERIAL)
    assert REAL_ISSUER in str(caught.value) and "70FEDDC7D5AFA393" in str(caught.value)


# --- tokens built for the portal's own certificate ----------------------------------------------

def test_token_for_another_certificate_is_wrong_recipient(other_pair, mdm_key, token_creds):
    data = build_token_file(other_pair.certificate_pem, token_creds)
    cert = x509.load_pem_x509_certificate(other_pair.certificate_pem)
    # Several tries: OpenSSL's implicit rejection makes each wrong-key decryption different.
    for _ in range(5):
        with pytest.raises(WrongRecipient) as caught:
            decrypt_token(build_token_file(other_pair.certificate_pem, token_creds), mdm_key)
        assert caught.value.serial == cert.serial_number
        assert caught.value.issuer == "CN=Other MDM"
        assert format_serial(cert.serial_number) in str(caught.value)
    assert read_recipient(data) == ("CN=Other MDM", cert.serial_number)


def test_wrong_key_of_another_size_is_wrong_recipient(mdm_pair, token_creds):
    small_key = rsa.generate_private_key(65537, 1024)
    with pytest.raises(WrongRecipient):
        decrypt_token(build_token_file(mdm_pair.certificate_pem, token_creds), small_key)


def test_expired_token_is_accepted(mdm_pair, mdm_key):
    creds = token_credentials(datetime(2020, 2, 29, 12, 0, tzinfo=timezone.utc))
    token = decrypt_token(build_token_file(mdm_pair.certificate_pem, creds), mdm_key)
    assert token.is_expired(TODAY)
    assert token.access_token_expiry == datetime(2020, 2, 29, 12, 0, tzinfo=timezone.utc)


def test_server_token_repr_and_str_hide_secrets(mdm_pair, mdm_key, token_creds):
    token = decrypt_token(build_token_file(mdm_pair.certificate_pem, token_creds), mdm_key)
    for text in (repr(token), str(token)):
        assert token.consumer_key in text
        for secret in secrets_of(token_creds):
            assert secret not in text


def test_server_token_json_round_trip(token_creds):
    token = ServerToken.from_dict(token_creds)
    assert json.loads(token.to_json()) == token_creds
    assert list(json.loads(token.to_json())) == list(token_creds)  # Apple's key order
    assert ServerToken.from_json(token.to_json()) == token


def test_is_expired_needs_an_aware_time(token_creds):
    with pytest.raises(TypeError):
        ServerToken.from_dict(token_creds).is_expired(datetime(2030, 1, 1))


# --- decrypted text variants ---------------------------------------------------------------------

def _text_variants(creds: dict) -> dict[str, bytes]:
    line = json.dumps(creds, separators=(",", ":")).encode()
    folded = b"\n".join(line[i:i + 78] for i in range(0, len(line), 78))
    return {
        "markers": token_plaintext(creds, "markers"),
        "folded": token_plaintext(creds, "folded"),
        "crlf_everywhere": token_plaintext(creds, "markers").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"),
        "no_header": b"-----BEGIN MESSAGE-----\n" + line + b"\n-----END MESSAGE-----\n",
        "json_only": line,
        "folded_no_header_with_markers": b"-----BEGIN MESSAGE-----\n" + folded + b"\n-----END MESSAGE-----",
        "pretty_json": b"Content-Type: text/plain\r\n\r\n" + json.dumps(creds, indent=2).encode(),
    }


@pytest.mark.parametrize("variant", ["markers", "folded", "crlf_everywhere", "no_header", "json_only",
                                     "folded_no_header_with_markers", "pretty_json"])
def test_plaintext_variants_parse(token_creds, variant):
    text = _text_variants(token_creds)[variant]
    assert parse_token_plaintext(text) == ServerToken.from_dict(token_creds)


@pytest.mark.parametrize("change, field_named", [
    (lambda c: c.pop("access_secret"), "access_secret"),
    (lambda c: c.pop("access_token_expiry"), "access_token_expiry"),
    (lambda c: c.update(consumer_key="XK_" + c["consumer_key"][3:]), "consumer_key"),
    (lambda c: c.update(consumer_secret="cs_" + c["consumer_secret"][3:]), "consumer_secret"),
    (lambda c: c.update(access_token=c["access_token"][3:]), "access_token"),
    (lambda c: c.update(access_secret="AT_" + c["access_secret"][3:]), "access_secret"),
    (lambda c: c.update(access_token_expiry="next year"), "access_token_expiry"),
    (lambda c: c.update(access_token_expiry="2026-01-17T11:02:21"), "access_token_expiry"),
    (lambda c: c.update(access_secret=42), "access_secret"),
])
def test_token_with_wrong_fields_is_unexpected_content(mdm_pair, mdm_key, token_creds, change, field_named):
    bad = dict(token_creds)
    change(bad)
    text = b"Content-Type: text/plain;charset=UTF-8\r\n\r\n-----BEGIN MESSAGE-----\n" \
        + json.dumps(bad).encode() + b"\n-----END MESSAGE-----\n"
    with pytest.raises(UnexpectedContent) as caught:
        decrypt_token(encrypt_plaintext(mdm_pair.certificate_pem, text), mdm_key)
    assert field_named in str(caught.value)
    for secret in secrets_of(token_creds):
        assert secret not in str(caught.value) and secret[3:] not in str(caught.value)


@pytest.mark.parametrize("text", [b"hello, not json", b"[1, 2, 3]", b"\n\n", b"{\"consumer_key\": "])
def test_token_without_a_json_object_is_unexpected_content(mdm_pair, mdm_key, text):
    with pytest.raises(UnexpectedContent):
        decrypt_token(encrypt_plaintext(mdm_pair.certificate_pem, text), mdm_key)


# --- files that are not tokens, or damaged ones -------------------------------------------------

def _signed_data(pair) -> bytes:
    cert = x509.load_pem_x509_certificate(pair.certificate_pem)
    key = serialization.load_pem_private_key(pair.private_key_pem, None)
    return (pkcs7.PKCS7SignatureBuilder().set_data(b"hello").add_signer(cert, key, hashes.SHA256())
            .sign(serialization.Encoding.DER, []))


@pytest.mark.parametrize("make, says", [
    (lambda pair: b"", "empty"),
    (lambda pair: b" \r\n ", "empty"),
    (lambda pair: b"\x8f" + os.urandom(599), "not an Apple server token"),
    (lambda pair: b"\x30" + os.urandom(599), "not an Apple server token"),
    (lambda pair: b"just some notes about the MDM server\n", "not an Apple server token"),
    (lambda pair: pair.certificate_pem, "certificate, not a server token"),
    (lambda pair: x509.load_pem_x509_certificate(pair.certificate_pem).public_bytes(
        serialization.Encoding.DER), "certificate, not a server token"),
    (lambda pair: pair.private_key_pem, "private key, not a server token"),
    (lambda pair: _signed_data(pair), "signed_data"),
    (lambda pair: b"Content-Type: text/plain\r\n\r\naGVsbG8=\r\n", "not an S/MIME encrypted"),
], ids=["empty", "whitespace", "random", "random_sequence", "text", "pem_certificate",
        "der_certificate", "private_key", "signed_data", "other_mime"])
def test_not_a_token_file(mdm_pair, mdm_key, make, says):
    data = make(mdm_pair)
    with pytest.raises(NotATokenFile, match=says):
        decrypt_token(data, mdm_key)
    with pytest.raises(NotATokenFile, match=says):
        read_recipient(data)


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_token_is_corrupt(mdm_pair, mdm_key, token_creds, cut):
    data = build_token_file(mdm_pair.certificate_pem, token_creds)
    lines = data.split(b"\n")
    truncated = b"\n".join(lines[:int(len(lines) * cut)]) + b"\n"
    with pytest.raises(CorruptToken):
        decrypt_token(truncated, mdm_key)
    der = build_token_file(mdm_pair.certificate_pem, token_creds, form="der")
    with pytest.raises(CorruptToken):
        decrypt_token(der[:int(len(der) * cut)], mdm_key)


@pytest.mark.parametrize("form", ["smime", "base64"])
def test_token_cut_mid_line_is_corrupt(mdm_pair, mdm_key, token_creds, form):
    data = build_token_file(mdm_pair.certificate_pem, token_creds, form=form)
    for size in (len(data) // 2 + 1, len(data) - 30):
        with pytest.raises(CorruptToken):
            decrypt_token(data[:size], mdm_key)


def test_damaged_base64_in_a_mime_token_is_corrupt(mdm_pair, mdm_key, token_creds):
    data = build_token_file(mdm_pair.certificate_pem, token_creds)
    head, body = data.split(b"\n\n", 1)
    with pytest.raises(CorruptToken):
        decrypt_token(head + b"\n\n" + body.replace(b"A", b"*", 3), mdm_key)


def test_real_token_truncated_is_corrupt(abm_vector):
    with pytest.raises(CorruptToken):
        decrypt_token(abm_vector.token[:900], abm_vector.private_key)


def test_wrong_recipient_survives_pickling():
    error = pickle.loads(pickle.dumps(WrongRecipient(REAL_ISSUER, REAL_SERIAL)))
    assert (error.issuer, error.serial) == (REAL_ISSUER, REAL_SERIAL)
    assert "70FEDDC7D5AFA393" in str(error)


def test_all_token_errors_are_value_errors():
    assert issubclass(TokenFileError, ValueError)
    for error in (NotATokenFile, WrongRecipient, CorruptToken, UnexpectedContent):
        assert issubclass(error, TokenFileError)
