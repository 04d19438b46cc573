"""The MDM server's RSA key: load it in every form admins have, and generate a new key + certificate.

Loading tells the admin what went wrong: a password is needed, the password is wrong, the file
is not a private key (often the certificate or the token itself), or the key is not RSA.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from asn1crypto import keys as asn1_keys
from asn1crypto import pkcs12 as asn1_pkcs12
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from .certs import CertificateInfo, certificate_info, pem_blocks, without_bom  # noqa: F401  (re-exported)
from .errors import NotAPrivateKey, PasswordRequired, UnsupportedKey, WrongPassword
from .tokens import looks_like_token

RSAPrivateKey = rsa.RSAPrivateKey
KEY_LABELS = ("PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY",
              "DSA PRIVATE KEY")
TOKEN_INSTEAD = ("This file is the server token from Apple Business Manager, not the private key. "
                 "Upload the private key that was created together with the certificate.")
NON_RSA_KINDS = ((ec.EllipticCurvePrivateKey, "an EC"), (dsa.DSAPrivateKey, "a DSA"),
                 (ed25519.Ed25519PrivateKey, "an Ed25519"), (ed448.Ed448PrivateKey, "an Ed448"))
CERTIFICATE_INSTEAD = ("This file holds a certificate, not a private key. Upload the private key "
                       "that was created together with the certificate.")


@dataclass(frozen=True)
class KeyPair:
    """A new private key and its self-signed certificate, both PEM."""

    private_key_pem: bytes = field(repr=False)
    certificate_pem: bytes


def load_private_key(data: bytes, password: str | None = None) -> RSAPrivateKey:
    """Load an RSA private key from PEM (PKCS#1/PKCS#8, encrypted or not, bundles, any line ends, a byte
    order mark), DER or PKCS#12."""
    data = without_bom(data or b"")
    secret = password.encode("utf-8") if password else None
    if not data.strip():  # strip only to test: trailing DER bytes may look like whitespace
        raise NotAPrivateKey("The private key file is empty.")
    if looks_like_token(data):
        raise NotAPrivateKey(TOKEN_INSTEAD)
    if b"-----BEGIN" in data:
        key = _load_pem(data, secret)
    else:
        key = _load_binary(data, secret)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UnsupportedKey(f"This is {_key_kind(key)} key; Apple Business Manager needs an RSA key. "
                             "Generate an RSA key pair (2048 bits) instead.")
    return key


