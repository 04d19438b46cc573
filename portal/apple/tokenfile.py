"""Build server token files byte-for-byte the way Apple Business Manager does (reference §1.2-§1.6).

Used by the bundled simulator to issue tokens and by the tests. asn1crypto only writes DER
(definite lengths), so the indefinite-length BER layers Apple uses are written here by hand
around DER pieces made with asn1crypto.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from datetime import datetime, timezone

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding

from .tokens import FIELDS, format_expiry

# cipher argument -> (asn1crypto algorithm name, cryptography cipher class, key bytes)
CIPHERS = {
    "aes128": ("aes128_cbc", algorithms.AES, 16),
    "aes256": ("aes256_cbc", algorithms.AES, 32),
    "3des": ("tripledes_3key", TripleDES, 24),
}
FORMS = ("smime", "base64", "der")
PLAINTEXTS = ("markers", "folded")
MIME_HEADERS = (  # §1.2, exactly as Apple writes them
    'Content-Type: application/pkcs7-mime; name="smime.p7m"; smime-type=enveloped-data',
    "Content-Transfer-Encoding: base64",
    'Content-Disposition: attachment; filename="smime.p7m"',
    "Content-Description: S/MIME Encrypted Message",
)
PLAINTEXT_HEADER = b"Content-Type: text/plain;charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
FOLD_AT = 78  # Apple's 2014 article folds the JSON at 78 characters
BASE64_LINE = 76

# BER building blocks (X.690 §8.1.3.6): 0x80 = indefinite length, closed by two zero octets.
INDEFINITE_SEQUENCE = b"\x30\x80"
INDEFINITE_CONTEXT_0 = b"\xa0\x80"  # [0], constructed
END_OF_CONTENTS = b"\x00\x00"


def build_token_file(certificate_pem: bytes, credentials: dict, *, cipher: str = "aes128",
                     form: str = "smime", newline: str = "\n", plaintext: str = "markers") -> bytes:
    """Encrypt ``credentials`` for the certificate into a server token file like Apple's."""
    if cipher not in CIPHERS or form not in FORMS or plaintext not in PLAINTEXTS \
            or newline not in ("\n", "\r\n"):
        raise ValueError("build_token_file: unknown cipher, form, plaintext or newline option.")
    ber = encrypt_plaintext(certificate_pem, token_plaintext(credentials, plaintext), cipher)
    if form == "der":
        return ber
    body = _wrap_base64(ber, newline)
    if form == "base64":
        return body
    return (newline.join(MIME_HEADERS) + newline + newline).encode("ascii") + body


def token_plaintext(credentials: dict, plaintext: str = "markers") -> bytes:
    """The decrypted token text (§1.4): CRLF MIME header, then the JSON with or without markers."""
    values = {name: credentials[name] for name in FIELDS}  # KeyError names a missing field
    if isinstance(values["access_token_expiry"], datetime):
        values["access_token_expiry"] = format_expiry(values["access_token_expiry"])
    text = json.dumps(values, separators=(",", ":"))
    if plaintext == "markers":
        return PLAINTEXT_HEADER + f"-----BEGIN MESSAGE-----\n{text}\n-----END MESSAGE-----\n".encode()
    folded = "".join(text[i:i + FOLD_AT] + "\n" for i in range(0, len(text), FOLD_AT))
    return PLAINTEXT_HEADER + folded.encode()


