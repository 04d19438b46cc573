"""Forms of the Device Assignment area."""
from flask_wtf.file import FileField
from wtforms import BooleanField, PasswordField, SelectField, StringField, TextAreaField, ValidationError

from ..converters import WholeNumberField, small_int
from ..names import name_field
from ..typed_text import PortalForm
from .key_pairs import key_pair_name_clash

NAME_HELP = "Use the name of the MDM server in Apple Business Manager, so both are easy to match."


def _key_pair_id(value) -> int:
    """A generated key pair's id, 0 (upload or paste) for anything that is not one."""
    return small_int(value) or 0


class _KeyFields:
    """Where the private key comes from: a key pair generated here, a file, or pasted PEM."""

    # Not checked against the choices: a key pair used by another server meanwhile (a second tab)
    # gets its own message next to the field from the view, not WTForms' "Not a valid choice".
    pending_key = SelectField("Private key", coerce=_key_pair_id, default=0, validate_choice=False)
    private_key = FileField("Private key file", render_kw={"accept": ".pem,.key,.der,.p12,.pfx"})
    # data-secret: never kept in the browser's storage when a session ends before it is sent (static/js/portal.js).
    private_key_pem = TextAreaField("…or paste the private key (PEM)",
                                    render_kw={"spellcheck": "false", "rows": 4, "data-secret": True})
    password = PasswordField("Password", render_kw={"autocomplete": "off"})


class AddServerForm(_KeyFields, PortalForm):
    """Add a Server."""

    name = name_field("Name", required="Give the managed server a name.", max_length=120)
    token = FileField("Authentication token", render_kw={"accept": ".p7m"})


class RenewServerForm(_KeyFields, PortalForm):
    """Renew a server: a new token, optionally a new key."""

    token = FileField("New authentication token", render_kw={"accept": ".p7m"})
    confirm_replace = BooleanField("Replace anyway: connect this managed server to the other Apple MDM server")
    new_key_wanted = False  # set when the token needs another private key: "Use a new private key" shows open


class DeleteServerForm(PortalForm):
    """Typed confirmation of a deletion."""

    # data-confirmation: typed again after a session ends, never kept (static/js/portal.js).
    confirm_name = StringField("Type the server name to confirm",
                               render_kw={"autocomplete": "off", "data-confirmation": True})


class KeyPairForm(PortalForm):
    """Generate key pair."""

    common_name = name_field("Certificate name", default="ADE Portal", required="Give the certificate a name.",
                             max_length=64, too_long="The certificate name can be at most 64 characters.")
    days = WholeNumberField("Valid for (days)", 30, 3650, "Enter a number of days from 30 to 3650.", default=365 * 3)

    def validate_common_name(self, field) -> None:
        """Unique whatever its case and spacing, as other names: Add Server lists key pairs by name. And at most
        64 bytes of UTF-8, the limit of a certificate's common name (64 characters are checked above)."""
        name = field.data or ""
        if len(name) <= 64 < len(name.encode("utf-8")):
            raise ValidationError("The certificate name can be at most 64 bytes: accented letters and other non-ASCII "
                                  "characters count as 2 to 4 bytes each.")
        clash = key_pair_name_clash(name)
        if clash:
            raise ValidationError(clash)


class ActionForm(PortalForm):
    """A button that only needs CSRF protection."""
