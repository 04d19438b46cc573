"""Everything that speaks Apple: server tokens, key pairs and the DEP (device enrollment) client.

No Flask imports: usable and testable on its own. Names are imported lazily on first use, so
importing ``portal.apple`` stays cheap and one broken module does not hide the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "portal.apple.client": ("DEPClient", "DevicePage", "AssignResult"),
    "portal.apple.tokens": ("ServerToken", "decrypt_token", "read_recipient"),
    "portal.apple.keys": ("load_private_key", "generate_key_pair", "private_key_to_pem", "KeyPair"),
    "portal.apple.certs": ("certificate_info", "CertificateInfo"),
    "portal.apple.errors": (
        "AppleError", "TermsNotSigned", "AccessDenied", "TokenRejected", "SessionExpired",
        "CursorError", "CursorExpired", "CursorInvalid", "CursorRequired", "CursorExhausted",
        "NotFound", "ProfileInvalid", "Throttled", "TransientError", "ClockSkew", "BadRequest",
        "TokenFileError", "NotATokenFile", "WrongRecipient", "CorruptToken", "UnexpectedContent",
        "PrivateKeyError", "PasswordRequired", "WrongPassword", "NotAPrivateKey", "UnsupportedKey",
        "CertificateError",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """Import the public name from its module on first access (PEP 562)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'portal.apple' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
