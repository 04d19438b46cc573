"""A real SMTP server for tests (aiosmtpd on a free local port), with STARTTLS, implicit TLS and sign-in when asked,
and a throwaway certificate authority whose certificate the portal trusts through SSL_CERT_FILE."""
from __future__ import annotations

import socket
import ssl
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
import ipaddress

USER, PASSWORD = "portal", "s3cr3t pa55"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for localhost / 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    now = datetime.now(timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test mail CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
          .not_valid_after(now + timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=2))
              .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                          x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                             critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class Mailbox:
    """What the SMTP server received; `answers` are replies to the next DATA commands instead of "250 OK",
    `sender_answer` the reply to MAIL FROM when set, `recipient_answers` the replies to RCPT TO of some addresses
    (each address's list is used up one reply per attempt; an empty list accepts it again)."""

    def __init__(self):
        self.envelopes = []
        self.answers: list[str] = []
        self.logins: list[tuple[str, str]] = []
        self.sender_answer: str | None = None
        self.recipient_answers: dict[str, list[str]] = {}

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802 - aiosmtpd's name
        if self.sender_answer:
            return self.sender_answer
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd's name
        if self.recipient_answers.get(address):
            return self.recipient_answers[address].pop(0)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        if self.answers:
            return self.answers.pop(0)
        self.envelopes.append(envelope)
        return "250 OK"

    def messages(self):
        return [message_from_bytes(e.content, policy=policy.default) for e in self.envelopes]

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
            # handled=False: aiosmtpd answers 535 itself (handled=True would leave the client waiting for a reply)
            success = (auth_data.login.decode(), auth_data.password.decode()) == (USER, PASSWORD)
            return AuthResult(success=success, handled=success)
        return AuthResult(success=False, handled=False)


def start_server(mailbox: Mailbox, mode: str, certificates: tuple[Path, Path, Path] | None = None,
                 hostname: str = "127.0.0.1") -> Controller:
    """An SMTP server: mode "none" (plain, no sign-in), "starttls" or "ssl" (both asking to sign in), listening on
    `hostname` (127.0.0.2 is a loopback address its certificate does not name)."""
    options: dict = {}
    if mode != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(certificates[1]), str(certificates[2]))
        options = {"authenticator": mailbox.authenticate, "auth_required": True}
        if mode == "starttls":
            options |= {"tls_context": context, "require_starttls": True}
        else:
            # aiosmtpd only counts STARTTLS as TLS when it decides to offer AUTH: this connection is TLS throughout.
            options |= {"ssl_context": context, "auth_require_tls": False}
    controller = Controller(mailbox, hostname=hostname, port=free_port(), **options)
    controller.start()
    return controller


@pytest.fixture
def mail():
    """A plain SMTP server (no encryption, no sign-in), as a relay on a trusted network; imported by the test
    modules that use it."""
    mailbox = Mailbox()
    controller = start_server(mailbox, "none")
    mailbox.port = controller.port
    yield mailbox
    controller.stop()
