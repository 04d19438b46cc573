"""Trusted SSL certificates of a configuration: reading uploads and pasted PEM, and their status.

An MDM configuration lists the certificates a device must trust to reach the MDM server (Apple's
``anchor_certs``). Admins upload PEM or DER files or PKCS#7 bundles (.p7b, as Windows and many CAs export
a chain), or paste a PEM chain; anything that is not a
certificate (garbage, a private key, a CSR) is refused with a message naming the file, so the
configuration is never saved with half of what the admin meant.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_der_private_key

from ..apple.certs import (PKCS7_LABELS, CertificateInfo, describe, is_pkcs7, pem_blocks, pem_pkcs7_certificates,
                           pkcs7_certificates, without_bom)
from ..apple.errors import CertificateError

# Certificates that expire within this window get a warning badge: devices enrolling after the
# date would no longer trust the MDM server.
EXPIRING_SOON = timedelta(days=30)

# Status -> (label, badge class, rank); a higher rank is worse (the list shows the worst one).
STATUSES = {
    "valid": ("Valid", "ok", 0),
    "expiring": ("Expires soon", "warning", 1),
    "not_yet_valid": ("Not yet valid", "error", 2),
    "expired": ("Expired", "error", 3),
}
_CERT_LABELS = ("CERTIFICATE", "X509 CERTIFICATE")


class UnreadableCertificate(ValueError):
    """The input (named by ``source``) does not hold usable certificates."""

    def __init__(self, source: str, reason: str):
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def read_certificates(data: bytes, source: str) -> list[CertificateInfo]:
    """Every certificate in one upload or paste (PEM, PEM chain, DER or PKCS#7 bundle), in file order."""
    data = without_bom(data or b"")
    if not data.strip():
        raise UnreadableCertificate(source, "the file is empty.")
    if b"-----BEGIN" in data:
        return _read_pem(data, source)
    try:
        return [describe(x509.load_der_x509_certificate(data))]
    except ValueError:
        pass
    if is_pkcs7(data):
        return _read_bundle(pkcs7_certificates, data, source)
    if _is_der_private_key(data):
        raise UnreadableCertificate(source, "this is a private key, not a certificate. Keep private keys secret; "
                                            "upload the server's certificate (or its CA certificate) instead.")
    raise UnreadableCertificate(source, "this is not an X.509 certificate (PEM or DER).")


def _read_pem(data: bytes, source: str) -> list[CertificateInfo]:
    blocks = pem_blocks(data)
    labels = [label for label, _ in blocks]
    if any("PRIVATE KEY" in label for label in labels):
        # Even next to certificates: a key pasted into a trust list is a mistake worth stopping.
        raise UnreadableCertificate(source, "it contains a private key. Upload or paste only certificates, "
                                            "and keep the private key secret.")
    if not any(label in _CERT_LABELS or label in PKCS7_LABELS for label in labels):
        if "TRUSTED CERTIFICATE" in labels:  # OpenSSL's own format, with trust settings appended
            raise UnreadableCertificate(source, "it is an OpenSSL TRUSTED CERTIFICATE. Convert it first: "
                                                "openssl x509 -in FILE -out certificate.pem")
        if labels:
            raise UnreadableCertificate(source, f'it holds a PEM "{labels[0]}" block, not a certificate.')
        raise UnreadableCertificate(source, "no complete PEM certificate block (-----BEGIN CERTIFICATE----- … "
                                            "-----END CERTIFICATE-----) was found.")
    found, single = [], 0  # in file order: a PEM file may mix certificates and PKCS#7 bundles
    for label, block in blocks:
        if label in PKCS7_LABELS:
            found += _read_bundle(pem_pkcs7_certificates, block, source)
        elif label in _CERT_LABELS:
            try:
                found.append(describe(x509.load_pem_x509_certificate(block)))
            except ValueError:
                raise UnreadableCertificate(source, "a certificate in it is damaged and cannot be read.") from None
            single += 1
    begun = sum(data.count(b"-----BEGIN %s-----" % label.encode()) for label in _CERT_LABELS)
    if single != begun:  # a block cut short is not matched by pem_blocks: say so
        raise UnreadableCertificate(source, f"{begun - single} of its {begun} certificates are incomplete "
                                            "(no matching -----END CERTIFICATE----- line).")
    return found


def _read_bundle(reader, data: bytes, source: str) -> list[CertificateInfo]:
    """The certificates of a PKCS#7 bundle read by ``reader``; its CertificateError named after ``source``."""
    try:
        return [describe(cert) for cert in reader(data)]
    except CertificateError as exc:
        raise UnreadableCertificate(source, str(exc)) from None


def _is_der_private_key(data: bytes) -> bool:
    try:
        load_der_private_key(data, password=None)
    except TypeError:
        return True  # an encrypted key: still a key
    except Exception:  # noqa: BLE001 - unreadable (ValueError, unsupported algorithm): not a key
        return False
    return True


@dataclass(frozen=True)
class Status:
    """How a certificate stands today, for a badge."""

    key: str
    label: str
    badge: str
    rank: int


def certificate_status(not_before: datetime, not_after: datetime, at: datetime | None = None) -> Status:
    """valid, expiring (within EXPIRING_SOON), not_yet_valid or expired at ``at`` (default: now)."""
    at = at or datetime.now(timezone.utc)
    if at < not_before:
        key = "not_yet_valid"
    elif at > not_after:
        key = "expired"
    elif not_after - at <= EXPIRING_SOON:
        key = "expiring"
    else:
        key = "valid"
    label, badge, rank = STATUSES[key]
    return Status(key, label, badge, rank)


def worst_status(certificates) -> Status | None:
    """The worst status among certificates (rows with not_before/not_after), None when there are none."""
    statuses = [certificate_status(c.not_before, c.not_after) for c in certificates]
    return max(statuses, key=lambda s: s.rank) if statuses else None


def fingerprint(sha256_hex: str) -> str:
    """A stored hex SHA-256 as the colon-separated uppercase form admins compare with openssl."""
    return ":".join(sha256_hex[i:i + 2] for i in range(0, len(sha256_hex), 2)).upper()
