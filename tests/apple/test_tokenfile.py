"""Building token files like Apple Business Manager: byte layout, round trips, credential shapes."""

from __future__ import annotations

import base64
import itertools
import random
import re
from datetime import datetime, timedelta, timezone

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portal.apple.tokenfile import build_token_file, token_credentials, token_plaintext
from portal.apple.tokens import (ServerToken, decrypt_token, decrypt_token_plaintext,
                                 parse_token_plaintext, read_recipient, unwrap_token_file)

APPLE_BASE64_START = "MIAGCSqGSIb3DQEHA6CA"  # §1.2: BER indefinite SEQUENCE + envelopedData OID
# Byte ranges of the real token's BER that are random per token (openssl asn1parse offsets):
# encryptedKey content, the IV and the ciphertext. Everything else must match byte for byte.
RANDOM_RANGES = [(139, 395), (423, 439), (445, 957)]
CIPHER_OIDS = {"aes128": "aes128_cbc", "aes256": "aes256_cbc", "3des": "tripledes_3key"}


def mime_lines(data: bytes) -> list[bytes]:
    """Lines of a file, ends kept (so LF and CRLF can be told apart)."""
    return data.splitlines(keepends=True)


def fixed_parts(ber: bytes) -> bytes:
    """The BER with the per-token random ranges cut out."""
    kept, start = [], 0
    for begin, end in RANDOM_RANGES:
        kept.append(ber[start:begin])
        start = end
    return b"".join(kept) + ber[start:]


# --- byte layout against the real token ----------------------------------------------------------

def test_mime_wrapper_matches_the_real_token(abm_vector, token_creds):
    built = build_token_file(abm_vector.certificate_pem, token_creds)
    real = abm_vector.token
    assert mime_lines(built)[:5] == mime_lines(real)[:5]  # the four headers and the blank line
    # Same certificate and same credential lengths -> same size, so the same 76-column layout.
    assert [len(line) for line in mime_lines(built)] == [len(line) for line in mime_lines(real)]
    assert built.endswith(b"==\n") and real.endswith(b"==\n")


def test_ber_matches_the_real_token_outside_random_bytes(abm_vector, token_creds):
    built = unwrap_token_file(build_token_file(abm_vector.certificate_pem, token_creds))
    real = unwrap_token_file(abm_vector.token)
    assert base64.b64encode(built).startswith(APPLE_BASE64_START.encode())
    assert built[:32] == real[:32]
    assert len(built) == len(real) == 967
    assert fixed_parts(built) == fixed_parts(real)


def test_plaintext_is_byte_identical_to_the_real_one(abm_vector):
    real_text = decrypt_token_plaintext(abm_vector.token, abm_vector.private_key)
    token = parse_token_plaintext(real_text)
    creds = {name: getattr(token, name) for name in
             ("consumer_key", "consumer_secret", "access_token", "access_secret", "access_token_expiry")}
    assert token_plaintext(creds, "markers") == real_text


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("form", ["smime", "base64"])
def test_base64_is_wrapped_at_76_columns(mdm_pair, token_creds, newline, form):
    data = build_token_file(mdm_pair.certificate_pem, token_creds, form=form, newline=newline)
    lines = mime_lines(data)
    assert all(line.endswith(newline.encode()) for line in lines)
    assert b"\r" not in data.replace(b"\r\n", b"")
    body = lines[5:] if form == "smime" else lines
    widths = [len(line.rstrip(b"\r\n")) for line in body]
    assert set(widths[:-1]) == {76} and 0 < widths[-1] <= 76
    assert body[0].startswith(APPLE_BASE64_START.encode())


def test_folded_plaintext_has_the_2014_shape(token_creds):
    text = token_plaintext(token_creds, "folded")
    header, body = text.split(b"\r\n\r\n", 1)
    assert header == b"Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit"
    lines = body.split(b"\n")
    assert lines[-1] == b"" and b"MESSAGE" not in body and b"\r" not in body
    assert all(len(line) == 78 for line in lines[:-2]) and 0 < len(lines[-2]) <= 78


# --- round trips in every variant -----------------------------------------------------------------

VARIANTS = [v for v in itertools.product(["aes128", "aes256", "3des"], ["smime", "base64", "der"],
                                         ["\n", "\r\n"], ["markers", "folded"])
            if not (v[1] == "der" and v[2] == "\r\n")]  # newline does not apply to DER


@pytest.mark.parametrize("cipher, form, newline, plaintext", VARIANTS)
def test_round_trip(mdm_pair, mdm_key, token_creds, cipher, form, newline, plaintext):
    data = build_token_file(mdm_pair.certificate_pem, token_creds, cipher=cipher, form=form,
                            newline=newline, plaintext=plaintext)
    assert decrypt_token(data, mdm_key) == ServerToken.from_dict(token_creds)
    assert decrypt_token_plaintext(data, mdm_key) == token_plaintext(token_creds, plaintext)
    envelope = cms.ContentInfo.load(unwrap_token_file(data))["content"]
    content_info = envelope["encrypted_content_info"]
    assert content_info["content_encryption_algorithm"]["algorithm"].native == CIPHER_OIDS[cipher]
    assert content_info["encrypted_content"].method == 1  # constructed, like Apple's
    ktri = envelope["recipient_infos"][0].chosen
    assert ktri["key_encryption_algorithm"].dump() == bytes.fromhex("300d06092a864886f70d0101010500")
    assert len(envelope["recipient_infos"]) == 1 and envelope["version"].native == "v0"


