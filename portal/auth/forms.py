"""The login form."""
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from ..typed_text import PortalForm


class LoginForm(PortalForm):
    """User name and password."""

    username = StringField("User name", validators=[
        DataRequired("Enter your user name."), Length(max=80, message="The user name can be at most 80 characters.")],
                           render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField("Password", validators=[DataRequired("Enter your password.")],
                             render_kw={"autocomplete": "current-password"})
    submit = SubmitField("Sign in")
