"""E-mail notifications' SMTP settings (Configuration › Apple): stored as settings, the password encrypted.

E-mail is on when an SMTP server is set. The password goes through portal.vault like every other secret
(rotate-keys re-encrypts it) and is never shown again: the form's empty password field keeps it. The
checks here give the field's message in words; None means the value is fine.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .models.setting import get_setting, set_setting
from .vault import decrypt, encrypt

TLS_MODES = {"starttls": "STARTTLS", "ssl": "SSL/TLS", "none": "None (unencrypted)"}
DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}
PASSWORD_SETTING = "smtp_password"  # Fernet ciphertext, as text
# Its ciphertext must fit a setting (1,000 characters): 128 characters of up to 4 bytes each encrypt to about 770.
MAX_PASSWORD = 128
MAX_RECIPIENTS = 20
MAX_RECIPIENTS_TEXT = 1000  # Setting.value's length
# One "@", no spaces, commas, quotes or angle brackets, a dot in the domain: an address one can write on an
# envelope as is. Display names ("Ops <ops@example.com>") are left out: they would need quoting rules.
_ATOM = r"[^@\s,;<>\"()\[\]\x00-\x1f\x7f"  # control characters too: a header cannot carry them
ADDRESS = re.compile(_ATOM + r"]+@" + _ATOM + r"]+\." + _ATOM + r".]+")
HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how notification e-mails are sent."""

    host: str
    port: int
    tls: str  # a key of TLS_MODES
    username: str
    password: str
    sender: str
    recipients: tuple[str, ...]


def load_smtp() -> SmtpSettings | None:
    """The saved SMTP settings, or None when e-mail notifications are off (no server, or no one to write to)."""
    host = get_setting("smtp_host").strip()
    recipients = split_recipients(get_setting("smtp_recipients"))
    if not host or not recipients:
        return None
    tls = get_setting("smtp_tls") if get_setting("smtp_tls") in TLS_MODES else "starttls"
    port = get_setting("smtp_port")
    stored = get_setting(PASSWORD_SETTING)
    return SmtpSettings(host=host, port=int(port) if port.isdecimal() else DEFAULT_PORTS[tls], tls=tls,
                        username=get_setting("smtp_username"),
                        password=decrypt(stored.encode()).decode() if stored else "",
                        sender=get_setting("smtp_sender"), recipients=tuple(recipients))


def email_enabled() -> bool:
    """Whether notifications go out by e-mail (checked without decrypting the password)."""
    return bool(get_setting("smtp_host").strip() and split_recipients(get_setting("smtp_recipients")))


def has_password() -> bool:
    """Whether a password is saved (it is never shown)."""
    return bool(get_setting(PASSWORD_SETTING))


def password_kept_for(host: str, username: str) -> bool:
    """Whether the saved password may go with this server and user name: the ones it was given for. A password is
    never sent to another server (a host typed by mistake, or one that is not the organisation's)."""
    return (has_password() and host.strip().lower() == get_setting("smtp_host").strip().lower()
            and username == get_setting("smtp_username"))


def save_smtp(host: str, port: int, tls: str, username: str, password: str | None, sender: str,
              recipients: list[str]) -> None:
    """Store the SMTP settings (the caller commits). `password` None keeps the saved one; no user name drops it."""
    for key, value in (("smtp_host", host), ("smtp_port", str(port)), ("smtp_tls", tls),
                       ("smtp_username", username), ("smtp_sender", sender),
                       ("smtp_recipients", ", ".join(recipients))):
        set_setting(key, value)
    if not username:
        set_setting(PASSWORD_SETTING, "")
    elif password:
        set_setting(PASSWORD_SETTING, encrypt(password).decode("ascii"))


def split_recipients(text: str) -> list[str]:
    """The addresses in `text` (separated by commas, semicolons, spaces or lines), each once, in order."""
    seen: dict[str, None] = {}
    for part in re.split(r"[\s,;]+", text or ""):
        if part and part.lower() not in {s.lower() for s in seen}:
            seen[part] = None
    return list(seen)


def host_problem(host: str) -> str | None:
    """Why `host` cannot be an SMTP server's name or address."""
    if "://" in host or "/" in host or ":" in host.strip("[]") and not _is_ip(host.strip("[]")):
        return "Give the server's name only (smtp.example.com), without smtp:// or a port: the port has its own field."
    if _is_ip(host.strip("[]")):
        return None
    labels = host.rstrip(".").split(".")
    if len(host) > 253 or not all(HOST_LABEL.fullmatch(label) for label in labels):
        return "This is not a server name: give one like smtp.example.com (letters, digits, dots and hyphens)."
    return None


def address_problem(address: str) -> str | None:
    """Why `address` cannot be written on an envelope as is."""
    shown = "".join(ch for ch in address[:60] if ch.isprintable())
    if len(address) > 254 or not ADDRESS.fullmatch(address):
        return f"{shown} is not an e-mail address: write it like alerts@example.com."
    if not address.isascii():  # most servers refuse them (SMTPUTF8): say so here rather than at the first alert
        return f"{shown} holds non-ASCII characters: give an ASCII address (punycode for the domain, xn--…)."
    return None


def secret_text_problem(value: str, what: str, longest: int = 200) -> str | None:
    """A user name or password too long, or with a line break or control character, which SMTP cannot carry."""
    if len(value) > longest:
        return f"The {what} has at most {longest} characters."
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return f"The {what} cannot hold line breaks, tabs or other control characters."
    return None


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
