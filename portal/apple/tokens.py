"""Decrypt Apple server token files (``*_smime.p7m``) with the MDM server's private key alone.

A token is a MIME wrapper around base64 of a BER (indefinite-length) CMS EnvelopedData: one
KeyTransRecipientInfo (RSA PKCS#1 v1.5) and AES-128-CBC content (reference §1.2-§1.5).
cryptography's own PKCS#7 decryption rejects BER and wants the certificate, so asn1crypto walks
the structure and cryptography does the RSA and symmetric decryption.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .certs import readable_name
from .errors import CorruptToken, NotATokenFile, UnexpectedContent, WrongRecipient
from .token_unwrap import ENVELOPED_DATA_OID, looks_like_token, unwrap_token_file  # noqa: F401 (re-exported)

FIELDS = ("consumer_key", "consumer_secret", "access_token", "access_secret", "access_token_expiry")
PREFIXES = {"consumer_key": "CK_", "consumer_secret": "CS_", "access_token": "AT_", "access_secret": "AS_"}
# asn1crypto algorithm name -> (cryptography cipher class, key length in bytes)
CIPHERS = {
    "aes128_cbc": (algorithms.AES, 16),
    "aes192_cbc": (algorithms.AES, 24),
    "aes256_cbc": (algorithms.AES, 32),
    "tripledes_3key": (TripleDES, 24),
}
_HEADER_LINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*:")
_MARKERS = ("-----BEGIN MESSAGE-----", "-----END MESSAGE-----")


@dataclass(frozen=True)
class ServerToken:
    """The OAuth 1.0a credentials of an MDM server, as decrypted from Apple's token file."""

    consumer_key: str
    consumer_secret: str = field(repr=False)
    access_token: str = field(repr=False)
    access_secret: str = field(repr=False)
    access_token_expiry: datetime  # tz-aware UTC

    def is_expired(self, now: datetime | None = None) -> bool:
        """True once ``now`` (default: the current time) has reached the token's expiry."""
        return (now or datetime.now(timezone.utc)) >= self.access_token_expiry

    def to_json(self) -> str:
        """The token JSON exactly as Apple writes it (compact, Apple's key order)."""
        values = {name: getattr(self, name) for name in FIELDS[:4]}
        values["access_token_expiry"] = format_expiry(self.access_token_expiry)
        return json.dumps(values, separators=(",", ":"))

    @classmethod
    def from_json(cls, s: str) -> "ServerToken":
        """A ServerToken from token JSON; raises UnexpectedContent when fields are missing or wrong."""
        try:
            values = json.loads(s)
        except ValueError:
            raise UnexpectedContent("The server token does not contain valid JSON.") from None
        return cls.from_dict(values)

    @classmethod
    def from_dict(cls, values: object) -> "ServerToken":
        """A ServerToken from the decoded token JSON object, checking Apple's prefixes."""
        if not isinstance(values, dict):
            raise UnexpectedContent("The server token's JSON is not an object of credentials.")
        missing = [name for name in FIELDS if not isinstance(values.get(name), str) or not values[name]]
        if missing:
            raise UnexpectedContent("The server token is missing " + ", ".join(missing) + ".")
        for name, prefix in PREFIXES.items():
            if not values[name].startswith(prefix):  # never quote the value: it may be a secret
                raise UnexpectedContent(f"The server token's {name} does not start with {prefix}.")
        return cls(**{name: values[name] for name in FIELDS[:4]},
                   access_token_expiry=parse_expiry(values["access_token_expiry"]))


def format_expiry(when: datetime) -> str:
    """RFC 3339 UTC with seconds precision and a Z, as Apple writes access_token_expiry."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_expiry(text: str) -> datetime:
    """access_token_expiry (RFC 3339, normally ``...Z``) as a tz-aware UTC datetime."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise UnexpectedContent("The server token's access_token_expiry is not a UTC date and time.")
    return when.astimezone(timezone.utc)


