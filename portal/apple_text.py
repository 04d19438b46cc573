"""How Apple counts the length of a profile's text fields, for the forms that must stay within it.

Apple gives its Profile limits in "UTF-8 characters" (reference §3.6) without saying whether a
character is a code point or a byte; the bundled simulator takes the strict reading, bytes of
UTF-8, and so do the forms: é counts 2, 日 3, 😀 4. A URL's 2000 "URL-encoded characters" count
each non-ASCII byte as its %XX escape, as the URL travels.
"""
from __future__ import annotations

from urllib.parse import quote

from wtforms.validators import Length, ValidationError

_ASCII = "".join(chr(code) for code in range(128))


def utf8_length(text: str) -> int:
    """Length as Apple counts it: bytes of UTF-8."""
    return len(text.encode("utf-8", "surrogatepass"))


def url_encoded_length(url: str) -> int:
    """Length once percent-encoded: ASCII as typed, each non-ASCII UTF-8 byte as %XX."""
    return len(quote(url, safe=_ASCII))


def counting_note(text: str, counted: int, *, url: bool = False) -> str:
    """Why a text that looks short enough is too long, or "" when it is plain ASCII."""
    if text.isascii():
        return ""
    if url:
        return (f" Apple counts the URL percent-encoded, each non-ASCII letter as 6 to 12 characters "
                f"(é is %C3%A9): this one counts {counted:,}.")
    return (f" Apple counts accented letters as 2 characters, most other scripts as 3 and emoji as 4: "
            f"this counts {counted:,}.")


class AppleLength(Length):
    """Length(max=…) counted as Apple counts (bytes of UTF-8); keeps the input's maxlength attribute,
    which a browser counts in characters, so it never stops less than Apple allows."""

    def __call__(self, form, field) -> None:
        text = field.data or ""
        counted = utf8_length(text)
        if counted > self.max:
            raise ValidationError((self.message or f"At most {self.max} characters.") + counting_note(text, counted))
