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

from .email_settings import SmtpSettings
from .notification_retries import DELIVERED, Outcome

TIMEOUT_S = 10  # per SMTP command: a hung server holds a worker for seconds, not for ever
SUBJECT_PREFIX = "[ADE portal]"


def compose(settings: SmtpSettings, payload: dict) -> EmailMessage:
    """The e-mail for one event: its text first, then the fields scripts read from the webhook."""
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Subject"] = subject(payload)
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=settings.sender.rpartition("@")[2])
    details = [f"{label}: {payload[key]}" for key, label in (
        ("server", "Managed server"), ("status", "Token status"), ("token_expires_at", "Token expires"),
        ("days_left", "Days left"), ("time", "Sent")) if payload.get(key) not in (None, "")]
    body = payload.get("text", "") + ("\n\n" + "\n".join(details) if details else "")
    message.set_content(body + "\n\n-- \nSent by the ADE portal (Configuration › Apple › Notifications).\n")
    return message


def subject(payload: dict) -> str:
    """A subject that says what happened without opening the e-mail."""
    server, event = payload.get("server"), payload.get("event")
    if event == "token_status" and server:
        return f"{SUBJECT_PREFIX} Token of {server}: {payload.get('status', 'status changed')}"
    if event == "token_reminder" and server:
        days = payload.get("days_left")
        return f"{SUBJECT_PREFIX} Token of {server} expires in {days} day{'s' if days != 1 else ''}"
    if event == "test":
        return f"{SUBJECT_PREFIX} Test e-mail"
    return f"{SUBJECT_PREFIX} {payload.get('text', 'Notification')[:120]}"


def send_mail(settings: SmtpSettings, payload: dict) -> Outcome:
    """Send one event to every recipient; how it went, with why not in plain words."""
    host = settings.host
    try:
        with _connect(settings) as smtp:
            if settings.username:
                smtp.login(settings.username, settings.password)
            refused = smtp.send_message(compose(settings, payload))
    except smtplib.SMTPRecipientsRefused as exc:  # every recipient refused
        return _refused(host, exc.recipients)
    except smtplib.SMTPResponseException as exc:
        reply = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return Outcome(f"{host} answered {exc.smtp_code} {reply.strip()[:200]}.", retryable=400 <= exc.smtp_code < 500)
    except smtplib.SMTPNotSupportedError as exc:  # no STARTTLS, no AUTH: a setting to change, not a moment to wait
        return Outcome(f"{host}: {str(exc).rstrip('.')}. Check the encryption and user name settings.")
    except ssl.SSLCertVerificationError as exc:  # before OSError: a certificate to fix, not a network hiccup
        return Outcome(f"{host}'s certificate could not be verified ({exc.verify_message}).")
    except ssl.SSLError as exc:
        return Outcome(f"{host} could not set up encryption ({exc.reason or type(exc).__name__}): check the "
                       "encryption setting and the port.")
    except TimeoutError:
        return Outcome(f"{host} did not answer within {TIMEOUT_S} s.", retryable=True)
    except smtplib.SMTPServerDisconnected as exc:  # closed mid-way: a server restarting
        return Outcome(f"{host} closed the connection ({exc or type(exc).__name__}).", retryable=True)
    except smtplib.SMTPException as exc:  # before OSError, its base: e.g. no login method both sides know
        return Outcome(f"{host} refused the e-mail ({exc or type(exc).__name__}).")
    except ConnectionRefusedError:  # nothing listens there: most often a wrong port
        return Outcome(f"{host} refused the connection on port {settings.port}: check the port (usually 587 with "
                       "STARTTLS, 465 with SSL/TLS, 25 without encryption), or whether the mail server runs.",
                       retryable=True)
    except OSError as exc:  # reset, unknown name
        return Outcome(f"{host} could not be reached ({type(exc).__name__}).", retryable=True)
    if refused:  # some accepted: a retry would write to them twice, so it is said, not retried
        return _refused(host, refused, some=True)
    return DELIVERED


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


def _refused(host: str, recipients: dict, *, some: bool = False) -> Outcome:
    shown = "; ".join(f"{address} ({code} {(reply.decode(errors='replace') if isinstance(reply, bytes) else reply)[:80]})"
                      for address, (code, reply) in list(recipients.items())[:5])
    lead = "accepted the e-mail for the other recipients but refused" if some else "refused the recipients"
    temporary = not some and all(400 <= code < 500 for code, _ in recipients.values())
    return Outcome(f"{host} {lead} {shown}.", retryable=temporary)
