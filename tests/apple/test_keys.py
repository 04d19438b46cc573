"""Private keys in every form admins have, generated key pairs, and certificate_info."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtensionOID, NameOID

from portal.apple.certs import certificate_info, is_pkcs7, pem_blocks, pem_pkcs7_certificates, pkcs7_certificates
from portal.apple.errors import (CertificateError, NotAPrivateKey, PasswordRequired, PrivateKeyError,
                                 UnsupportedKey, WrongPassword)
from portal.apple.keys import generate_key_pair, load_private_key, private_key_to_pem
from portal.apple.tokenfile import build_token_file, token_credentials
from portal.apple.token_unwrap import unwrap_token_file
from portal.apple.tokens import decrypt_token

PASSWORD = "pässwörd with spaces"
ENCRYPT = ser.BestAvailableEncryption(PASSWORD.encode())
PLAIN = ser.NoEncryption()


def _cert(pair) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pair.certificate_pem)


def _pem(key, fmt, encryption=PLAIN) -> bytes:
    return key.private_bytes(ser.Encoding.PEM, fmt, encryption)


def _der(key, fmt, encryption=PLAIN) -> bytes:
    return key.private_bytes(ser.Encoding.DER, fmt, encryption)


# name -> (file bytes from (key, pair), password needed?)
KEY_FORMS = {
    "pem_pkcs1": (lambda k, p: _pem(k, ser.PrivateFormat.TraditionalOpenSSL), False),
    "pem_pkcs1_crlf": (lambda k, p: _pem(k, ser.PrivateFormat.TraditionalOpenSSL)
                       .replace(b"\n", b"\r\n"), False),
    "pem_pkcs8": (lambda k, p: _pem(k, ser.PrivateFormat.PKCS8), False),
    "pem_pkcs8_encrypted": (lambda k, p: _pem(k, ser.PrivateFormat.PKCS8, ENCRYPT), True),
    "pem_legacy_encrypted": (lambda k, p: _pem(k, ser.PrivateFormat.TraditionalOpenSSL, ENCRYPT), True),
    "bundle_cert_then_key": (lambda k, p: p.certificate_pem + _pem(k, ser.PrivateFormat.PKCS8), False),
    "bundle_key_then_cert": (lambda k, p: _pem(k, ser.PrivateFormat.TraditionalOpenSSL) + b"\n"
                             + p.certificate_pem, False),
    "bundle_encrypted_key": (lambda k, p: p.certificate_pem
                             + _pem(k, ser.PrivateFormat.PKCS8, ENCRYPT), True),
    "der_pkcs1": (lambda k, p: _der(k, ser.PrivateFormat.TraditionalOpenSSL), False),
    "der_pkcs8": (lambda k, p: _der(k, ser.PrivateFormat.PKCS8), False),
    "der_pkcs8_encrypted": (lambda k, p: _der(k, ser.PrivateFormat.PKCS8, ENCRYPT), True),
    "p12_with_password": (lambda k, p: pkcs12.serialize_key_and_certificates(
        b"mdm", k, _cert(p), None, ENCRYPT), True),
    "p12_without_password": (lambda k, p: pkcs12.serialize_key_and_certificates(
        b"mdm", k, _cert(p), None, PLAIN), False),
}
ENCRYPTED_FORMS = [name for name, (_, encrypted) in KEY_FORMS.items() if encrypted]


@pytest.mark.parametrize("form", list(KEY_FORMS))
def test_every_key_form_loads(mdm_pair, mdm_key, form):
    make, encrypted = KEY_FORMS[form]
    loaded = load_private_key(make(mdm_key, mdm_pair), PASSWORD if encrypted else None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    assert loaded.private_numbers() == mdm_key.private_numbers()


@pytest.mark.parametrize("form", [name for name in KEY_FORMS if name not in ENCRYPTED_FORMS])
def test_a_needless_password_is_ignored(mdm_pair, mdm_key, form):
    loaded = load_private_key(KEY_FORMS[form][0](mdm_key, mdm_pair), "typed anyway")
    assert loaded.private_numbers() == mdm_key.private_numbers()


@pytest.mark.parametrize("form", ENCRYPTED_FORMS)
@pytest.mark.parametrize("password", [None, ""])
def test_encrypted_key_without_password(mdm_pair, mdm_key, form, password):
    with pytest.raises(PasswordRequired, match="password"):
        load_private_key(KEY_FORMS[form][0](mdm_key, mdm_pair), password)


@pytest.mark.parametrize("form", ENCRYPTED_FORMS)
def test_encrypted_key_with_wrong_password(mdm_pair, mdm_key, form):
    with pytest.raises(WrongPassword) as caught:
        load_private_key(KEY_FORMS[form][0](mdm_key, mdm_pair), "Pässwörd with spaces")
    assert "Pässwörd" not in str(caught.value) and PASSWORD not in str(caught.value)


def test_der_ending_in_a_whitespace_byte_loads(mdm_key):
    # Regression: stripping "whitespace" from binary input cut the last byte of some DER files.
    for _ in range(3000):
        der = _der(mdm_key, ser.PrivateFormat.PKCS8, ENCRYPT)
        if der[-1:].isspace():
            break
    assert der[-1:].isspace()
    assert load_private_key(der, PASSWORD).private_numbers() == mdm_key.private_numbers()


def test_the_real_vector_key_loads(abm_vector):
    key = load_private_key(abm_vector.private_key_pem)
    assert decrypt_token(abm_vector.token, key).consumer_key.startswith("CK_")


@pytest.mark.parametrize("make, says", [
    (lambda p: b"", "empty"),
    (lambda p: b"\x00\x01garbage" * 50, "not a private key"),
    (lambda p: b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n", "damaged"),
    (lambda p: p.certificate_pem, "certificate, not a private key"),
    (lambda p: _cert(p).public_bytes(ser.Encoding.DER), "certificate, not a private key"),
    (lambda p: _cert(p).public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo),
     "public key"),
    (lambda p: pkcs12.serialize_key_and_certificates(b"c", None, _cert(p), None, PLAIN), "no private key"),
    (lambda p: build_token_file(p.certificate_pem, _creds()), "server token"),
    (lambda p: build_token_file(p.certificate_pem, _creds(), form="base64"), "server token"),
    (lambda p: build_token_file(p.certificate_pem, _creds(), form="der"), "server token"),
    (lambda p: p.private_key_pem * 2, "more than one private key"),
], ids=["empty", "random", "damaged_pem", "pem_certificate", "der_certificate", "public_key",
        "p12_certificate_only", "token_smime", "token_base64", "token_der", "two_keys"])
def test_not_a_private_key(mdm_pair, make, says):
    with pytest.raises(NotAPrivateKey, match=says):
        load_private_key(make(mdm_pair))


def _creds() -> dict:
    return token_credentials(datetime(2027, 1, 1, tzinfo=timezone.utc))


@pytest.mark.parametrize("make, kind", [
    (lambda: _pem(ec.generate_private_key(ec.SECP256R1()), ser.PrivateFormat.TraditionalOpenSSL), "EC"),
    (lambda: _pem(ec.generate_private_key(ec.SECP384R1()), ser.PrivateFormat.PKCS8, ENCRYPT), "EC"),
    (lambda: _der(ed25519.Ed25519PrivateKey.generate(), ser.PrivateFormat.PKCS8), "Ed25519"),
    (lambda: _pem(dsa.generate_private_key(1024), ser.PrivateFormat.PKCS8), "DSA"),
], ids=["ec_pem", "ec_encrypted", "ed25519_der", "dsa"])
def test_non_rsa_keys_are_unsupported(make, kind):
    with pytest.raises(UnsupportedKey, match=f"{kind} key.*RSA"):
        load_private_key(make(), PASSWORD)


def test_key_errors_are_value_errors():
    for error in (PasswordRequired, WrongPassword, NotAPrivateKey, UnsupportedKey):
        assert issubclass(error, PrivateKeyError) and issubclass(error, ValueError)


def test_private_key_to_pem_is_unencrypted_pkcs8(mdm_key):
    pem = private_key_to_pem(mdm_key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert load_private_key(pem).private_numbers() == mdm_key.private_numbers()


# --- generated key pairs ----------------------------------------------------------------------

def test_generated_pair_is_what_apple_expects(mdm_pair, mdm_key):
    cert = _cert(mdm_pair)
    assert isinstance(mdm_key, rsa.RSAPrivateKey) and mdm_key.key_size == 2048
    assert cert.public_key().public_numbers() == mdm_key.public_key().public_numbers()
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Test MDM"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Example School"
    usage = cert.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE)
    assert usage.critical and usage.value.digital_signature and usage.value.key_encipherment
    assert not usage.value.key_cert_sign
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=30)
    assert abs(cert.not_valid_before_utc - datetime.now(timezone.utc)) < timedelta(hours=1)
    assert cert.serial_number > 0 and cert.serial_number != _cert(generate_key_pair()).serial_number


def test_generated_pair_defaults_and_round_trip(mdm_pair, mdm_key):
    pair = generate_key_pair()
    cert = _cert(pair)
    assert cert.subject.rfc4514_string() == "CN=ADE Portal"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=365 * 3)
    key = load_private_key(pair.private_key_pem)
    assert decrypt_token(build_token_file(pair.certificate_pem, _creds()), key).consumer_key.startswith("CK_")


def test_key_pair_repr_hides_the_private_key(mdm_pair):
    body = mdm_pair.private_key_pem.split(b"\n")[1].decode()
    assert body not in repr(mdm_pair) and "PRIVATE" not in repr(mdm_pair)


@pytest.mark.parametrize("args", [{"common_name": ""}, {"days": 0}])
def test_generate_refuses_bad_arguments(args):
    with pytest.raises(ValueError):
        generate_key_pair(**args)


# --- certificate_info ---------------------------------------------------------------------------

def test_certificate_info_of_the_real_certificate(abm_vector):
    [info] = certificate_info(abm_vector.certificate_pem)
    der = x509.load_pem_x509_certificate(abm_vector.certificate_pem).public_bytes(ser.Encoding.DER)
    assert info.subject == info.issuer == "CN=apple-mdm-client-tests,OU=com.github.petarov,C=DE"
    assert info.serial == "70FEDDC7D5AFA393"
    assert info.not_before == datetime(2025, 1, 17, 10, 58, tzinfo=timezone.utc)
    assert info.not_after == datetime(2030, 1, 17, 10, 58, tzinfo=timezone.utc)
    assert info.sha256 == ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert info.der == der
    assert info.matches_key(load_private_key(abm_vector.private_key_pem))
    assert certificate_info(der) == [info]


@pytest.mark.parametrize("at, status", [
    (datetime(2025, 1, 17, 10, 57, 59, tzinfo=timezone.utc), "not_yet_valid"),
    (datetime(2026, 11, 26, tzinfo=timezone.utc), "valid"),
    (datetime(2030, 1, 17, 10, 58, tzinfo=timezone.utc), "valid"),
    (datetime(2030, 1, 17, 10, 58, 1, tzinfo=timezone.utc), "expired"),
])
def test_certificate_status(abm_vector, at, status):
    [info] = certificate_info(abm_vector.certificate_pem)
    assert info.status(at) == status
    assert info.is_valid(at) == (status == "valid")


def test_certificate_chain_keeps_file_order(mdm_pair, other_pair, mdm_key):
    infos = certificate_info(mdm_pair.certificate_pem + b"\n" + other_pair.certificate_pem)
    assert [info.subject for info in infos] == ["O=Example School,CN=Test MDM", "CN=Other MDM"]
    assert infos[0].matches_key(mdm_key) and not infos[1].matches_key(mdm_key)
    assert infos[0].status() == "valid"
    assert "der=" not in repr(infos[0])


def test_der_certificate_ending_in_a_whitespace_byte(mdm_key):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Trailing byte")])
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(mdm_key.public_key()).not_valid_before(start)
               .not_valid_after(start + timedelta(days=1)))
    for serial in range(1, 3000):  # the signature's last byte is 0x09-0x0d or 0x20 about 1 in 43
        der = builder.serial_number(serial).sign(mdm_key, hashes.SHA256()).public_bytes(ser.Encoding.DER)
        if der[-1:].isspace():
            break
    assert der[-1:].isspace()
    assert int(certificate_info(der)[0].serial, 16) == serial


@pytest.mark.parametrize("make, says", [
    (lambda p: b"", "empty"),
    (lambda p: b"\x30\x03\x02\x01\x00", "not an X.509 certificate"),
    (lambda p: p.private_key_pem, "private key"),
    (lambda p: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "damaged"),
    (lambda p: b"-----BEGIN CERTIFICATE-----\nno end line", "not an X.509 certificate"),
])
def test_certificate_info_refuses_non_certificates(mdm_pair, make, says):
    with pytest.raises(CertificateError, match=says):
        certificate_info(make(mdm_pair))


# --- PKCS#7 bundles (.p7b) ------------------------------------------------------------------------

def test_pkcs7_bundle_of_the_real_certificate(abm_vector, mdm_pair):
    real = x509.load_pem_x509_certificate(abm_vector.certificate_pem)
    mine = x509.load_pem_x509_certificate(mdm_pair.certificate_pem)
    bundle = pkcs7.serialize_certificates([real, mine], ser.Encoding.DER)
    assert is_pkcs7(bundle) and not is_pkcs7(real.public_bytes(ser.Encoding.DER))
    assert sorted(c.serial_number for c in pkcs7_certificates(bundle)) == sorted([real.serial_number,
                                                                                  mine.serial_number])
    pem = pkcs7.serialize_certificates([real], ser.Encoding.PEM)
    [block] = pem_blocks(pem.replace(b"PKCS7", b"PKCS #7 SIGNED DATA"))  # the label older tools write
    assert pem_pkcs7_certificates(block[1]) == [real]


def test_the_real_token_is_pkcs7_but_no_certificate_bundle(abm_vector):
    """An admin choosing the *_smime.p7m token (BER, indefinite length) where certificates go."""
    ber = unwrap_token_file(abm_vector.token)
    assert ber[:2] == b"\x30\x80" and is_pkcs7(ber)
    with pytest.raises(CertificateError, match="encrypted PKCS#7 message"):
        pkcs7_certificates(ber)


@pytest.mark.parametrize("data, says", [
    # `openssl crl2pkcs7 -nocrl -outform DER`: well formed, no certificates
    (bytes.fromhex("302306092a864886f70d010702a01630140201013100300b06092a864886f70d0107013100"),
     "holds no certificates"),
    (bytes.fromhex("302306092a864886f70d010702a016301402010131"), "damaged"),
    (bytes.fromhex("300b06092a864886f70d010702"), "holds no certificates"),  # a signedData without content
], ids=["empty", "cut_short", "content_type_only"])
def test_pkcs7_bundles_without_certificates_are_refused(data, says):
    assert is_pkcs7(data)
    with pytest.raises(CertificateError, match=says):
        pkcs7_certificates(data)
