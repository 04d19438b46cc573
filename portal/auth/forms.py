"""The sign-in form and the change of an admin's own password."""
from wtforms import PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length

from ..typed_text import PortalForm


class LoginForm(PortalForm):
    """User name and password."""

    username = StringField("User name", validators=[
        DataRequired("Enter your user name."), Length(max=80, message="The user name can be at most 80 characters.")],
                           render_kw={"autocomplete": "username", "autofocus": True})
    password = PasswordField("Password", validators=[DataRequired("Enter your password.")],
                             render_kw={"autocomplete": "current-password"})
    submit = SubmitField("Sign in")


class ChangePasswordForm(PortalForm):
    """The signed-in admin's own password: the current one, then the new one twice."""

    current_password = PasswordField("Current password", validators=[DataRequired("Enter your current password.")],
                                     render_kw={"autocomplete": "current-password", "autofocus": True})
    new_password = PasswordField("New password", validators=[
        DataRequired("Enter a new password."),
        Length(min=8, max=1024, message="The new password must have 8 to 1,024 characters.")],
                                 render_kw={"autocomplete": "new-password"})
    confirm_password = PasswordField("New password again", validators=[
        DataRequired("Enter the new password a second time."),
        EqualTo("new_password", message="The two new passwords differ: type the same one twice.")],
                                     render_kw={"autocomplete": "new-password"})
    submit = SubmitField("Change password")
