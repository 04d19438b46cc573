"""X.509 certificates: PEM block splitting, PKCS#7 bundles, readable names, and certificate_info for the admin pages."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import NameOID

from .errors import CertificateError, format_serial

# Liberal on purpose: any line ends (or none, as when a web page pasted the block onto one line), and labels
# such as "PKCS #7 SIGNED DATA".
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----(.*?)-----END \1-----", re.DOTALL)
_LINE_END = re.compile(rb"\r\n|\r|\n")
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
# PEM labels of a PKCS#7 bundle: openssl writes PKCS7 (crl2pkcs7, pkcs7) or CMS; older tools spell out "PKCS #7".
PKCS7_LABELS = ("PKCS7", "CMS", "PKCS #7 SIGNED DATA")
# A DER ContentInfo opens with its content type, the OID 1.2.840.113549.1.7.x (x = 2 signedData, 3 envelopedData).
_PKCS7_OID_PREFIX = bytes.fromhex("06092a864886f70d0107")
_SIGNED_DATA, _ENVELOPED_DATA = 2, 3
# Spell out emailAddress: cryptography would print its bare OID (1.2.840.113549.1.9.1=...).
_NAME_OVERRIDES = {NameOID.EMAIL_ADDRESS: "emailAddress"}


def without_bom(data: bytes) -> bytes:
    """An uploaded file's bytes without a UTF-8 byte order mark, and UTF-16 text (Windows editors'
    "Unicode") as UTF-8; anything else, DER included (it starts with 0x30), unchanged."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):]
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16").encode("utf-8")
        except UnicodeDecodeError:
            return data
    return data


def pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """Every PEM block in ``data`` as (label, block bytes including its BEGIN/END lines), rewritten the way
    cryptography reads them: LF line ends, no spaces around lines, base64 in 64 columns. So a block saved
    with CR line ends, trailing spaces or pasted onto one line reads as the original."""
    return [(m.group(1).decode("ascii"), _canonical_block(m.group(1), m.group(2)))
            for m in _PEM_BLOCK.finditer(data)]


def _canonical_block(label: bytes, body: bytes) -> bytes:
    """One PEM block rebuilt from its label and body; RFC 1421 headers (the Proc-Type and DEK-Info of an
    encrypted PKCS#1 key) are kept on their lines, followed by the blank line they need."""
    lines = [line.strip() for line in _LINE_END.split(body) if line.strip()]
    headers = [line for line in lines if b":" in line]
    encoded = b"".join(b"".join(line.split()) for line in lines if b":" not in line)
    wrapped = b"\n".join(encoded[i:i + 64] for i in range(0, len(encoded), 64))
    head = b"\n".join(headers) + b"\n\n" if headers else b""
    return b"-----BEGIN %s-----\n%s%s\n-----END %s-----\n" % (label, head, wrapped, label)


def _pkcs7_content_type(der: bytes) -> int | None:
    """x of the PKCS#7 content type 1.2.840.113549.1.7.x when ``der`` starts like a ContentInfo, else None.
    The OID follows the outer SEQUENCE's tag and length: it starts at byte 2 to 6 (2 for BER indefinite length)."""
    if der[:1] != b"\x30":
        return None
    last_arc = der.find(_PKCS7_OID_PREFIX, 2, 6 + len(_PKCS7_OID_PREFIX)) + len(_PKCS7_OID_PREFIX)
    if last_arc == len(_PKCS7_OID_PREFIX) - 1 or last_arc >= len(der):  # not found, or the file ends there
        return None
    return der[last_arc]


def is_pkcs7(der: bytes) -> bool:
    """True when ``der`` looks like a PKCS#7 / CMS structure (a .p7b bundle, a signed or encrypted message)."""
    return _pkcs7_content_type(der) is not None


def pkcs7_certificates(der: bytes) -> list[x509.Certificate]:
    """The certificates of a PKCS#7 bundle (a .p7b/.p7c "certs-only" SignedData, DER), in bundle order.
    CertificateError says why there are none: an empty bundle, a damaged one, or an encrypted message."""
    if _pkcs7_content_type(der) == _ENVELOPED_DATA:
        raise CertificateError("this is an encrypted PKCS#7 message (such as an Apple server token), "
                               "not a certificate bundle.")
    try:
        certificates = pkcs7.load_der_pkcs7_certificates(der)
    except ValueError as exc:
        # cryptography has no exception class of its own for a well-formed bundle without certificates.
        if "no certificate" in str(exc).lower():
            certificates = []
        else:
            raise CertificateError("the PKCS#7 bundle (.p7b) is damaged and cannot be read.") from None
    if not certificates:
        raise CertificateError("the PKCS#7 bundle (.p7b) holds no certificates.")
    return certificates


