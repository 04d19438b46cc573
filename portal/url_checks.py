"""What both URL fields (a configuration's MDM server URL, a profile's configuration web URL) refuse
besides their own rules: characters a URL cannot hold as typed, and port 0.

Apple stores the URL as given and the device requests it as is: a raw `<` or `"` would reach the
MDM server differently from what the admin sees, or not at all.
"""
from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

UNSAFE = set('<>"{}|\\^`')


def url_text_problem(url: str) -> str | None:
    """Characters that must be percent-encoded in a URL, or None."""
    bad = sorted({ch for ch in url if ch in UNSAFE or ord(ch) < 32 or ord(ch) == 127})
    if not bad:
        return None
    shown = " ".join(ch if ch.isprintable() else f"U+{ord(ch):04X}" for ch in bad)
    return f"A URL cannot hold these characters as typed: {shown}. Encode them (for example %3C for <) or remove them."


def port_problem(parts: SplitResult) -> str | None:
    """Port 0, which urlsplit accepts but no server listens on; None otherwise."""
    if parts.port == 0:
        return "Port 0 is not a port: remove it or give the server's port (1 to 65535)."
    return None


def canonical_url(url: str) -> str:
    """The URL with its scheme and host in lower case (they ignore case: "https://MDM.Example.com/enroll" is the
    same server as "https://mdm.example.com/enroll"), the rest as typed. Anything urlsplit cannot read is returned
    as it is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    head = f"{parts.scheme}://{parts.netloc}" if parts.scheme else ""
    if not head or url[:len(head)].lower() != head.lower():  # (urlsplit lower-cases the scheme already)
        return url
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{url[len(head):]}"
