"""Forms of the Enrollment Profiles area; field rules follow Apple's Profile object limits (reference §3.6),
so a profile is refused here, next to the field, before anything is sent to Apple."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from wtforms import BooleanField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.fields import EmailField, TelField, URLField
from wtforms.validators import DataRequired, Length, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..apple_text import AppleLength, counting_note, url_encoded_length
from ..names import name_field
from ..typed_text import PortalForm
from ..url_checks import port_problem, url_text_problem
from ..models.profile import DEVICE_FAMILIES
from .codes import LANGUAGES, REGIONS, SKIP_SETUP_ITEMS

# What a phone number is written with: digits, spaces, + ( ) - . /, then an optional extension ("ext. 12",
# "extension 12", "x12", "#12"). At least one digit; no other letters ("call me maybe").
PHONE = re.compile(r"\+?[\d\s()./-]*\d[\d\s()./-]*(?:\s*(?:ext\.?|extension|x|#)\s*\d+)?", re.IGNORECASE)

# One "@", something on both sides, a dot in the domain, no spaces: what Apple's own check accepts,
# without pulling in email_validator for deliverability rules Apple does not apply.
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def _lower(value):
    return value.strip().lower() if isinstance(value, str) else value


def _upper(value):
    return value.strip().upper() if isinstance(value, str) else value


class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes (the Setup Assistant panes)."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def https_url_problem(url: str) -> str | None:
    """Why `url` is not an https URL Apple accepts (≤2000 characters percent-encoded, a host, no spaces), or None."""
    if (counted := url_encoded_length(url)) > 2000:
        return "At most 2000 characters." + counting_note(url, counted, url=True)
    if any(ch.isspace() for ch in url):
        return "A URL cannot contain spaces."
    if problem := url_text_problem(url):
        return problem
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
    except ValueError:
        return "This is not a valid URL (check the port number)."
    if problem := port_problem(parts):
        return problem
    if parts.scheme != "https" or not parts.hostname:
        return "Enter an https:// address, e.g. https://mdm.example.com/enroll."
    return None


class ProfileForm(PortalForm):
    """Create Profile / Edit: BMC's attributes, then Apple's other settings under Advanced."""

    name = name_field("Profile name", required="Give the profile a name.", max_length=125, length=AppleLength,
                      too_long="The name can be at most 125 characters (Apple's limit).")
    organization = StringField("Organization", filters=[_strip], validators=[
        Optional(), Length(max=255, message="The organization can be at most 255 characters.")])
    department = StringField("Department", filters=[_strip], validators=[
        Optional(), AppleLength(max=125, message="The department can be at most 125 characters (Apple's limit).")])
    support_email = EmailField("Support Email Address", filters=[_strip], validators=[Optional(), AppleLength(
        max=250, message="The support email address can be at most 250 characters (Apple's limit).")])
    support_phone = TelField("Support Phone Number", filters=[_strip], validators=[
        Optional(), AppleLength(max=50, message="The support phone number can be at most 50 characters (Apple's limit).")])
    is_mdm_removable = BooleanField("Is MDM Removable", default=True)

    is_supervised = BooleanField("Supervised", default=True)
    is_mandatory = BooleanField("Mandatory: the user cannot skip enrollment", default=False)
    await_device_configured = BooleanField("Await device configured: hold Setup Assistant until the MDM "
                                           "server releases the device", default=False)
    allow_pairing = BooleanField("Allow pairing with computers", default=True)
    auto_advance_setup = BooleanField("Auto-advance Setup Assistant (tvOS, macOS)", default=False)
    is_multi_user = BooleanField("Multi-user (Shared iPad)", default=False)
    language = StringField("Language", filters=[_lower], validators=[Optional()])
    region = StringField("Region", filters=[_upper], validators=[Optional()])
    skip_setup_items = MultiCheckboxField(
        "Setup Assistant panes to skip", choices=[SelectChoice(key, label) for key, label in SKIP_SETUP_ITEMS],
        invalid_choice_message="Apple does not know the Setup Assistant pane %(value)s: untick it.")
    configuration_web_url = URLField("Configuration web URL", filters=[_strip], validators=[Optional()])
    is_default = BooleanField("Default profile for new devices of this server", default=False)
    default_families = MultiCheckboxField(
        "Only for new devices of these families",
        choices=[SelectChoice(key, label) for key, label in DEVICE_FAMILIES.items()],
        invalid_choice_message="Apple has no device family %(value)s: untick it.")

    def validate_default_families(self, field) -> None:
        if field.data and not self.is_default.data:
            raise ValidationError("Tick “Default profile for new devices of this server” too, or untick the families.")

    def validate_support_email(self, field) -> None:
        if field.data and not EMAIL.fullmatch(field.data):
            raise ValidationError("Enter an email address like support@example.com.")

    def validate_support_phone(self, field) -> None:
        if field.data and not PHONE.fullmatch(field.data):
            raise ValidationError("Enter a phone number: digits, spaces and + ( ) - . /, with an extension "
                                  "written as “ext. 123” if needed.")

    def validate_is_mdm_removable(self, field) -> None:
        if not field.data and not self.is_supervised.data:
            raise ValidationError("Only a supervised device can have an MDM profile that cannot be removed: "
                                  "tick Supervised (under Advanced) or leave Is MDM Removable ticked.")

    def validate_language(self, field) -> None:
        if field.data and (not re.fullmatch(r"[a-z]{2,3}", field.data) or field.data not in LANGUAGES):
            raise ValidationError("Use an ISO 639 language code: two or three letters, e.g. en, fr or deu.")

    def validate_region(self, field) -> None:
        if field.data and field.data not in REGIONS:
            raise ValidationError("Use an ISO 3166 two-letter country code, e.g. US, FR or DE.")

    def validate_configuration_web_url(self, field) -> None:
        problem = https_url_problem(field.data) if field.data else None
        if problem:
            raise ValidationError(problem)

    def apple_errors_open_advanced(self) -> bool:
        """Whether an error sits in the Advanced section, or its remedy does (so it is shown open): Is MDM Removable
        unticked on an unsupervised profile is fixed with Supervised, in Advanced."""
        advanced = ("is_supervised", "is_mandatory", "await_device_configured", "allow_pairing", "auto_advance_setup",
                    "is_multi_user", "language", "region", "skip_setup_items", "configuration_web_url")
        return any(getattr(self, name).errors for name in advanced) or bool(self.is_mdm_removable.errors)


class NewProfileForm(ProfileForm):
    """Create Profile from the global page: the managed server is chosen in the form."""

    server_id = SelectField("Managed server", coerce=int, validators=[DataRequired("Choose the managed server.")],
                            invalid_choice_message="That managed server no longer exists: choose another.")


class ConfigureForm(PortalForm):
    """Configure profile confirmation."""

    # Ticked when the pop-up is shown (see the view); a POST without it (unticked) means no.
    reassign = BooleanField("Re-assign them now", default=False)


class ConfirmForm(PortalForm):
    """A confirmation that only needs CSRF protection (Delete)."""