def pem_pkcs7_certificates(block: bytes) -> list[x509.Certificate]:
    """The certificates of one PEM PKCS#7 block as ``pem_blocks`` returns it (any label of PKCS7_LABELS)."""
    lines = block.splitlines()[1:-1]  # the BEGIN and END lines
    try:
        der = base64.b64decode(b"".join(line for line in lines if b":" not in line), validate=True)
    except binascii.Error:
        raise CertificateError("the PKCS#7 bundle is damaged and cannot be read (its base64 text is broken).") from None
    return pkcs7_certificates(der)


def readable_name(name: x509.Name) -> str:
    """An X.509 name as an RFC 4514 string, e.g. ``CN=apple-mdm-client-tests,OU=...,C=DE``."""
    return name.rfc4514_string(_NAME_OVERRIDES)


@dataclass(frozen=True)
class CertificateInfo:
    """What an admin needs to see about one certificate."""

    subject: str
    issuer: str
    serial: str                  # uppercase hex, e.g. 70FEDDC7D5AFA393
    not_before: datetime         # tz-aware UTC
    not_after: datetime          # tz-aware UTC
    sha256: str                  # colon-separated uppercase hex fingerprint of the DER
    der: bytes = field(repr=False)

    def status(self, at: datetime | None = None) -> str:
        """"valid", "expired" or "not_yet_valid" at ``at`` (default: now)."""
        at = at or datetime.now(timezone.utc)
        if at < self.not_before:
            return "not_yet_valid"
        return "expired" if at > self.not_after else "valid"

    def is_valid(self, at: datetime | None = None) -> bool:
        """True when the certificate is within its validity period at ``at`` (default: now)."""
        return self.status(at) == "valid"

    def matches_key(self, private_key) -> bool:
        """True when ``private_key`` is the private half of this certificate's public key."""
        public = x509.load_der_x509_certificate(self.der).public_key()
        return public.public_numbers() == private_key.public_key().public_numbers()

    @property
    def pem(self) -> bytes:
        """The certificate in PEM form."""
        return x509.load_der_x509_certificate(self.der).public_bytes(Encoding.PEM)


def describe(cert: x509.Certificate) -> CertificateInfo:
    """CertificateInfo for a cryptography certificate object."""
    return CertificateInfo(
        subject=readable_name(cert.subject),
        issuer=readable_name(cert.issuer),
        serial=format_serial(cert.serial_number),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        der=cert.public_bytes(Encoding.DER),
    )


def certificate_info(cert_pem_or_der: bytes) -> list[CertificateInfo]:
    """Parse one PEM/DER certificate or a PEM chain into CertificateInfo items (file order)."""
    data = without_bom(cert_pem_or_der or b"")
    if not data.strip():  # strip only to test: trailing DER bytes may look like whitespace
        raise CertificateError("The certificate file is empty.")
    if b"-----BEGIN" not in data:
        try:
            return [describe(x509.load_der_x509_certificate(data))]
        except ValueError:
            raise CertificateError("This file is not an X.509 certificate (PEM or DER).") from None
    blocks = pem_blocks(data)
    certs = [block for label, block in blocks if label in ("CERTIFICATE", "X509 CERTIFICATE")]
    if not certs:
        raise CertificateError(_not_a_certificate(label for label, _ in blocks))
    try:
        return [describe(x509.load_pem_x509_certificate(block)) for block in certs]
    except ValueError:
        raise CertificateError("The certificate is damaged and cannot be read.") from None


def _not_a_certificate(labels) -> str:
    """Say what the PEM file holds instead of a certificate."""
    labels = list(labels)
    if any("PRIVATE KEY" in label for label in labels):
        return ("This file holds a private key, not a certificate. Keep the private key secret "
                "and upload the certificate instead.")
    if labels:
        return f"This file holds a PEM \"{labels[0]}\" block, not a certificate."
    return "This file is not an X.509 certificate (no complete PEM certificate block found)."
