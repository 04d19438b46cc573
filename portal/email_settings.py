"""E-mail notifications' SMTP settings (Configuration › Apple): stored as settings, the password encrypted.

E-mail is on when an SMTP server is set. The password goes through portal.vault like every other secret
(rotate-keys re-encrypts it) and is never shown again: the form's empty password field keeps it. The
checks here give the field's message in words; None means the value is fine.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from email.headerregistry import Address

import idna

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
# envelope as is. A display name goes in front ("IT alerts <alerts@example.com>"); a domain may be internationalised
# (bücher.example), sent as IDNA (xn--bcher-kva.example), since not every server takes UTF-8 (SMTPUTF8).
_ATOM = r"[^@\s,;<>\"()\[\]\x00-\x1f\x7f"  # control characters too: a header cannot carry them
ADDRESS = re.compile(_ATOM + r"]+@" + _ATOM + r"]+\." + _ATOM + r".]+")
NAMED = re.compile(r'(?P<name>"(?:[^"\\]|\\.)*"|[^"<>]*?)\s*<(?P<address>[^<>]*)>')
MAX_NAME = 100
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
    """The addresses in `text`, each once (by its address, whatever its name), in order. They are separated by commas,
    semicolons or lines, and bare ones by spaces too; a name with a comma is quoted ("Ops, Paris" <ops@example.com>)."""
    seen: dict[str, str] = {}
    for chunk in _outside_quotes_split(text or ""):
        entries = [chunk.strip()] if "<" in chunk or '"' in chunk else chunk.split()
        for entry in filter(None, entries):
            named = NAMED.fullmatch(entry)
            seen.setdefault((named.group("address") if named else entry).strip().lower(), entry)
    return list(seen.values())


def _outside_quotes_split(text: str) -> list[str]:
    """`text` cut at commas, semicolons and line breaks that are neither in quotes nor in angle brackets."""
    chunks, current, quoted, angled, escaped = [], [], False, False, False
    for ch in text:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"' and not angled:
            quoted = not quoted
        elif ch in "<>" and not quoted:
            angled = ch == "<"
        elif ch in ",;\r\n" and not quoted and not angled:
            chunks.append("".join(current))
            current = []
            continue
        current.append(ch)
    return chunks + ["".join(current)]


@dataclass(frozen=True)
class EmailAddress:
    """An address as typed (`text`), its display name, and its parts as they go on the envelope."""

    text: str
    name: str
    local: str
    domain: str  # as typed: bücher.example
    ascii_domain: str  # as sent: xn--bcher-kva.example

    @property
    def envelope(self) -> str:
        """The address in MAIL FROM / RCPT TO: ASCII throughout."""
        return f"{self.local}@{self.ascii_domain}"

    @property
    def shown(self) -> str:
        """The address as the admin wrote it, without its name."""
        return f"{self.local}@{self.domain}"

    def header(self) -> Address:
        return Address(display_name=self.name, username=self.local, domain=self.ascii_domain)


def parse_address(text: str) -> EmailAddress:
    """`text` (alerts@example.com, or IT alerts <alerts@example.com>) as an address; ValueError in words if it is not
    one."""
    shown = "".join(ch for ch in text[:60] if ch.isprintable())
    not_one = f"{shown} is not an e-mail address: write it like alerts@example.com or IT alerts <alerts@example.com>."
    text = text.strip()
    named = NAMED.fullmatch(text)
    name, address = (named.group("name").strip(), named.group("address").strip()) if named else ("", text)
    if name.startswith('"'):
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    if len(text) > 254 + MAX_NAME or len(address) > 254 or "<" in address or ">" in address or "@" not in address:
        raise ValueError(not_one)
    if len(name) > MAX_NAME:
        raise ValueError(f"The name in front of {address[:60]} has at most {MAX_NAME} characters.")
    local, _, domain = address.rpartition("@")
    if not local.isascii():  # most servers refuse them (SMTPUTF8): say so here rather than at the first alert
        raise ValueError(f"{shown} holds non-ASCII characters before the @: give an ASCII user part (the domain may "
                         "have accents).")
    try:
        ascii_domain = domain if domain.isascii() else idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise ValueError(f"{shown} is not an e-mail address: its domain, {domain[:60]}, is not a valid "
                         "internationalised domain name.") from None
    if not ADDRESS.fullmatch(f"{local}@{ascii_domain}"):
        raise ValueError(not_one)
    return EmailAddress(text=text, name=name, local=local, domain=domain, ascii_domain=ascii_domain)


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
    try:
        parse_address(address)
    except ValueError as exc:
        return str(exc)
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
