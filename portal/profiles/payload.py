"""What the portal sends Apple for a profile (Define Profile body) and how Apple's field names map back
to the form, so an Apple refusal is shown next to the field to fix."""
from __future__ import annotations

import base64

from ..models import EnrollmentProfile, ServerConfiguration

# Portal column -> Apple Profile key. Organization and is_default are portal-side only.
STRING_FIELDS = {"name": "profile_name", "department": "department", "support_email": "support_email_address",
                 "support_phone": "support_phone_number", "language": "language", "region": "region",
                 "configuration_web_url": "configuration_web_url"}
BOOLEAN_FIELDS = ("is_mdm_removable", "is_supervised", "is_mandatory", "await_device_configured", "allow_pairing",
                  "auto_advance_setup", "is_multi_user")
# Columns whose change makes a configured profile differ from Apple's copy.
APPLE_COLUMNS = tuple(STRING_FIELDS) + BOOLEAN_FIELDS + ("skip_setup_items",)

# Apple key -> form field; "url" is the server configuration's URL, shown read-only in the form.
FORM_FIELD_FOR_APPLE = {apple: column for column, apple in STRING_FIELDS.items()}
FORM_FIELD_FOR_APPLE.update({name: name for name in BOOLEAN_FIELDS})
FORM_FIELD_FOR_APPLE.update({"url": "url", "skip_setup_items": "skip_setup_items"})


def define_body(profile: EnrollmentProfile, configuration: ServerConfiguration) -> dict:
    """Apple's Profile object: URL and anchor certificates from the configuration, the profile's fields.

    Empty optional strings are left out (Apple refuses present-but-empty values); booleans are always
    sent, so Apple's defaults (is_mdm_removable true...) never decide for the admin.
    """
    body: dict = {"profile_name": profile.name, "url": configuration.url}
    for column, key in STRING_FIELDS.items():
        value = getattr(profile, column)
        if column != "name" and value:
            body[key] = value
    for column in BOOLEAN_FIELDS:
        body[column] = bool(getattr(profile, column))
    if profile.skip_setup_items:
        body["skip_setup_items"] = list(profile.skip_setup_items)
    certificates = sorted(configuration.certificates, key=lambda c: c.position)
    if certificates:
        body["anchor_certs"] = [base64.b64encode(c.der).decode("ascii") for c in certificates]
    return body


def apple_snapshot(profile: EnrollmentProfile) -> dict:
    """The profile's Apple-relevant values, to tell whether an edit changed what Apple has."""
    return {column: getattr(profile, column) for column in APPLE_COLUMNS}
