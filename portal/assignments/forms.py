"""Forms of the assignment pages: most carry only the CSRF token (the choices are checkboxes)."""
from wtforms import StringField, TextAreaField
from wtforms.validators import ValidationError

from ..typed_text import PortalForm

CONFIRMATION_WORD = "RELEASE"
NO_SERIALS = "Paste the serial numbers of the devices to release."


class ConfirmForm(PortalForm):
    """OK / Remove Devices / Retry now: a confirmation that only needs CSRF protection."""


class ReleaseForm(PortalForm):
    """Release Devices: the serial numbers, and the typed word that confirms a change Apple does not undo."""

    serials = TextAreaField("Serial numbers", render_kw={"spellcheck": "false", "autocomplete": "off", "rows": 5})
    confirmation = StringField("Type RELEASE to confirm", filters=[lambda v: v.strip() if isinstance(v, str) else v],
                               render_kw={"autocomplete": "off", "data-confirmation": True})

    def validate_serials(self, field) -> None:
        # Here, not only after the typed word passed: both fields to fix are named at once.
        if not (field.data or "").strip():
            raise ValidationError(NO_SERIALS)

    def validate_confirmation(self, field) -> None:
        if (field.data or "").upper() != CONFIRMATION_WORD:
            raise ValidationError(f"Type {CONFIRMATION_WORD} to confirm: Apple does not undo a release.")