def private_key_to_pem(key) -> bytes:
    """The key as unencrypted PKCS#8 PEM (the portal encrypts it at rest itself)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def generate_key_pair(common_name: str = "ADE Portal", days: int = 365 * 3,
                      organization: str | None = None) -> KeyPair:
    """A new RSA 2048 key and self-signed certificate to upload to Apple Business Manager."""
    if not common_name or days < 1:
        raise ValueError("A key pair needs a common name and a validity of at least one day.")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    name = x509.Name(attributes)
    # Backdate a little so a clock that runs slightly behind still accepts the certificate.
    start = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(minutes=5)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                     content_commitment=False, data_encipherment=False,
                                     key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(private_key_pem=private_key_to_pem(key),
                   certificate_pem=certificate.public_bytes(serialization.Encoding.PEM))


def _load_pem(data: bytes, secret: bytes | None):
    """The one private key in a PEM file or bundle (certificates alongside are ignored)."""
    blocks = pem_blocks(data)
    keys = [block for label, block in blocks if label in KEY_LABELS]
    if len(keys) > 1:
        raise NotAPrivateKey("This file holds more than one private key; upload a file with just one.")
    if not keys:
        labels = [label for label, _ in blocks]
        if any("CERTIFICATE" in label for label in labels):
            raise NotAPrivateKey(CERTIFICATE_INSTEAD)
        if "PUBLIC KEY" in labels or "RSA PUBLIC KEY" in labels:
            raise NotAPrivateKey("This file holds a public key, not the private key.")
        if "OPENSSH PRIVATE KEY" in labels:
            raise NotAPrivateKey("This is an OpenSSH key; convert it to PEM (PKCS#8) before uploading.")
        raise NotAPrivateKey("This file does not contain a PEM private key.")
    block = keys[0]
    encrypted = block.startswith(b"-----BEGIN ENCRYPTED") or b"Proc-Type: 4,ENCRYPTED" in block
    return _decrypt(serialization.load_pem_private_key, block, secret, encrypted)


def _load_binary(data: bytes, secret: bytes | None):
    """A private key from DER (PKCS#1, PKCS#8, encrypted PKCS#8) or a PKCS#12 file."""
    if _is_pkcs12(data):
        return _load_pkcs12(data, secret)
    if _parses_as(asn1_keys.EncryptedPrivateKeyInfo, data):
        return _decrypt(serialization.load_der_private_key, data, secret, encrypted=True)
    try:
        return serialization.load_der_private_key(data, None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        pass
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        raise NotAPrivateKey("This file is not a private key (expected PEM, DER or a .p12/.pfx "
                             "file).") from None
    raise NotAPrivateKey(CERTIFICATE_INSTEAD)


def _decrypt(loader, data: bytes, secret: bytes | None, encrypted: bool):
    """Run a cryptography key loader, turning its errors into PrivateKeyError sentences."""
    if encrypted and secret is None:
        raise PasswordRequired("This private key is protected by a password; enter it to continue.")
    try:
        return loader(data, secret if encrypted else None)  # a needless password is ignored
    except UnsupportedAlgorithm:
        raise UnsupportedKey("This private key uses an algorithm or encryption that is not "
                             "supported; export it as an RSA key in PEM (PKCS#8).") from None
    except (ValueError, TypeError):
        if encrypted:
            raise WrongPassword("The password does not unlock this private key.") from None
        raise NotAPrivateKey("This private key is damaged and cannot be read.") from None


def _load_pkcs12(data: bytes, secret: bytes | None):
    """The private key in a PKCS#12 (.p12/.pfx) file."""
    # Files exported "without a password" use either no password or an empty one; a password
    # typed for such a file is needless, not wrong.
    attempts = ([secret] if secret is not None else []) + [None, b""]
    for attempt in attempts:
        try:
            key, _cert, _extra = pkcs12.load_key_and_certificates(data, attempt)
            break
        except ValueError:
            continue
        except UnsupportedAlgorithm:
            raise UnsupportedKey("This .p12 file uses encryption that is not supported; export it "
                                 "again with AES encryption or as PEM.") from None
    else:
        if secret is None:
            raise PasswordRequired("This .p12/.pfx file is protected by a password; enter it to "
                                   "continue.")
        raise WrongPassword("The password does not unlock this .p12/.pfx file.")
    if key is None:
        raise NotAPrivateKey("This .p12/.pfx file holds no private key, only certificates.")
    return key


def _is_pkcs12(data: bytes) -> bool:
    """True for a PKCS#12 file: version 3 and data (or signed) content, so PKCS#8 cannot pass."""
    if not _parses_as(asn1_pkcs12.Pfx, data):
        return False
    pfx = asn1_pkcs12.Pfx.load(data)
    return pfx["version"].native in (3, "v3") and \
        pfx["auth_safe"]["content_type"].native in ("data", "signed_data")


def _parses_as(spec, data: bytes) -> bool:
    """True when ``data`` is exactly one well-formed ``spec`` structure."""
    try:
        parsed = spec.load(data, strict=True)
        parsed.native  # force a full parse
        return True
    except (ValueError, TypeError, KeyError):
        return False


def _key_kind(key) -> str:
    """'an EC' / 'a DSA' / ... for messages about non-RSA keys."""
    return next((kind for cls, kind in NON_RSA_KINDS if isinstance(key, cls)), "a non-RSA")
