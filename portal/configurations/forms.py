"""Forms of the MDM Server Configurations area and of Assign Server Configuration."""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from flask_wtf.file import MultipleFileField
from wtforms import BooleanField, RadioField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..apple_text import counting_note, url_encoded_length
from ..converters import small_int
from ..models import ServerConfiguration
from ..names import name_field, taken_name
from ..typed_text import PortalForm
from ..url_checks import canonical_url, port_problem, url_text_problem

URL_EXAMPLE = "https://mdm.example.com/enroll"
MAX_URL = 2000


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an MDM enrollment URL, or None when it can."""
    if not url:
        return f"Enter the MDM server URL, e.g. {URL_EXAMPLE}."
    if (counted := url_encoded_length(url)) > MAX_URL:  # Apple's 2000 count the URL percent-encoded (§3.6)
        return (f"The URL is {counted:,} characters long; at most {MAX_URL:,} are allowed."
                + counting_note(url, counted, url=True))
    if any(ch.isspace() for ch in url):
        return "The URL cannot contain spaces. Encode them as %20 or remove them."
    if problem := url_text_problem(url):
        return problem
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return f"This is not a valid URL. Enter a full address such as {URL_EXAMPLE}."
    if problem := port_problem(parts):
        return problem
    scheme = parts.scheme.lower()
    if scheme == "http":
        return "Use https://: devices only enroll with an MDM server over HTTPS."
    if scheme != "https" or not parts.netloc:
        return f"Enter a full address starting with https://, e.g. {URL_EXAMPLE}."
    if not parts.hostname:
        return "The URL needs a host name after https://."
    if "@" in parts.netloc:
        return "Do not put a user name or password in the URL: devices would send them to anyone who sees it."
    if parts.fragment or url.endswith("#"):
        return "Remove the #… part: Apple sends devices to the URL without it."
    if _loopback(parts.hostname):
        return (f"Devices cannot reach {parts.hostname}: to each device it means the device itself. Enter the name "
                "or address by which enrolling devices reach the MDM server.")
    return None


def _loopback(host: str) -> bool:
    """localhost, *.localhost, 127.0.0.0/8, ::1 or an unspecified address (0.0.0.0, ::): never an MDM server."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _certificate_id(value) -> int:
    return small_int(value) or 0


class ConfigurationForm(PortalForm):
    """Create / edit an MDM server configuration."""

    name = name_field("Name", required="Give the configuration a name.", max_length=120)
    url = StringField("MDM server URL", filters=[lambda v: v.strip() if isinstance(v, str) else v],
                      render_kw={"type": "url", "placeholder": URL_EXAMPLE, "spellcheck": "false"})
    certificate_files = MultipleFileField("Certificate files", render_kw={"accept": ".pem,.crt,.cer,.der,.p7b,.p7c"})
    certificates_pem = TextAreaField("…or paste certificates (PEM, one or more)",
                                     render_kw={"spellcheck": "false", "rows": 4,
                                                "placeholder": "-----BEGIN CERTIFICATE-----"})
    # Edit only: the stored certificates to drop (their ids).
    # A value that is no certificate id (a hand-edited form) matches no certificate, like an unknown id.
    remove = SelectMultipleField("Remove these certificates", coerce=_certificate_id, choices=[], validate_choice=False,
                                 widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())

    # Create Configuration reached from a managed server (?server=<id>): assign it there too. The view names the
    # server in the label ("Assign to Paris") and only shows the box then.
    assign = BooleanField("Assign to the managed server", default=True)

    def __init__(self, *args, configuration: ServerConfiguration | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._configuration = configuration

    def validate_name(self, field) -> None:
        """Names are unique, whatever their case and spacing, so two configurations are never confused."""
        clash = self.name_clash()
        if clash:
            raise ValidationError(clash)

    def name_clash(self) -> str | None:
        """Why the typed name cannot be used, naming the configuration that has it, or None."""
        others = [ServerConfiguration.id != self._configuration.id] if self._configuration is not None else []
        taken = taken_name(ServerConfiguration.name, self.name.data or "", *others)
        return None if taken is None else f"A configuration named “{taken}” already exists. Choose another name."

    def validate_url(self, field) -> None:
        problem = url_problem(field.data or "")
        if problem:
            raise ValidationError(problem)
        field.data = canonical_url(field.data)  # "MDM.EXAMPLE.COM" is no other server than "mdm.example.com"


class AssignForm(PortalForm):
    """Select the Server Configuration (choices are filled by the view)."""

    configuration = RadioField("Server configuration", coerce=int, choices=[], validate_choice=False,
                               validators=[DataRequired("Select a server configuration.")])


class ConfirmForm(PortalForm):
    """A confirmation button that only needs CSRF protection."""
