"""The form of Configuration › Apple: each number keeps to its range, with one message saying it."""
from __future__ import annotations

import json

from wtforms import HiddenField, PasswordField, SelectField, StringField, TextAreaField, URLField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError

from ..config import SYNC_INTERVAL_MAX, SYNC_INTERVAL_MIN, WARNING_DAYS_MAX, WARNING_DAYS_MIN
from ..converters import WholeNumberField
from ..email_settings import (MAX_PASSWORD, MAX_RECIPIENTS, MAX_RECIPIENTS_TEXT, TLS_MODES, address_problem, has_password,
                              host_problem, password_kept_for, secret_text_problem, split_recipients)
from ..models.setting import parse_reminder_days
from ..notifications import url_problem
from ..typed_text import PortalForm

INTERVAL_MESSAGE = (f"Enter 0 (disabled) or a number of seconds from {SYNC_INTERVAL_MIN} to {SYNC_INTERVAL_MAX:,} "
                    f"({SYNC_INTERVAL_MAX // 86400} days).")
WARNING_DAYS_MESSAGE = f"Enter a number of days from {WARNING_DAYS_MIN} to {WARNING_DAYS_MAX}."
PORT_MESSAGE = "Enter a port from 1 to 65535: usually 587 with STARTTLS, 465 with SSL/TLS, 25 without encryption."


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class PortField(WholeNumberField):
    """The SMTP port: may be left empty while no SMTP server is given (e-mail off); validate_smtp_port decides."""

    def process_formdata(self, valuelist):
        if valuelist and not valuelist[0].strip():
            self.data = None
            return
        super().process_formdata(valuelist)

    def pre_validate(self, form):
        if self.data is not None or self.process_errors:
            super().pre_validate(form)


