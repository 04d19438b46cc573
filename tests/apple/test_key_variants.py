"""Private keys and certificates as admins end up with them: PKCS#1 or PKCS#8, PEM or DER, re-saved by an
editor (byte order mark, other line ends, trailing spaces), pasted from a web page onto one line, or a PEM
file holding the key and its certificate together. Each must load as the same key or certificate."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization as ser

from portal.apple.certs import certificate_info
from portal.apple.errors import CertificateError, NotAPrivateKey, PasswordRequired
from portal.apple.keys import load_private_key
from portal.configurations.certificates import UnreadableCertificate, read_certificates

BOM = b"\xef\xbb\xbf"


def _pkcs1(key) -> bytes:
    return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption())


def _der(key, fmt) -> bytes:
    return key.private_bytes(ser.Encoding.DER, fmt, ser.NoEncryption())


EDITS = {  # what an editor, a paste or a conversion does to a PEM file
    "as_is": lambda pem: pem,
    "bom": lambda pem: BOM + pem,
    "crlf": lambda pem: pem.replace(b"\n", b"\r\n"),
    "cr": lambda pem: pem.replace(b"\n", b"\r"),
    "bom_crlf": lambda pem: BOM + pem.replace(b"\n", b"\r\n"),
    "utf16": lambda pem: pem.decode("ascii").encode("utf-16"),
    "trailing_spaces": lambda pem: pem.replace(b"\n", b"  \n"),
    "indented": lambda pem: b"\n".join(b"    " + line for line in pem.split(b"\n")),
    "blank_lines_around": lambda pem: b"\n\n" + pem + b"\n\n",
    "one_line": lambda pem: b" ".join(pem.split(b"\n")),
    "no_final_newline": lambda pem: pem.rstrip(),
}


@pytest.mark.parametrize("edit", list(EDITS))
@pytest.mark.parametrize("form", ["pkcs1", "pkcs8", "key_then_certificate", "certificate_then_key"])
def test_pem_keys_load_however_they_were_saved(mdm_pair, mdm_key, form, edit):
    pem = {"pkcs1": _pkcs1(mdm_key), "pkcs8": mdm_pair.private_key_pem,
           "key_then_certificate": _pkcs1(mdm_key) + mdm_pair.certificate_pem,
           "certificate_then_key": mdm_pair.certificate_pem + mdm_pair.private_key_pem}[form]
    key = load_private_key(EDITS[edit](pem))
    assert key.private_numbers() == mdm_key.private_numbers()


@pytest.mark.parametrize("fmt", [ser.PrivateFormat.TraditionalOpenSSL, ser.PrivateFormat.PKCS8])
def test_der_keys_load(mdm_key, fmt):
    assert load_private_key(_der(mdm_key, fmt)).private_numbers() == mdm_key.private_numbers()


@pytest.mark.parametrize("edit", ["bom_crlf", "cr", "trailing_spaces"])
@pytest.mark.parametrize("fmt", [ser.PrivateFormat.TraditionalOpenSSL, ser.PrivateFormat.PKCS8])
def test_encrypted_keys_saved_otherwise_still_ask_for_their_password_then_load(mdm_key, fmt, edit):
    pem = EDITS[edit](mdm_key.private_bytes(ser.Encoding.PEM, fmt, ser.BestAvailableEncryption(b"pass word")))
    with pytest.raises(PasswordRequired, match="protected by a password"):
        load_private_key(pem)
    assert load_private_key(pem, "pass word").private_numbers() == mdm_key.private_numbers()


@pytest.mark.parametrize("data, says", [
    (BOM, "empty"),
    ("hello".encode("utf-16"), "not a private key"),
    (BOM + b"-----BEGIN CERTIFICATE-----\r\nAAAA\r\n-----END CERTIFICATE-----\r\n", "certificate, not a private key"),
], ids=["bom_only", "utf16_text", "bom_certificate"])
def test_files_that_are_not_keys_keep_their_messages(data, says):
    with pytest.raises(NotAPrivateKey, match=says):
        load_private_key(data)


@pytest.mark.parametrize("edit", list(EDITS))
def test_certificates_load_however_they_were_saved(mdm_pair, other_pair, edit):
    chain = EDITS[edit](mdm_pair.certificate_pem + other_pair.certificate_pem)
    expected = certificate_info(mdm_pair.certificate_pem + other_pair.certificate_pem)
    assert certificate_info(chain) == expected
    assert read_certificates(chain, "chain.pem") == expected


def test_certificate_variants_that_are_not_certificates_keep_their_messages(mdm_pair):
    with pytest.raises(CertificateError, match="empty"):
        certificate_info(BOM + b"\r\n")
    with pytest.raises(UnreadableCertificate, match="contains a private key"):
        read_certificates(EDITS["utf16"](mdm_pair.private_key_pem), "key.pem")
    with pytest.raises(UnreadableCertificate, match="incomplete"):
        read_certificates(EDITS["cr"](mdm_pair.certificate_pem + b"-----BEGIN CERTIFICATE-----\rMIIB\r"), "x.pem")
