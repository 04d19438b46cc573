"""Why a notification was not delivered, in words an IT admin acts on: what failed and what to check, never a Python
exception's name. Each failure comes from a real peer: a closed port, a server that closes the connection, a TLS
server whose certificate is not trusted or names another host, a plain server spoken to with TLS, a name under the
.invalid top-level domain (which never resolves), and a real SMTP server (aiosmtpd) that refuses."""
from __future__ import annotations

import re
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from portal import email_delivery
from portal.email_delivery import send_mail
from portal.email_settings import SmtpSettings
from portal.notifications import post
from tests.smtp_helpers import PASSWORD, USER, Mailbox, free_port, make_certificates, start_server
from tests.smtp_helpers import mail  # noqa: F401 - the fixture
from tests.test_notifications import SECRET_PATH, Webhook

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
EXCEPTION_NAME = re.compile(r"\b[A-Z]\w*(Error|Exception|Refused|Disconnected|Timeout)\b")
PAYLOAD = {"event": "test", "text": "Test notification"}


class Closer:
    """A TCP server that reads what it is sent, then closes the connection without a word (after `silent_s`)."""

    def __init__(self, silent_s: float = 0.5):
        self.silent_s = silent_s
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(self.silent_s)
                try:
                    connection.recv(1024)
                except OSError:
                    pass

    def close(self):
        self.socket.close()


class TlsWebhook:
    """An HTTPS webhook answering 200, with the test CA's certificate for localhost / 127.0.0.1."""

    def __init__(self, certificates, host: str = "127.0.0.1"):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(certificates[1]), str(certificates[2]))
        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def certificates(tmp_path):
    return make_certificates(tmp_path)