def parse_token_plaintext(text: bytes | str) -> ServerToken:
    """Parse decrypted token text: optional MIME headers, optional BEGIN/END MESSAGE, JSON (folded or not)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    lines = text.splitlines()
    if lines and _HEADER_LINE.match(lines[0]):  # drop the MIME header block up to the blank line
        blank = next((i for i, line in enumerate(lines) if not line.strip()), len(lines))
        lines = lines[blank + 1:]
    # As nanodep and commandment do: drop the markers and join the rest without separators.
    body = "".join(line.strip() for line in lines if line.strip() not in _MARKERS)
    if not body:
        raise UnexpectedContent("The server token is empty after decryption.")
    return ServerToken.from_json(body)


def decrypt_token(data: bytes, private_key: RSAPrivateKey) -> ServerToken:
    """Decrypt a token file (MIME, bare base64, PEM or DER/BER: see token_unwrap) with the private key and parse it."""
    return parse_token_plaintext(decrypt_token_plaintext(data, private_key))


def read_recipient(data: bytes) -> tuple[str, int]:
    """The (issuer DN, serial number) of the certificate the token was encrypted for, without decrypting."""
    return _recipient(_first_ktri(_enveloped_data(unwrap_token_file(data))))


def decrypt_token_plaintext(data: bytes, private_key: RSAPrivateKey) -> bytes:
    """Decrypt a token file to its raw plaintext (MIME header, markers and JSON), unparsed."""
    envelope = _enveloped_data(unwrap_token_file(data))
    ktri = _first_ktri(envelope)
    issuer, serial = _recipient(ktri)
    content_info = envelope["encrypted_content_info"]
    algorithm = content_info["content_encryption_algorithm"]
    cipher_class, key_length = _cipher_for(algorithm)
    if ktri["key_encryption_algorithm"]["algorithm"].native != "rsaes_pkcs1v15":
        raise UnexpectedContent("The server token uses a key transport Apple does not use "
                                "(only RSA PKCS#1 v1.5 is supported).")
    encrypted_key = ktri["encrypted_key"].native
    if len(encrypted_key) != (private_key.key_size + 7) // 8:
        raise WrongRecipient(issuer, serial)
    try:
        key = private_key.decrypt(encrypted_key, padding.PKCS1v15())
    except ValueError:
        raise WrongRecipient(issuer, serial) from None
    # OpenSSL 3.2+ answers a wrong key with a random "implicitly rejected" key instead of an
    # error, so a wrong length, bad padding or non-text plaintext all mean: not our key.
    if len(key) != key_length:
        raise WrongRecipient(issuer, serial)
    plaintext = _decrypt_content(cipher_class(key), algorithm, content_info["encrypted_content"].native)
    if plaintext is None:
        raise WrongRecipient(issuer, serial)
    return plaintext


def _enveloped_data(der: bytes) -> cms.EnvelopedData:
    """Parse CMS bytes (BER accepted) and return the EnvelopedData, fully parsed."""
    try:
        content_info = cms.ContentInfo.load(der)
        content_type = content_info["content_type"].native
        if content_type == "enveloped_data":
            envelope = content_info["content"]
            envelope.native  # parse everything now, so truncation surfaces here
            return envelope
    except (ValueError, TypeError, KeyError):
        if ENVELOPED_DATA_OID in der[:20]:
            raise CorruptToken("The server token is damaged or incomplete; download it again "
                               "from Apple Business Manager.") from None
        raise NotATokenFile(_describe_der(der)) from None
    raise NotATokenFile(f"This file is a PKCS#7/CMS \"{content_type}\" message, not an encrypted "
                        "Apple server token.")


def _first_ktri(envelope: cms.EnvelopedData) -> cms.KeyTransRecipientInfo:
    """The key-transport recipient; Apple always writes exactly one."""
    for recipient in envelope["recipient_infos"]:
        if recipient.name == "ktri" and recipient.chosen["rid"].name == "issuer_and_serial_number":
            return recipient.chosen
    raise UnexpectedContent("The server token is not addressed to a certificate by issuer and serial "
                            "number, as Apple's tokens are.")


def _recipient(ktri: cms.KeyTransRecipientInfo) -> tuple[str, int]:
    """Issuer DN (RFC 4514) and serial of the certificate a recipient info names."""
    issuer_and_serial = ktri["rid"].chosen
    # Read the serial as unsigned: Apple has written serials with the high bit set and no 00 pad.
    serial = int.from_bytes(issuer_and_serial["serial_number"].contents, "big")
    return _issuer_text(issuer_and_serial["issuer"]), serial


def _issuer_text(name) -> str:
    """An asn1crypto Name as RFC 4514 text (cryptography's spelling), or a readable fallback."""
    try:
        rdns = [x509.RelativeDistinguishedName(
                    [x509.NameAttribute(x509.ObjectIdentifier(ava["type"].dotted), ava["value"].native)
                     for ava in rdn]) for rdn in name.chosen]
        return readable_name(x509.Name(rdns))
    except (ValueError, TypeError):
        return name.human_friendly


def _cipher_for(algorithm) -> tuple[type, int]:
    """The cryptography cipher class and key length for the content-encryption algorithm."""
    name = algorithm["algorithm"].native
    if name not in CIPHERS:
        raise UnexpectedContent(f"The server token is encrypted with {name}, which this portal does "
                                "not support (Apple uses AES-128-CBC).")
    return CIPHERS[name]


def _decrypt_content(cipher_algorithm, algorithm, ciphertext: bytes | None) -> bytes | None:
    """CBC-decrypt and unpad the content; None when the result cannot be a token's text."""
    block = cipher_algorithm.block_size // 8
    iv = algorithm.encryption_iv
    if not ciphertext or len(ciphertext) % block or not isinstance(iv, bytes) or len(iv) != block:
        raise CorruptToken("The server token's encrypted content is damaged; download it again.")
    decryptor = Cipher(cipher_algorithm, modes.CBC(iv)).decryptor()
    unpadder = sym_padding.PKCS7(cipher_algorithm.block_size).unpadder()
    try:
        plaintext = unpadder.update(decryptor.update(ciphertext) + decryptor.finalize())
        plaintext += unpadder.finalize()
        plaintext.decode("utf-8")
    except ValueError:  # bad padding or bytes that are not text: the content key was wrong
        return None
    return plaintext


def _describe_der(der: bytes) -> str:
    """Say what a DER file holds instead of a token."""
    try:
        x509.load_der_x509_certificate(der)
    except ValueError:
        return "This file is not an Apple server token."
    return ("This file is a certificate, not a server token. Upload the *_smime.p7m token "
            "file downloaded from Apple Business Manager.")
