"""Fixtures for the token, key and token-file tests: the real ABM vector and generated key pairs."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from portal.apple.keys import KeyPair, generate_key_pair
from portal.apple.tokenfile import token_credentials

# In a fresh clone shared/ sits beside the repository: <parent>/main/tests/apple -> <parent>/shared.
VECTOR_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "vectors" / "abm-token-2025"


@dataclass(frozen=True)
class Vector:
    """The real Apple Business Manager token of 2025-01-17, its certificate and private key."""

    token: bytes
    certificate_pem: bytes
    private_key_pem: bytes

    @property
    def private_key(self):
        return load_pem_private_key(self.private_key_pem, None)


@pytest.fixture(scope="session")
def abm_vector() -> Vector:
    """The real token vector; skipped when shared/vectors is not beside the repository."""
    if not (VECTOR_DIR / "server-token.p7m").is_file():
        pytest.skip(f"real ABM token vector not found at {VECTOR_DIR} (shared/ must sit beside the repo)")
    return Vector(token=(VECTOR_DIR / "server-token.p7m").read_bytes(),
                  certificate_pem=(VECTOR_DIR / "certificate.pem").read_bytes(),
                  private_key_pem=(VECTOR_DIR / "private-key.pem").read_bytes())


@pytest.fixture(scope="session")
def mdm_pair() -> KeyPair:
    """The portal's own key pair, as an admin would generate it."""
    return generate_key_pair("Test MDM", days=30, organization="Example School")


@pytest.fixture(scope="session")
def mdm_key(mdm_pair):
    """mdm_pair's private key object."""
    return load_pem_private_key(mdm_pair.private_key_pem, None)


@pytest.fixture(scope="session")
def other_pair() -> KeyPair:
    """Another MDM server's key pair: tokens for it must not decrypt with mdm_key."""
    return generate_key_pair("Other MDM")


@pytest.fixture
def token_creds() -> dict:
    """Reproducible credentials in Apple's shapes, expiring in March 2027."""
    return token_credentials(datetime(2027, 3, 1, 8, 30, 5, tzinfo=timezone.utc), random.Random(2025))

