"""E-mail notifications (Configuration › Apple): SMTP settings checked next to their fields, the password stored
encrypted and never shown, token status changes and the 7/1-day reminders sent as plain-text e-mails by a worker
with the webhook's retry rules, and Send a test e-mail polled into the page. The mail server is a real SMTP server
(aiosmtpd) on a free local port, with STARTTLS or SSL/TLS behind a throwaway certificate authority."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from markupsafe import escape
from sqlalchemy import select

from jobs.servers import refresh_token_statuses
from portal import vault
from portal.extensions import db
from portal.models.setting import Setting, get_setting
from tests.servers_helpers import field_error
from tests.smtp_helpers import PASSWORD, USER, Mailbox, make_certificates, start_server
from tests.smtp_helpers import mail  # noqa: F401 - the fixture
from tests.test_notification_retries import QUICK, _revoke_terms, _run_due_retries, _summaries
from tests.test_notifications import _activity, paris, webhook  # noqa: F401 - fixtures

# aiosmtpd warns of AUTH without STARTTLS on the implicit-TLS server, whose connection is TLS throughout.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
BASE = {"sync_interval": "86400", "warning_days": "30", "webhook_url": ""}


@pytest.fixture
def certificates(tmp_path, monkeypatch):
    paths = make_certificates(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(paths[0]))  # what ssl.create_default_context() trusts
    return paths


def _save(client, **smtp):
    return client.post("/settings/apple", data={**BASE, **{f"smtp_{k}": v for k, v in smtp.items()}})


def _plain(client, mail, **more):
    return _save(client, host="127.0.0.1", port=str(mail.port), tls="none", sender="ade@example.com",
                 recipients="it@example.com,\n oncall@example.com", **more)


def test_a_token_status_change_and_the_reminders_are_emailed_as_plain_text(htmx, apple, paris, run_jobs, mail):
    from portal.models import ManagedServer

    assert _plain(htmx, mail).status_code == 302
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == []
    [envelope] = mail.envelopes
    assert envelope.mail_from == "ade@example.com"
    assert envelope.rcpt_tos == ["it@example.com", "oncall@example.com"]
    [message] = mail.messages()
    assert message["Subject"] == "[ADE portal] Token of Paris: Terms Not Accepted"
    assert message["From"] == "ade@example.com" and message["To"] == "it@example.com, oncall@example.com"
    assert message.get_content_type() == "text/plain" and not message.is_multipart()
    body = message.get_content()
    assert body.startswith("Token status of Paris is now Terms Not Accepted.")
    assert "Managed server: Paris" in body and "Token status: Terms Not Accepted" in body

    apple.state.set_fault("Paris MDM", "terms_not_signed", False)
    htmx.post(f"/servers/{paris.id}/check")
    assert run_jobs() == [] and len(mail.envelopes) == 2  # Valid again: said too
    server = db.session.get(ManagedServer, paris.id)
    server.token_expiry = datetime.now(timezone.utc) + timedelta(days=20)
    db.session.commit()
    refresh_token_statuses()  # About to Expire: a status change
    server = db.session.get(ManagedServer, paris.id)
    server.token_expiry = datetime.now(timezone.utc) + timedelta(days=6, hours=12)
    db.session.commit()
    assert refresh_token_statuses()["reminded"] == 1
    assert run_jobs() == []
    subjects = [m["Subject"] for m in mail.messages()]
    assert subjects[-1] == "[ADE portal] Token of Paris expires in 7 days"
    assert "Days left: 7" in mail.messages()[-1].get_content()
    assert _activity("notification.failed") == [] and _activity("notification.retrying") == []


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_an_encrypted_server_that_asks_to_sign_in_gets_the_password_stored_encrypted(htmx, apple, paris, run_jobs,
                                                                                     certificates, mode):
    mailbox = Mailbox()
    controller = start_server(mailbox, mode, certificates)
    try:
        assert _save(htmx, host="localhost", port=str(controller.port), tls=mode, username=USER, password=PASSWORD,
                     sender="ade@example.com", recipients="it@example.com").status_code == 302
        stored = db.session.get(Setting, "smtp_password").value
        assert PASSWORD not in stored and vault.decrypt(stored.encode()) == PASSWORD.encode()
        page = htmx.get("/settings/apple").get_data(as_text=True)
        assert PASSWORD not in page and stored not in page and "A password is saved, encrypted" in page
        log = " ".join(_summaries("settings.apple"))
        assert "e-mail notifications sent through localhost" in log and PASSWORD not in log and stored not in log
        _revoke_terms(htmx, apple, paris)
        assert run_jobs() == []
        assert mailbox.logins == [(USER, PASSWORD)]
        assert [m["Subject"] for m in mailbox.messages()] == ["[ADE portal] Token of Paris: Terms Not Accepted"]
        # Saved again with the password field empty: the password is kept.
        assert _save(htmx, host="localhost", port=str(controller.port), tls=mode, username=USER, password="",
                     sender="ade@example.com", recipients="it@example.com").status_code == 302
        db.session.expire_all()
        assert vault.decrypt(get_setting("smtp_password").encode()) == PASSWORD.encode()
    finally:
        controller.stop()


def test_a_certificate_that_does_not_verify_is_not_retried(app, htmx, apple, paris, run_jobs, tmp_path):
    app.config["NOTIFICATION_RETRY_DELAYS"] = QUICK
    mailbox = Mailbox()
    controller = start_server(mailbox, "starttls", make_certificates(tmp_path))  # its CA is not trusted
    try:
        assert _save(htmx, host="localhost", port=str(controller.port), tls="starttls", username=USER,
                     password=PASSWORD, sender="ade@example.com", recipients="it@example.com").status_code == 302
        _revoke_terms(htmx, apple, paris)
        assert run_jobs() == [] and _run_due_retries(run_jobs) == 0
    finally:
        controller.stop()
    [failed] = _summaries("notification.failed")
    assert failed.startswith("Notification not delivered by e-mail through localhost: localhost's TLS certificate is "
                             "not trusted (it is self-signed or signed by an authority this server does not know)")
    assert mailbox.logins == [] and _activity("notification.retrying") == []


def test_a_server_without_starttls_is_named_and_not_retried(app, htmx, apple, paris, run_jobs, mail):
    app.config["NOTIFICATION_RETRY_DELAYS"] = QUICK
    assert _save(htmx, host="127.0.0.1", port=str(mail.port), tls="starttls", sender="ade@example.com",
                 recipients="it@example.com").status_code == 302  # the plain server offers no STARTTLS
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == [] and _run_due_retries(run_jobs) == 0
    [failed] = _summaries("notification.failed")
    assert failed.startswith("Notification not delivered by e-mail through 127.0.0.1: 127.0.0.1 does not offer "
                             "STARTTLS on this port: choose SSL/TLS if the port is one that encrypts from the start "
                             "(usually 465), or check the port (usually 587 with STARTTLS). It said:")
    assert mail.envelopes == []


def test_a_temporary_refusal_is_retried_and_a_permanent_one_is_not(app, htmx, apple, paris, run_jobs, mail):
    app.config["NOTIFICATION_RETRY_DELAYS"] = QUICK
    assert _plain(htmx, mail).status_code == 302
    mail.answers = ["451 4.3.0 Mailbox busy, try later", "452 4.3.1 Still busy"]
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == []
    assert _run_due_retries(run_jobs) == 1 and _run_due_retries(run_jobs) == 1
    assert len(mail.envelopes) == 1
    [retrying] = _summaries("notification.retrying")
    assert retrying.startswith("Notification not delivered by e-mail through 127.0.0.1: 127.0.0.1 refused the message "
                               "(451 4.3.0 Mailbox busy, try later). Trying again in 0 s (3 more attempts at most).")
    assert _summaries("notification.delivered")[0].startswith(
        "Notification delivered by e-mail through 127.0.0.1 on attempt 3.")

    mail.answers = ["554 5.7.1 Rejected by policy"]
    apple.state.set_fault("Paris MDM", "terms_not_signed", False)
    htmx.post(f"/servers/{paris.id}/check")
    assert run_jobs() == [] and _run_due_retries(run_jobs) == 0
    [failed] = _summaries("notification.failed")
    assert "127.0.0.1 refused the message (554 5.7.1 Rejected by policy). It said: Token status of Paris is now Valid" in failed
    assert len(_summaries("notification.retrying")) == 1


def test_a_mail_server_that_is_down_is_retried_then_given_up(app, htmx, apple, paris, run_jobs):
    from tests.smtp_helpers import free_port

    app.config["NOTIFICATION_RETRY_DELAYS"] = (0,)
    assert _save(htmx, host="127.0.0.1", port=str(free_port()), tls="none", sender="ade@example.com",
                 recipients="it@example.com").status_code == 302
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == [] and _run_due_retries(run_jobs) == 1 and _run_due_retries(run_jobs) == 0
    port = get_setting("smtp_port")
    assert (f"127.0.0.1 refused the connection on port {port}: check the port (usually 587 with STARTTLS, 465 with "
            "SSL/TLS, 25 without encryption), or whether the mail server runs. Trying again in 0 s (1 more attempt "
            "at most)") in _summaries("notification.retrying")[0]
    assert "ConnectionRefusedError" not in _summaries("notification.retrying")[0]
    assert "Given up after 2 attempts." in _summaries("notification.failed")[0]


def test_the_webhook_and_e_mail_are_retried_apart(app, htmx, apple, paris, run_jobs, mail, webhook):
    app.config["NOTIFICATION_RETRY_DELAYS"] = QUICK
    assert htmx.post("/settings/apple", data={**BASE, "webhook_url": webhook.url, "smtp_host": "127.0.0.1",
                                       "smtp_port": str(mail.port), "smtp_tls": "none",
                                       "smtp_sender": "ade@example.com", "smtp_recipients": "it@example.com"}).status_code == 302
    mail.answers = ["421 4.4.2 Too many connections"]
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == [] and _run_due_retries(run_jobs) == 1
    assert len(webhook.received) == 1 and len(mail.envelopes) == 1  # the webhook is not sent twice


@pytest.mark.parametrize("fields, field, message", [
    ({"host": "smtp://mail.example.com"}, "smtp_host", "without smtp:// or a port"),
    ({"host": "mail.example.com:587"}, "smtp_host", "without smtp:// or a port"),
    ({"host": "mail example.com"}, "smtp_host", "This is not a server name"),
    ({"port": "0"}, "smtp_port", "Enter a port from 1 to 65535"),
    ({"port": "smtp"}, "smtp_port", "Enter a port from 1 to 65535"),
    ({"tls": "tls1.0"}, "smtp_tls", "Choose STARTTLS, SSL/TLS or None."),
    ({"sender": ""}, "smtp_sender", "Give the address the e-mails come from"),
    ({"sender": "ade at example.com"}, "smtp_sender", "ade at example.com is not an e-mail address"),
    ({"sender": "ade\x07@example.com"}, "smtp_sender", "control characters, which are not allowed: U+0007 (BEL)"),
    ({"recipients": ""}, "smtp_recipients", "Give at least one address"),
    ({"recipients": "it@example.com, oncall"}, "smtp_recipients", "oncall is not an e-mail address"),
    ({"recipients": "ït@example.com"}, "smtp_recipients", "holds non-ASCII characters before the @"),
    ({"recipients": "it@☃.example"}, "smtp_recipients", "its domain, ☃.example, is not a valid internationalised"),
    ({"recipients": "IT <it@example.com"}, "smtp_recipients", "IT &lt;it@example.com is not an e-mail address"),
    ({"recipients": "Ops, Paris <ops@example.com>"}, "smtp_recipients", "Ops is not an e-mail address"),
    ({"sender": "ADE <ade@example.com> x"}, "smtp_sender", "is not an e-mail address: write it like alerts@example.com "
                                                          "or IT alerts &lt;alerts@example.com&gt;."),
    ({"recipients": ", ".join(f"u{n}@example.com" for n in range(21))}, "smtp_recipients", "at most 20 addresses"),
    ({"tls": "none", "username": "u", "password": "p"}, "smtp_tls", "only sent over an encrypted connection"),
    ({"username": "u"}, "smtp_password", "Give the password of this user name too"),  # next to what is missing
    ({"port": ""}, "smtp_port", "Enter a port from 1 to 65535"),
    ({"password": "p"}, "smtp_username", "Give the user name that goes with the password."),
    ({"username": "u\r\nRCPT TO:<x@evil.example>", "password": "p"}, "smtp_username", "cannot hold line breaks"),
    ({"username": "u", "password": "p" * 129}, "smtp_password", "at most 128 characters"),
])
def test_smtp_settings_that_cannot_work_are_refused_next_to_the_field_and_nothing_changes(admin_client, fields, field,
                                                                                         message):
    good = {"host": "mail.example.com", "port": "587", "tls": "starttls", "sender": "ade@example.com",
            "recipients": "it@example.com"}
    assert _save(admin_client, **good).status_code == 302
    before = {row.key: row.value for row in db.session.execute(select(Setting)).scalars()}
    response = _save(admin_client, **{**good, **fields})
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    typed = fields.get(field.removeprefix("smtp_"))
    if typed and field in ("smtp_sender", "smtp_recipients") and "\x07" not in typed:  # what was typed comes back
        assert escape(typed) in response.get_data(as_text=True)
    db.session.expire_all()
    assert {row.key: row.value for row in db.session.execute(select(Setting)).scalars()} == before


def test_the_port_may_be_left_empty_while_e_mail_is_off(admin_client):
    """No SMTP server: e-mail is off, and an emptied Port refused the whole Save (the webhook, the interval…)."""
    response = _save(admin_client, host="", port="", tls="starttls", sender="", recipients="")
    assert response.status_code == 302
    db.session.expire_all()
    assert get_setting("smtp_host") in (None, "")
    assert 'value="587"' in admin_client.get("/settings/apple").get_data(as_text=True)  # the usual port, shown again


def test_a_new_password_typed_with_another_field_refused_is_asked_again_not_dropped_unnoticed(admin_client):
    good = {"host": "mail.example.com", "port": "587", "tls": "starttls", "username": USER, "password": PASSWORD,
            "sender": "ade@example.com", "recipients": "it@example.com"}
    assert _save(admin_client, **good).status_code == 302
    response = _save(admin_client, **{**good, "port": "99999", "password": "the-new-one"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "the-new-one" not in html
    assert "The password you typed was not saved, and is never shown back: type it again." in field_error(
        html, "smtp_password")
    db.session.expire_all()
    assert vault.decrypt(get_setting("smtp_password").encode()).decode() == PASSWORD
    # Nothing typed: nothing to say about the password.
    response = _save(admin_client, **{**good, "port": "99999", "password": ""})
    assert response.status_code == 422 and "type it again" not in response.get_data(as_text=True)


def test_the_longest_password_fits_the_setting_encrypted(admin_client):
    longest = "\U0001d11e" * 128  # four bytes each in UTF-8: the longest ciphertext a password can have
    assert _save(admin_client, host="mail.example.com", username=USER, password=longest, sender="ade@example.com",
                 recipients="it@example.com").status_code == 302
    db.session.expire_all()
    assert vault.decrypt(get_setting("smtp_password").encode()).decode() == longest


def test_emptying_the_server_turns_e_mail_off_and_the_user_name_takes_the_password_with_it(admin_client, mail):
    assert _save(admin_client, host="mail.example.com", tls="ssl", port="465", username=USER, password=PASSWORD,
                 sender="ade@example.com", recipients="it@example.com").status_code == 302
    assert "Send a test e-mail</button>" in admin_client.get("/settings/apple").get_data(as_text=True)
    assert _save(admin_client, host="mail.example.com", tls="ssl", port="465", username="", password="",
                 sender="ade@example.com", recipients="it@example.com").status_code == 302
    db.session.expire_all()
    assert get_setting("smtp_password") == ""
    assert _save(admin_client, host="", port="587", tls="starttls").status_code == 302
    assert "Send a test e-mail</button>" not in admin_client.get("/settings/apple").get_data(as_text=True)
    assert _summaries("settings.apple")[-1] == "Configuration › Apple: e-mail notifications turned off"


def test_send_a_test_e_mail_shows_the_servers_answer(htmx, run_jobs, mail):
    refused = htmx.post("/settings/apple/test-email")
    assert refused.status_code == 422 and "Save an SMTP server and recipients first" in refused.get_data(as_text=True)

    assert _plain(htmx, mail).status_code == 302
    queued = htmx.post("/settings/apple/test-email").get_data(as_text=True)
    assert "Waiting for a worker" in queued and 'hx-trigger="every 1s"' in queued
    job_id = queued.split("/settings/apple/test-email/")[1].split('"')[0]
    assert run_jobs() == []
    done = htmx.get(f"/settings/apple/test-email/{job_id}")
    assert done.status_code == 286
    assert "127.0.0.1 accepted the test e-mail for it@example.com, oncall@example.com" in done.get_data(as_text=True)
    assert mail.messages()[0]["Subject"] == "[ADE portal] Test e-mail"

    mail.answers = ["550 5.1.1 No such user"]
    queued = htmx.post("/settings/apple/test-email").get_data(as_text=True)
    job_id = queued.split("/settings/apple/test-email/")[1].split('"')[0]
    assert run_jobs() == []
    answer = htmx.get(f"/settings/apple/test-email/{job_id}").get_data(as_text=True)
    assert "Not sent" in answer and "127.0.0.1 refused the message (550 5.1.1 No such user)." in answer
    assert _activity("notification.failed") == []  # a test's answer is on the page, not in the log


def test_send_a_test_e_mail_without_javascript_says_so_on_the_settings_page(admin_client, run_jobs, mail):
    assert _plain(admin_client, mail).status_code == 302
    response = admin_client.post("/settings/apple/test-email", follow_redirects=True)
    assert response.status_code == 200 and "A test e-mail is on its way through 127.0.0.1" in \
        response.get_data(as_text=True)
    assert run_jobs() == [] and len(mail.envelopes) == 1


def test_the_saved_password_is_never_sent_to_another_server_or_user_name(admin_client):
    """Only to the server and user name it was given for: a new host or user name asks for it again."""
    saved = dict(host="smtp.example.com", port="587", tls="starttls", username=USER, password=PASSWORD,
                 sender="ade@example.com", recipients="it@example.com")
    assert _save(admin_client, **saved).status_code == 302
    for change in ({"host": "smtp.attacker.example"}, {"username": "someone-else"}):
        response = _save(admin_client, **{**saved, "password": "", **change})
        assert response.status_code == 422
        assert field_error(response.get_data(as_text=True), "smtp_password").startswith("Give the password again")
        db.session.expire_all()
        assert get_setting("smtp_host") == "smtp.example.com" and get_setting("smtp_username") == USER
    assert _save(admin_client, **{**saved, "password": "", "host": "SMTP.example.com"}).status_code == 302  # same host
    assert _save(admin_client, **{**saved, "host": "smtp2.example.com", "password": "new secret"}).status_code == 302
    db.session.expire_all()
    assert vault.decrypt(get_setting("smtp_password").encode()) == b"new secret"


def test_a_test_e_mail_status_shows_no_other_job(admin_client, htmx, apple, paris, run_jobs):
    """The polled status of Send a test e-mail takes only that job's id: another job's result is not shown there."""
    from portal.models import SyncRun

    htmx.post(f"/servers/{paris.id}/sync")
    job_id = db.session.execute(select(SyncRun.job_id).order_by(SyncRun.id.desc())).scalars().first()
    assert job_id and run_jobs() == []
    for path in ("/settings/apple/test-email/", "/settings/apple/test-notification/"):
        response = htmx.get(path + job_id)
        html = response.get_data(as_text=True)
        assert response.status_code == 286 and "no longer known to Redis" in html and "added" not in html


def test_the_subject_of_an_event_with_line_breaks_and_a_long_text_is_one_short_line(admin_client, mail):
    """An event the subject does not know by kind takes its text: line breaks cannot go into a header (the job
    would fail, the e-mail unsent) nor smuggle one in, and a long text is cut after a word."""
    from jobs.notifications import deliver

    assert _plain(admin_client, mail).status_code == 302
    text = "Line one\r\nBcc: someone@evil.example\n\tLine\x0bthree " + "and more words " * 20
    assert deliver({"event": "kind_added_later", "text": text}, "email") == {"delivered": True, "attempt": 1}
    [message] = mail.messages()
    subject = message["Subject"]
    assert subject.startswith("[ADE portal] Line one Bcc: someone@evil.example Line three and more words")
    assert len(subject) <= 120 and subject.endswith("words…") and "  " not in subject
    assert message["Bcc"] is None and mail.envelopes[0].rcpt_tos == ["it@example.com", "oncall@example.com"]
    assert message.get_content().splitlines()[:2] == ["Line one", "Bcc: someone@evil.example"]  # the body keeps it


def test_a_short_subject_is_kept_whole():
    from portal.email_delivery import one_line, subject

    assert subject({"event": "kind_added_later", "text": "Disk\nfull"}) == "[ADE portal] Disk full"
    assert subject({"event": "kind_added_later", "text": ""}) == "[ADE portal] Notification"
    assert one_line("x" * 130, 120) == "x" * 119 + "…"  # one long word: cut where it must be


def test_a_display_name_and_an_internationalised_domain_are_accepted_and_sent_as_idna(admin_client, mail):
    sender, recipients = "IT alerts <alerts@bücher.example>", '"Ops, Paris" <ops@bücher.example>\nit@example.com'
    assert _save(admin_client, host="127.0.0.1", port=str(mail.port), tls="none", sender=sender,
                 recipients=recipients).status_code == 302
    page = admin_client.get("/settings/apple").get_data(as_text=True)
    assert str(escape(sender)) in page and str(escape('"Ops, Paris" <ops@bücher.example>, it@example.com')) in page
    from jobs.notifications import deliver

    assert deliver({"event": "test", "text": "Hello"}, "email")["delivered"] is True
    [envelope], [message] = mail.envelopes, mail.messages()
    assert envelope.mail_from == "alerts@xn--bcher-kva.example"
    assert envelope.rcpt_tos == ["ops@xn--bcher-kva.example", "it@example.com"]
    assert message["From"].addresses[0].display_name == "IT alerts"
    assert [(a.display_name, a.addr_spec) for a in message["To"].addresses] == [
        ("Ops, Paris", "ops@xn--bcher-kva.example"), ("", "it@example.com")]
    assert message["Message-ID"].endswith("@xn--bcher-kva.example>")


def test_the_same_address_under_two_names_is_one_recipient():
    from portal.email_settings import split_recipients

    assert split_recipients("it@example.com, IT team <IT@example.com>; oncall@example.com") == [
        "it@example.com", "oncall@example.com"]


def test_recipients_refused_for_good_are_named_as_a_warning_and_the_others_get_it_once(app, htmx, apple, paris,
                                                                                       run_jobs, mail):
    app.config["NOTIFICATION_RETRY_DELAYS"] = QUICK
    assert _plain(htmx, mail).status_code == 302
    mail.recipient_answers = {"oncall@example.com": ["550 5.1.1 No such user"]}
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == [] and _run_due_retries(run_jobs) == 0
    assert [e.rcpt_tos for e in mail.envelopes] == [["it@example.com"]]
    [partly] = _activity("notification.partly_delivered")
    assert partly.level == "warning" and partly.summary.startswith(
        "Notification delivered by e-mail through 127.0.0.1 to only some recipients: 127.0.0.1 accepted the e-mail "
        "for it@example.com but refused oncall@example.com (550 5.1.1 No such user). Check these addresses. It said: "
        "Token status of Paris is now Terms Not Accepted.")
    assert _activity("notification.failed") == [] and _activity("notification.retrying") == []


def test_a_recipient_refused_for_now_is_retried_alone(app, htmx, apple, paris, run_jobs, mail):
    app.config["NOTIFICATION_RETRY_DELAYS"] = QUICK
    assert _save(htmx, host="127.0.0.1", port=str(mail.port), tls="none", sender="ade@example.com",
                 recipients="it@example.com, oncall@example.com, gone@example.com").status_code == 302
    mail.recipient_answers = {"oncall@example.com": ["451 4.2.1 Mailbox busy", "452 4.2.2 Still busy"],
                              "gone@example.com": ["550 5.1.1 No such user"]}
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == []
    assert _run_due_retries(run_jobs) == 1 and _run_due_retries(run_jobs) == 1 and _run_due_retries(run_jobs) == 0
    assert [e.rcpt_tos for e in mail.envelopes] == [["it@example.com"], ["oncall@example.com"]]  # no one twice
    [retrying] = _summaries("notification.retrying")
    assert retrying.startswith(
        "Notification delivered by e-mail through 127.0.0.1 to only some recipients: 127.0.0.1 accepted the e-mail "
        "for it@example.com but refused oncall@example.com (451 4.2.1 Mailbox busy); gone@example.com (550 5.1.1 No "
        "such user). Check these addresses. Trying again for oncall@example.com in 0 s (3 more attempts at most).")
    assert _summaries("notification.delivered")[0].startswith(
        "Notification delivered by e-mail through 127.0.0.1 to oncall@example.com on attempt 3. It said:")
    assert _activity("notification.failed") == [] and _activity("notification.partly_delivered") == []


def test_every_recipient_refused_retries_only_those_refused_for_now(app, htmx, apple, paris, run_jobs, mail):
    app.config["NOTIFICATION_RETRY_DELAYS"] = (0,)
    assert _plain(htmx, mail).status_code == 302
    mail.recipient_answers = {"it@example.com": ["550 5.1.1 No such user"],
                              "oncall@example.com": ["451 4.2.1 Mailbox busy", "451 4.2.1 Mailbox busy"]}
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == [] and _run_due_retries(run_jobs) == 1 and _run_due_retries(run_jobs) == 0
    assert mail.envelopes == [] and mail.recipient_answers["it@example.com"] == []  # asked once, not retried
    assert "Trying again for oncall@example.com in 0 s" in _summaries("notification.retrying")[0]
    [failed] = _summaries("notification.failed")
    assert failed.startswith("Notification not delivered by e-mail through 127.0.0.1 to oncall@example.com: 127.0.0.1 "
                             "refused every recipient: oncall@example.com (451 4.2.1 Mailbox busy). Given up after 2 "
                             "attempts.")


def test_a_test_e_mail_some_recipients_refused_says_partly_sent(htmx, run_jobs, mail):
    assert _plain(htmx, mail).status_code == 302
    mail.recipient_answers = {"oncall@example.com": ["550 5.1.1 No such user"]}
    queued = htmx.post("/settings/apple/test-email").get_data(as_text=True)
    job_id = queued.split("/settings/apple/test-email/")[1].split('"')[0]
    assert run_jobs() == []
    answer = htmx.get(f"/settings/apple/test-email/{job_id}").get_data(as_text=True)
    assert "Partly sent" in answer and "accepted the e-mail for it@example.com but refused oncall@example.com" in answer
