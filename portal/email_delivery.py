"""Sending a notification as a plain-text e-mail through the SMTP server of Configuration › Apple.

The standard library does the work (smtplib, email). What the server answers decides whether a retry may
help: SMTP's 4xx replies are temporary by definition (RFC 5321 §4.2.1), as are a connection refused, reset
or timed out; a 5xx reply or a certificate that does not verify needs the admin.
"""
from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from .connection_errors import causes, connection_problem
from .email_settings import SmtpSettings, parse_address
from .notification_retries import DELIVERED, Outcome

TIMEOUT_S = 10  # per SMTP command: a hung server holds a worker for seconds, not for ever
SUBJECT_PREFIX = "[ADE portal]"
SUBJECT_MAX = 120  # characters: what a mail client's list shows is shorter still, and the start says what happened
PORT_HINT = "check the port (usually 587 with STARTTLS, 465 with SSL/TLS, 25 without encryption)"


def compose(settings: SmtpSettings, payload: dict) -> EmailMessage:
    """The e-mail for one event: its text first, then the fields scripts read from the webhook."""
    sender = parse_address(settings.sender)
    message = EmailMessage()
    message["From"] = sender.header()
    message["To"] = [parse_address(recipient).header() for recipient in settings.recipients]
    message["Subject"] = subject(payload)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.ascii_domain)
    details = [f"{label}: {payload[key]}" for key, label in (
        ("server", "Managed server"), ("status", "Token status"), ("token_expires_at", "Token expires"),
        ("days_left", "Days left"), ("time", "Sent")) if payload.get(key) not in (None, "")]
    body = payload.get("text", "") + ("\n\n" + "\n".join(details) if details else "")
    message.set_content(body + "\n\n-- \nSent by the ADE portal (Configuration › Apple › Notifications).\n")
    return message


def subject(payload: dict) -> str:
    """A subject that says what happened without opening the e-mail, on one line and short enough to read whole.

    An event the list below does not know takes its text, which may hold line breaks (a header cannot) and be long."""
    server, event = payload.get("server"), payload.get("event")
    if event == "token_status" and server:
        words = f"Token of {server}: {payload.get('status', 'status changed')}"
    elif event == "token_reminder" and server:
        days = payload.get("days_left")
        words = f"Token of {server} expires in {days} day{'s' if days != 1 else ''}"
    elif event == "test":
        words = "Test e-mail"
    else:
        words = str(payload.get("text") or "Notification")
    return one_line(f"{SUBJECT_PREFIX} {words}", SUBJECT_MAX)


def one_line(text: str, longest: int) -> str:
    """`text` on one line (line breaks, tabs and other control characters become a space, runs of spaces one) and
    at most `longest` characters, cut after a word with "…" when it is longer."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    if len(text) <= longest:
        return text
    cut = text[:longest - 1]
    if " " in cut[longest // 2:]:  # a word boundary not too far back
        cut = cut[:cut.rindex(" ")]
    return cut.rstrip(" ,;:.-") + "…"


def send_mail(settings: SmtpSettings, payload: dict) -> Outcome:
    """Send one event to every recipient; how it went, with why not in plain words."""
    host = settings.host
    try:
        sender, recipients = parse_address(settings.sender), [parse_address(r) for r in settings.recipients]
    except ValueError as exc:  # stored by other means than the settings form, which checks them
        return Outcome(f"{exc} Correct it in Configuration › Apple.")
    shown = {recipient.envelope: recipient.shown for recipient in recipients}
    try:
        with _connect(settings) as smtp:
            if settings.username:
                smtp.login(settings.username, settings.password)
            # The envelope is ASCII (an internationalised domain as IDNA), whatever the headers' names hold.
            refused = smtp.send_message(compose(settings, payload), from_addr=sender.envelope, to_addrs=list(shown))
    except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused
        return _refused(host, exc.recipients, shown)
    except smtplib.SMTPResponseException as exc:
        return _answer_problem(settings, exc)
    except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS, no AUTH: a setting to change, not a moment to wait
        return _unsupported_problem(host, exc)
    except (TimeoutError, smtplib.SMTPServerDisconnected) as exc:
        # smtplib turns a reply that never came into SMTPServerDisconnected, the timeout only in its context.
        if any(isinstance(cause, TimeoutError) for cause in causes(exc)):
            return Outcome(f"{host} did not answer within {TIMEOUT_S} s: check the server name and the port, and that "
                           "no firewall blocks this server from reaching it (a server waiting for SSL/TLS, usually on "
                           "port 465, while STARTTLS or None is chosen looks like this too).", retryable=True)
        # Closed mid-way: a server restarting, or the wrong encryption for the port.
        return Outcome(f"{host} closed the connection before the e-mail was sent: {PORT_HINT} with the encryption "
                       "chosen; the mail server may also be restarting.", retryable=True)
    except smtplib.SMTPException as exc:  # before OSError, its base: e.g. no login method both sides know
        return _smtp_problem(host, exc)
    except OSError as exc:  # the network and TLS: unknown name, refused, reset, certificate, handshake
        problem = connection_problem(exc, host, settings.port, PORT_HINT, "mail server")
        if problem:
            return Outcome(problem.words + ".", retryable=problem.retryable)
        return Outcome(f"{host} could not be reached: {(exc.strerror or 'the connection failed').rstrip('.')}.",
                       retryable=True)
    if refused:  # some accepted: delivered to them, never again; a retry only for those refused for now
        return _refused(host, refused, shown)
    return DELIVERED


def _answer_problem(settings: SmtpSettings, exc: smtplib.SMTPResponseException) -> Outcome:
    """A refusal by reply code: what was refused, and the server's own words (its code and text help its admin)."""
    host, reply = settings.host, _reply_text(exc.smtp_code, exc.smtp_error)
    temporary = 400 <= exc.smtp_code < 500
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        words = (f"{host} refused the user name or password ({reply}): check both, and that this account may send "
                 "e-mail over SMTP (some providers want an app password)")
    elif isinstance(exc, smtplib.SMTPSenderRefused):
        words = f"{host} refused the sender address {settings.sender} ({reply}): give an address this account may send as"
    elif isinstance(exc, smtplib.SMTPDataError):
        words = f"{host} refused the message ({reply})"
    elif isinstance(exc, smtplib.SMTPConnectError):
        words = f"{host} would not take the connection ({reply})"
    elif isinstance(exc, smtplib.SMTPHeloError):
        words = f"{host} refused the portal's greeting, EHLO/HELO ({reply})"
    else:
        words = f"{host} answered {reply}"
    return Outcome(words + ("" if words.endswith(".") else "."), retryable=temporary)