def token_credentials(expiry: datetime, rng=None) -> dict:
    """Fresh credentials in Apple's shapes (§1.5); ``rng`` (random.Random) makes them reproducible."""
    if expiry.tzinfo is None:
        raise ValueError("token_credentials needs a timezone-aware expiry.")
    expiry = expiry.astimezone(timezone.utc).replace(microsecond=0)

    def hex_digits(count: int) -> str:
        return f"{rng.getrandbits(4 * count):0{count}x}" if rng else secrets.token_hex(count // 2)

    def below(limit: int) -> int:
        return rng.randrange(limit) if rng else secrets.randbelow(limit)

    # Apple's tokens last exactly one year and the access token ends in the issue time in ms.
    try:
        issued = expiry.replace(year=expiry.year - 1)
    except ValueError:  # 29 February
        issued = expiry.replace(year=expiry.year - 1, day=28)
    issued_ms = int(issued.timestamp()) * 1000 + below(1000)
    return {
        "consumer_key": "CK_" + hex_digits(96),
        "consumer_secret": "CS_" + hex_digits(40),
        "access_token": f"AT_O{10**9 + below(9 * 10**9)}O{hex_digits(40)}O{issued_ms:013d}",
        "access_secret": "AS_" + hex_digits(40),
        "access_token_expiry": format_expiry(expiry),
    }


def encrypt_plaintext(certificate_pem: bytes, plaintext: bytes, cipher: str = "aes128") -> bytes:
    """Any plaintext as Apple's BER CMS EnvelopedData for the certificate (e.g. malformed tokens)."""
    if cipher not in CIPHERS:
        raise ValueError(f"Unknown cipher {cipher!r}; use one of {', '.join(CIPHERS)}.")
    algorithm_name, cipher_class, key_length = CIPHERS[cipher]
    key = os.urandom(key_length)
    iv = os.urandom(cipher_class.block_size // 8)
    padder = sym_padding.PKCS7(cipher_class.block_size).padder()
    encryptor = Cipher(cipher_class(key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padder.update(plaintext) + padder.finalize()) + encryptor.finalize()
    content_algorithm = cms.EncryptionAlgorithm({"algorithm": algorithm_name,
                                                 "parameters": core.OctetString(iv)})
    # Layout of Apple's tokens (openssl asn1parse of the real 2025 token):
    # SEQUENCE(indef) { OID envelopedData, [0](indef) { SEQUENCE(indef) { INTEGER 0,
    #   SET recipientInfos, SEQUENCE(indef) { OID data, AlgorithmIdentifier,
    #   [0](indef) { OCTET STRING ciphertext } } } } }
    return b"".join([
        INDEFINITE_SEQUENCE, core.ObjectIdentifier("1.2.840.113549.1.7.3").dump(),
        INDEFINITE_CONTEXT_0,
        INDEFINITE_SEQUENCE, core.Integer(0).dump(), _recipient_infos(certificate_pem, key).dump(),
        INDEFINITE_SEQUENCE, core.ObjectIdentifier("1.2.840.113549.1.7.1").dump(),
        content_algorithm.dump(),
        INDEFINITE_CONTEXT_0, core.OctetString(ciphertext).dump(), END_OF_CONTENTS,
        END_OF_CONTENTS,  # EncryptedContentInfo
        END_OF_CONTENTS,  # EnvelopedData
        END_OF_CONTENTS,  # [0] content
        END_OF_CONTENTS,  # ContentInfo
    ])


def _recipient_infos(certificate_pem: bytes, content_key: bytes) -> cms.RecipientInfos:
    """One KeyTransRecipientInfo: the certificate's issuer + serial, RSA PKCS#1 v1.5 wrapped key."""
    if certificate_pem.lstrip().startswith(b"-----"):
        cert = x509.load_pem_x509_certificate(certificate_pem)
    else:
        cert = x509.load_der_x509_certificate(certificate_pem)
    public_key = cert.public_key()
    if not isinstance(public_key, RSAPublicKey):
        raise ValueError("Server tokens can only be encrypted for a certificate with an RSA key.")
    # The certificate's own issuer and serial objects, so they are copied exactly as encoded there.
    tbs = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))["tbs_certificate"]
    ktri = cms.KeyTransRecipientInfo({
        "version": "v0",
        "rid": cms.RecipientIdentifier(name="issuer_and_serial_number", value=cms.IssuerAndSerialNumber(
            {"issuer": tbs["issuer"], "serial_number": tbs["serial_number"]})),
        "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15", "parameters": core.Null()},
        "encrypted_key": public_key.encrypt(content_key, padding.PKCS1v15()),
    })
    return cms.RecipientInfos([cms.RecipientInfo(name="ktri", value=ktri)])


def _wrap_base64(data: bytes, newline: str) -> bytes:
    """Standard base64 in 76-character lines, each ended by ``newline`` (as Apple's file)."""
    text = base64.b64encode(data).decode("ascii")
    return "".join(text[i:i + BASE64_LINE] + newline
                   for i in range(0, len(text), BASE64_LINE)).encode("ascii")
