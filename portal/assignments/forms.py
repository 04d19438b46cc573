"""Forms of the assignment pages: they carry only the CSRF token (the choices are checkboxes)."""
from flask_wtf import FlaskForm


class ConfirmForm(FlaskForm):
    """OK / Remove Devices / Retry now: a confirmation that only needs CSRF protection."""