class AppleSettingsForm(PortalForm):
    """Device Assignment settings."""

    # The values the page showed when it was opened (JSON), so that a Save writes only what was changed in it: a
    # second tab opened before another Save would otherwise put back every value it still shows.
    opened_with = HiddenField()

    sync_interval = WholeNumberField("Server Synchronization Interval (seconds)", SYNC_INTERVAL_MIN,
                                     SYNC_INTERVAL_MAX, INTERVAL_MESSAGE, also=(0,))
    warning_days = WholeNumberField("Token expiry warning (days)", WARNING_DAYS_MIN, WARNING_DAYS_MAX,
                                    WARNING_DAYS_MESSAGE)
    reminder_days = StringField("Token expiry reminders (days before expiry)", filters=[_strip],
                                render_kw={"placeholder": "7, 1", "autocomplete": "off"})
    webhook_url = URLField("Notification webhook URL", filters=[lambda v: v.strip() if isinstance(v, str) else v],
                           render_kw={"placeholder": "https://hooks.example.com/…", "autocomplete": "off"})

    smtp_host = StringField("SMTP server", filters=[_strip],
                            render_kw={"placeholder": "smtp.example.com", "autocomplete": "off"})
    smtp_port = PortField("Port", 1, 65535, PORT_MESSAGE, default=587)
    smtp_tls = SelectField("Encryption", choices=[SelectChoice(key, label) for key, label in TLS_MODES.items()], default="starttls",
                           invalid_choice_message="Choose STARTTLS, SSL/TLS or None.")
    smtp_username = StringField("User name", filters=[_strip], render_kw={"autocomplete": "off"})
    smtp_password = PasswordField("Password", render_kw={"autocomplete": "new-password"})
    smtp_sender = StringField("Sender address", filters=[_strip],
                              render_kw={"placeholder": "ade-portal@example.com", "autocomplete": "off"})
    smtp_recipients = TextAreaField("Recipients", filters=[_strip], render_kw={"rows": 2,
                                    "placeholder": "it-admins@example.com, oncall@example.com"})

    def show(self, values: dict) -> None:
        """Fill the fields with the saved `values` and remember them as what the page was opened with."""
        for name, value in values.items():
            self[name].data = value
        self.opened_with.data = json.dumps(values)

    def keep_saves_made_since(self, saved: dict) -> list[str]:
        """A field posted as it was shown takes its `saved` value instead: someone may have saved a new one since the
        page was opened, and the admin did not change it here. What they did change is kept and checked as typed.
        Returns the labels of the fields that took a newer saved value, for the page to say so."""
        try:
            opened = json.loads(self.opened_with.data or "")
        except ValueError:
            opened = None
        if not isinstance(opened, dict):  # a post without it (a script): every field is written as posted
            return []
        taken = []
        for name, value in saved.items():
            field = self[name]
            if name in opened and field.raw_data and field.data == opened[name] and value != field.data:
                field.data, field.raw_data = value, [str(value)]  # raw_data: a number field shows it again
                taken.append(field.label.text)
        return taken

    def recipients(self) -> list[str]:
        """The recipients typed, one each."""
        return split_recipients(self.smtp_recipients.data or "")

    def validate_smtp_host(self, field) -> None:
        problem = host_problem(field.data) if field.data else None
        if problem:
            raise ValidationError(problem)

    def validate_smtp_tls(self, field) -> None:
        if field.data == "none" and self.smtp_username.data and self.smtp_host.data:
            raise ValidationError("A password is only sent over an encrypted connection: choose STARTTLS or "
                                  "SSL/TLS, or empty the user name if the server needs no sign-in.")

    def validate_smtp_username(self, field) -> None:
        problem = secret_text_problem(field.data or "", "user name")
        if problem:
            raise ValidationError(problem)
        if not field.data and self.smtp_password.data:
            raise ValidationError("Give the user name that goes with the password.")

    def validate_smtp_port(self, field) -> None:
        if field.data is None:  # left empty: only an SMTP server in use needs one
            if self.smtp_host.data:
                raise ValidationError(PORT_MESSAGE)
            field.data = field.default

    def validate_smtp_password(self, field) -> None:
        problem = secret_text_problem(field.data or "", "password", MAX_PASSWORD)
        if problem:
            raise ValidationError(problem)
        if self.smtp_username.data and not field.data and not has_password():  # said where it is missing
            raise ValidationError("Give the password of this user name too (or empty the user name).")
        if (self.smtp_username.data and not field.data and has_password()
                and not password_kept_for(self.smtp_host.data or "", self.smtp_username.data)):
            raise ValidationError("Give the password again: the saved one is only sent to the SMTP server and user "
                                  "name it was given for.")

    def validate_smtp_sender(self, field) -> None:
        if not field.data:
            if self.smtp_host.data:
                raise ValidationError("Give the address the e-mails come from, one the SMTP server lets you send as.")
            return
        problem = address_problem(field.data)
        if problem:
            raise ValidationError(problem)

    def validate_smtp_recipients(self, field) -> None:
        addresses = self.recipients()
        if not addresses:
            if self.smtp_host.data:
                raise ValidationError("Give at least one address to send the notifications to.")
            return
        bad = [problem for problem in map(address_problem, addresses) if problem]
        if bad:
            raise ValidationError(bad[0] + (f" ({len(bad) - 1} more such)" if len(bad) > 1 else ""))
        if len(addresses) > MAX_RECIPIENTS:
            raise ValidationError(f"Give at most {MAX_RECIPIENTS} addresses: a mailing list address reaches more.")
        if len(", ".join(addresses)) > MAX_RECIPIENTS_TEXT:
            raise ValidationError(f"The recipients have at most {MAX_RECIPIENTS_TEXT:,} characters in all.")

    def validate_reminder_days(self, field) -> None:
        try:
            parse_reminder_days(field.data or "")
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def validate_webhook_url(self, field) -> None:
        problem = url_problem(field.data) if field.data else None
        if problem:
            raise ValidationError(problem)
