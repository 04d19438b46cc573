"""Template filters for trusted certificates, used by the configuration pages and the server page."""
from __future__ import annotations

from . import bp
from .certificates import certificate_status, fingerprint, worst_status


@bp.app_template_filter("cert_status")
def cert_status(certificate):
    """The Status (label, badge) of a TrustedCertificate today."""
    return certificate_status(certificate.not_before, certificate.not_after)


@bp.app_template_filter("worst_cert_status")
def worst_cert_status(certificates):
    """The worst Status among certificates, or None."""
    return worst_status(certificates)


@bp.app_template_filter("fingerprint")
def fingerprint_filter(sha256_hex: str) -> str:
    """A stored hex SHA-256 as AB:CD:… ."""
    return fingerprint(sha256_hex)