def _unsupported_problem(host: str, exc: smtplib.SMTPNotSupportedError) -> Outcome:
    if "STARTTLS" in str(exc):
        return Outcome(f"{host} does not offer STARTTLS on this port: choose SSL/TLS if the port is one that encrypts "
                       "from the start (usually 465), or check the port (usually 587 with STARTTLS).")
    if "AUTH" in str(exc):
        return Outcome(f"{host} does not offer sign-in (SMTP AUTH) on this connection: empty the user name if the "
                       "server needs none, or check the encryption and the port (many servers offer sign-in only "
                       "over an encrypted connection).")
    return Outcome(f"{host} does not support what the portal asked of it: check the encryption and user name settings.")


def _smtp_problem(host: str, exc: smtplib.SMTPException) -> Outcome:
    if "authentication method" in str(exc):
        return Outcome(f"{host} offers no sign-in method the portal knows (CRAM-MD5, PLAIN or LOGIN): ask its admin "
                       "which one it takes, or empty the user name if it needs none.")
    return Outcome(f"{host} broke off the exchange: the server did not follow the SMTP protocol as expected. Check "
                   "the server name and the port.")


def _reply_text(code: int, text) -> str:
    """A reply as the server gave it, "550 5.1.1 No such user", on one line and not too long."""
    text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    return f"{code} {' '.join(text.split())[:200]}".strip()


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    context = ssl.create_default_context()
    if settings.tls == "ssl":
        return smtplib.SMTP_SSL(settings.host, settings.port, timeout=TIMEOUT_S, context=context)
    smtp = smtplib.SMTP(settings.host, settings.port, timeout=TIMEOUT_S)
    if settings.tls == "starttls":
        try:
            smtp.starttls(context=context)
        except BaseException:
            smtp.close()
            raise
    return smtp


def _refused(host: str, refused: dict, shown: dict[str, str]) -> Outcome:
    """Recipients refused (`refused`: envelope address → (code, reply)), the others of `shown` accepted. Those refused
    with a temporary (4xx) reply are the only ones a retry goes to: the accepted ones have the e-mail already."""
    listed = "; ".join(f"{shown.get(address, address)} ({_reply_text(code, reply)[:80]})"
                       for address, (code, reply) in list(refused.items())[:5])
    listed += f" and {len(refused) - 5} more" if len(refused) > 5 else ""
    temporary = tuple(address for address, (code, _) in refused.items() if 400 <= code < 500)
    accepted = [text for address, text in shown.items() if address not in refused]
    lead = f"accepted the e-mail for {', '.join(accepted)} but refused" if accepted else "refused every recipient:"
    check = " Check these addresses." if len(temporary) < len(refused) else ""
    return Outcome(f"{host} {lead} {listed}.{check}", retryable=bool(temporary), partial=bool(accepted),
                   retry_to=temporary if temporary and (accepted or len(temporary) < len(refused)) else None)
