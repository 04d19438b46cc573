"""Control characters in what admins type: refused next to the field, never a bare error page.

Nobody types a NUL, a backspace or an escape on purpose; they come from pasting out of terminals,
PDFs or spreadsheets, or from a crafted request. PostgreSQL cannot store or even compare a NUL, so
one reaching a query would be a 500. Every form of the portal derives from `PortalForm`, whose fields
refuse control characters first (Unicode category Cc, except tab and line breaks, which separate
words and lines), with a message naming them, and keep what was typed. Names have their own, wider
check (names.refuse_invisible, which also refuses invisible format characters), so it is left to them.
"""
from __future__ import annotations

import unicodedata

from flask_wtf import FlaskForm
from wtforms.validators import StopValidation

from .names import refuse_invisible

ALLOWED_CONTROLS = "\t\n\r"
# Control characters have no Unicode name; these are the ones admins meet, by their usual names.
_CONTROL_NAMES = {0x00: "NUL", 0x07: "BEL", 0x08: "backspace", 0x0B: "vertical tab", 0x0C: "form feed",
                  0x1B: "escape", 0x7F: "DEL"}


def control_characters(text: str) -> list[str]:
    """The control characters of `text` that are not allowed (category Cc but tab and line breaks), once each."""
    found: list[str] = []
    for char in text:
        if char not in found and char not in ALLOWED_CONTROLS and unicodedata.category(char) == "Cc":
            found.append(char)
    return found


def describe_controls(found: list[str]) -> str:
    """'U+0000 (NUL), U+001B (escape)' for a message."""
    return ", ".join(f"U+{ord(c):04X}" + (f" ({_CONTROL_NAMES[ord(c)]})" if ord(c) in _CONTROL_NAMES else "")
                     for c in found)


def controls_message(found: list[str], what: str = "This field") -> str:
    """What an admin reads next to a field holding control characters."""
    them = "them" if len(found) > 1 else "it"
    return (f"{what} contains control characters, which are not allowed: {describe_controls(found)}. "
            f"Remove {them} (only visible characters, spaces, tabs and line breaks can be used).")


def refuse_control_characters(form, field) -> None:
    """WTForms validator: refuse control characters in what was typed (the raw text, before any filter)."""
    typed = [value for value in (field.raw_data or []) if isinstance(value, str)]  # files are not typed
    found = control_characters("".join(typed))
    if found:
        field.errors[:] = []  # a filter's or converter's complaint about the same text would only confuse
        raise StopValidation(controls_message(found))


class PortalForm(FlaskForm):
    """The base of every form: each field refuses control characters before its own checks run."""

    class Meta(FlaskForm.Meta):
        def bind_field(self, form, unbound_field, options):
            validators = list(unbound_field.kwargs.get("validators") or [])
            if refuse_invisible not in validators:  # bind() lets options override the declared kwargs
                options = {**options, "validators": [refuse_control_characters, *validators]}
            return super().bind_field(form, unbound_field, options)