@pytest.fixture
def trusted(certificates, monkeypatch):
    """The test CA trusted by requests (REQUESTS_CA_BUNDLE) and by ssl's default context (SSL_CERT_FILE)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificates[0]))
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates[0]))
    return certificates


def _plain_words(problem: str) -> str:
    assert problem and not EXCEPTION_NAME.search(problem), problem
    assert "s3cr3t" not in problem  # the webhook URL's path is never shown
    return problem


# The webhook


def test_a_webhook_on_a_closed_port_says_the_port_was_refused(app):
    port = free_port()
    outcome = post(f"http://127.0.0.1:{port}{SECRET_PATH}", PAYLOAD)
    assert _plain_words(outcome.problem) == (
        f"127.0.0.1 refused the connection on port {port}: check the port in the webhook URL (https:// needs a port "
        "that speaks HTTPS, usually 443; http:// one that speaks plain HTTP), or whether the receiving service runs.")
    assert outcome.retryable


def test_a_webhook_whose_name_does_not_resolve_says_dns_does_not_know_it(app):
    outcome = post(f"https://hooks.nowhere.invalid{SECRET_PATH}", PAYLOAD)
    assert _plain_words(outcome.problem).startswith(
        "hooks.nowhere.invalid: no such host name was found (DNS does not know it): check the spelling of the name")
    assert outcome.retryable  # a DNS change on its way may pass


def test_a_webhook_that_closes_the_connection_says_so(app):
    closer = Closer()
    try:
        outcome = post(f"http://127.0.0.1:{closer.port}{SECRET_PATH}", PAYLOAD)
    finally:
        closer.close()
    assert _plain_words(outcome.problem).startswith("127.0.0.1 closed the connection without answering: check the port")
    assert outcome.retryable


def test_a_webhook_with_a_certificate_no_one_trusts_is_not_retried(app, certificates):
    hook = TlsWebhook(certificates)  # its CA is not among those requests trusts
    try:
        outcome = post(f"https://localhost:{hook.port}{SECRET_PATH}", PAYLOAD)
    finally:
        hook.close()
    assert _plain_words(outcome.problem).startswith(
        "localhost's TLS certificate is not trusted (it is self-signed or signed by an authority this server does not "
        "know): have it replaced")
    assert not outcome.retryable


def test_a_webhook_whose_certificate_names_another_host_says_so(app, trusted):
    good, hook = TlsWebhook(trusted), TlsWebhook(trusted, host="127.0.0.2")  # it names 127.0.0.1 and localhost
    try:
        assert post(f"https://localhost:{good.port}{SECRET_PATH}", PAYLOAD).problem is None  # trusted otherwise
        outcome = post(f"https://127.0.0.2:{hook.port}{SECRET_PATH}", PAYLOAD)
    finally:
        good.close()
        hook.close()
    assert _plain_words(outcome.problem).startswith("127.0.0.2's TLS certificate is issued for another name")
    assert not outcome.retryable


def test_https_to_a_plain_http_webhook_is_a_tls_handshake_failure(app):
    hook = Webhook()
    port = hook.server.server_port
    outcome = post(f"https://127.0.0.1:{port}{SECRET_PATH}", PAYLOAD)
    assert _plain_words(outcome.problem).startswith(f"127.0.0.1: the TLS handshake on port {port} failed (")
    assert "the port may not speak the encryption chosen. Check the port in the webhook URL" in outcome.problem
    assert not outcome.retryable and hook.received == []


# E-mail


def _smtp(port: int, host: str = "127.0.0.1", tls: str = "none", username: str = "", password: str = "",
          sender: str = "ade@example.com", recipients=("it@example.com",)) -> SmtpSettings:
    return SmtpSettings(host=host, port=port, tls=tls, username=username, password=password, sender=sender,
                        recipients=tuple(recipients))


def test_a_mail_server_whose_name_does_not_resolve_says_dns_does_not_know_it(app):
    outcome = send_mail(_smtp(587, host="smtp.nowhere.invalid"), PAYLOAD)
    assert _plain_words(outcome.problem).startswith("smtp.nowhere.invalid: no such host name was found")


def test_a_mail_server_that_closes_the_connection_says_so(app):
    closer = Closer()
    try:
        outcome = send_mail(_smtp(closer.port), PAYLOAD)
    finally:
        closer.close()
    assert _plain_words(outcome.problem) == (
        "127.0.0.1 closed the connection before the e-mail was sent: check the port (usually 587 with STARTTLS, 465 "
        "with SSL/TLS, 25 without encryption) with the encryption chosen; the mail server may also be restarting.")
    assert outcome.retryable


def test_ssl_tls_to_a_plain_mail_server_is_a_tls_handshake_failure(app, mail):
    outcome = send_mail(_smtp(mail.port, tls="ssl"), PAYLOAD)
    assert _plain_words(outcome.problem).startswith(f"127.0.0.1: the TLS handshake on port {mail.port} failed (")
    assert not outcome.retryable and mail.envelopes == []


def test_a_mail_server_that_never_speaks_says_it_did_not_answer(app, monkeypatch):
    monkeypatch.setattr(email_delivery, "TIMEOUT_S", 1)  # the 10 s of production, without the wait
    silent = Closer(silent_s=3)  # as a server waiting for a TLS handshake on a port spoken to without TLS
    try:
        outcome = send_mail(_smtp(silent.port), PAYLOAD)
    finally:
        silent.close()
    assert _plain_words(outcome.problem).startswith("127.0.0.1 did not answer within 1 s: check the server name and "
                                                    "the port")
    assert "a server waiting for SSL/TLS, usually on port 465" in outcome.problem and outcome.retryable


def test_a_mail_server_certificate_for_another_name_says_so(app, trusted):
    controller = start_server(Mailbox(), "starttls", trusted, hostname="127.0.0.2")
    try:
        outcome = send_mail(_smtp(controller.port, host="127.0.0.2", tls="starttls", username=USER,
                                  password=PASSWORD), PAYLOAD)
    finally:
        controller.stop()
    assert _plain_words(outcome.problem).startswith("127.0.0.2's TLS certificate is issued for another name")
    assert not outcome.retryable


def test_a_wrong_password_is_named_with_the_servers_reply(app, trusted):
    mailbox = Mailbox()
    controller = start_server(mailbox, "starttls", trusted)
    try:
        outcome = send_mail(_smtp(controller.port, host="localhost", tls="starttls", username=USER,
                                  password="not it"), PAYLOAD)
    finally:
        controller.stop()
    assert _plain_words(outcome.problem).startswith("localhost refused the user name or password (535 ")
    assert "check both, and that this account may send e-mail over SMTP" in outcome.problem
    assert not outcome.retryable and mailbox.envelopes == []


def test_a_server_that_offers_no_sign_in_says_so(app, mail):
    outcome = send_mail(_smtp(mail.port, username=USER, password=PASSWORD), PAYLOAD)
    assert _plain_words(outcome.problem).startswith("127.0.0.1 does not offer sign-in (SMTP AUTH) on this connection: "
                                                    "empty the user name")
    assert not outcome.retryable


def test_a_refused_sender_is_named_with_the_servers_reply(app, mail):
    mail.sender_answer = "553 5.7.1 Sender address rejected: not owned by user"
    outcome = send_mail(_smtp(mail.port), PAYLOAD)
    assert _plain_words(outcome.problem) == (
        "127.0.0.1 refused the sender address ade@example.com (553 5.7.1 Sender address rejected: not owned by "
        "user): give an address this account may send as.")
    assert not outcome.retryable
    mail.sender_answer = "451 4.3.0 Try again later"
    assert send_mail(_smtp(mail.port), PAYLOAD).retryable


def test_every_recipient_refused_is_named_with_the_servers_reply(app, mail):
    mail.recipient_answers = {"it@example.com": ["550 5.1.1 No such user"]}
    outcome = send_mail(_smtp(mail.port), PAYLOAD)
    assert _plain_words(outcome.problem) == ("127.0.0.1 refused every recipient: it@example.com (550 5.1.1 No such "
                                             "user). Check these addresses.")
    assert not outcome.retryable


def test_a_refused_message_is_named_with_the_servers_reply(app, mail):
    mail.answers = ["554 5.7.1 Rejected by policy"]
    outcome = send_mail(_smtp(mail.port), PAYLOAD)
    assert _plain_words(outcome.problem) == "127.0.0.1 refused the message (554 5.7.1 Rejected by policy)."
    assert not outcome.retryable


def test_the_untrusted_certificate_remedy_is_in_us_english():
    """The remedy says "organization", as the rest of the portal (Apple and BMC write US English)."""
    import ssl

    from portal.connection_errors import _certificate_words

    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_code, error.verify_message = 19, "self-signed certificate in certificate chain"
    words = _certificate_words(error, "smtp.example.com")
    assert "add the organization's authority" in words and "organisation" not in words