def test_ber_layers_are_indefinite_length(mdm_pair, token_creds):
    ber = build_token_file(mdm_pair.certificate_pem, token_creds, form="der")
    assert ber.startswith(bytes.fromhex("3080 06092a864886f70d010703 a080 3080 020100 31"))
    assert ber.endswith(b"\x00" * 10)  # five end-of-contents: [0] content, ECI, ED, [0], CI


def test_recipient_is_the_certificate(mdm_pair, token_creds):
    cert = x509.load_pem_x509_certificate(mdm_pair.certificate_pem)
    data = build_token_file(mdm_pair.certificate_pem, token_creds)
    assert read_recipient(data) == ("O=Example School,CN=Test MDM", cert.serial_number)


def test_der_certificate_is_accepted(mdm_pair, mdm_key, token_creds):
    der = x509.load_pem_x509_certificate(mdm_pair.certificate_pem).public_bytes(serialization.Encoding.DER)
    token = decrypt_token(build_token_file(der, token_creds), mdm_key)
    assert token.consumer_key == token_creds["consumer_key"]


def test_each_file_uses_a_fresh_key_and_iv(mdm_pair, token_creds):
    def random_parts(ber: bytes) -> tuple[bytes, bytes]:
        envelope = cms.ContentInfo.load(ber)["content"]
        algorithm = envelope["encrypted_content_info"]["content_encryption_algorithm"]
        return envelope["recipient_infos"][0].chosen["encrypted_key"].native, algorithm.encryption_iv

    first = build_token_file(mdm_pair.certificate_pem, token_creds, form="der")
    second = build_token_file(mdm_pair.certificate_pem, token_creds, form="der")
    assert len(first) == len(second)
    key_1, iv_1 = random_parts(first)
    key_2, iv_2 = random_parts(second)
    assert key_1 != key_2 and iv_1 != iv_2 and len(iv_1) == 16


@pytest.mark.parametrize("option", [{"cipher": "aes512"}, {"form": "pem"}, {"newline": "\r"},
                                    {"plaintext": "xml"}])
def test_unknown_options_are_refused(mdm_pair, token_creds, option):
    with pytest.raises(ValueError):
        build_token_file(mdm_pair.certificate_pem, token_creds, **option)


def test_non_rsa_certificate_is_refused(token_creds):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "EC MDM")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    with pytest.raises(ValueError, match="RSA"):
        build_token_file(cert.public_bytes(serialization.Encoding.PEM), token_creds)


def test_missing_credential_is_refused(mdm_pair, token_creds):
    del token_creds["access_secret"]
    with pytest.raises(KeyError):
        build_token_file(mdm_pair.certificate_pem, token_creds)


# --- credentials -----------------------------------------------------------------------------------

SHAPES = {
    "consumer_key": r"CK_[0-9a-f]{96}",
    "consumer_secret": r"CS_[0-9a-f]{40}",
    "access_token": r"AT_O[1-9][0-9]{9}O[0-9a-f]{40}O[0-9]{13}",
    "access_secret": r"AS_[0-9a-f]{40}",
    "access_token_expiry": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
}


@pytest.mark.parametrize("rng", [None, random.Random(7)], ids=["secrets", "seeded"])
def test_credentials_have_apples_shapes(rng):
    expiry = datetime(2027, 3, 1, 8, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    creds = token_credentials(expiry, rng)
    assert list(creds) == list(SHAPES)
    for name, shape in SHAPES.items():
        assert re.fullmatch(shape, creds[name]), name
    assert creds["access_token_expiry"] == "2027-03-01T06:30:05Z"
    issued_ms = int(creds["access_token"].rsplit("O", 1)[1])
    issued = datetime(2026, 3, 1, 6, 30, 5, tzinfo=timezone.utc)
    assert 0 <= issued_ms - int(issued.timestamp()) * 1000 < 1000  # issued one year before expiry


def test_credentials_are_reproducible_with_a_seed_and_fresh_without():
    expiry = datetime(2028, 2, 29, tzinfo=timezone.utc)
    assert token_credentials(expiry, random.Random(1)) == token_credentials(expiry, random.Random(1))
    assert token_credentials(expiry) != token_credentials(expiry)
    issued_ms = int(token_credentials(expiry)["access_token"].rsplit("O", 1)[1])
    assert datetime.fromtimestamp(issued_ms // 1000, timezone.utc).date().isoformat() == "2027-02-28"


def test_credentials_need_an_aware_expiry():
    with pytest.raises(ValueError):
        token_credentials(datetime(2027, 1, 1))
