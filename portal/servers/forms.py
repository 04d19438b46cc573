"""Forms of the Device Assignment area."""
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, IntegerField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange

from ..converters import small_int

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
    private_key_pem = TextAreaField("…or paste the private key (PEM)", render_kw={"spellcheck": "false", "rows": 4})
    password = PasswordField("Password", render_kw={"autocomplete": "off"})


class AddServerForm(_KeyFields, FlaskForm):
    """Add a Server."""

    name = StringField("Name", validators=[DataRequired("Give the managed server a name."), Length(max=120)])
    token = FileField("Authentication token", render_kw={"accept": ".p7m"})


class RenewServerForm(_KeyFields, FlaskForm):
    """Renew a server: a new token, optionally a new key."""

    token = FileField("New authentication token", render_kw={"accept": ".p7m"})
    confirm_replace = BooleanField("Replace anyway: connect this managed server to the other Apple MDM server")


class DeleteServerForm(FlaskForm):
    """Typed confirmation of a deletion."""

    confirm_name = StringField("Type the server name to confirm", render_kw={"autocomplete": "off"})


class KeyPairForm(FlaskForm):
    """Generate key pair."""

    common_name = StringField("Certificate name", default="ADE Portal",
                              validators=[DataRequired("Give the certificate a name."), Length(max=64)])
    days = IntegerField("Valid for (days)", default=365 * 3,
                        validators=[NumberRange(30, 3650, "Between 30 and 3650 days.")])


class ActionForm(FlaskForm):
    """A button that only needs CSRF protection."""
