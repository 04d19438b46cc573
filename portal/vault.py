"""Encryption of secrets at rest (server tokens, private keys) with rotatable Fernet keys.

New values are encrypted with the first configured key; any configured key decrypts, so an
operator rotates by putting a new key first and running `flask rotate-keys`.
"""
from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


class VaultError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


def _fernet(keys: list[str] | None = None) -> MultiFernet:
    keys = keys if keys is not None else current_app.config["ENCRYPTION_KEYS"]
    return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])


def encrypt(plaintext: bytes | str, keys: list[str] | None = None) -> bytes:
    """Encrypt a secret with the first key."""
    if isinstance(plaintext, str):
        plaintext = plaintext.encode()
    return _fernet(keys).encrypt(plaintext)


def decrypt(ciphertext: bytes, keys: list[str] | None = None) -> bytes:
    """Decrypt a secret with whichever configured key made it."""
    try:
        return _fernet(keys).decrypt(bytes(ciphertext))
    except InvalidToken:
        raise VaultError("a stored secret cannot be decrypted with the configured encryption keys") from None


def rotate(ciphertext: bytes, keys: list[str] | None = None) -> bytes:
    """Re-encrypt a secret with the first key."""
    try:
        return _fernet(keys).rotate(bytes(ciphertext))
    except InvalidToken:
        raise VaultError("a stored secret cannot be decrypted with the configured encryption keys") from None
