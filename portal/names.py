"""Names an admin types (managed servers, profiles, configurations, generated key pairs): one way to
clean them, check them and compare them.

A name is what the admin sees, so two names that look alike are the same name:

- On input (`name_field`, a WTForms filter and validators), white space is trimmed and every run of
  it (any Unicode space, tabs, line breaks) becomes one space, in Unicode's composed form (NFC):
  " Demo  MDM" is stored as "Demo MDM", and "é" typed as e + combining accent as the single "é".
- Names holding invisible format or control characters (categories Cc and Cf: bidirectional
  overrides and isolates, zero-width spaces, joiners and marks, the byte order mark, NUL, BEL...)
  are refused: "Main" U+202E "MDM" displays reversed, and "Par" U+200B "is" cannot be told from "Paris".
  Only a zero-width joiner or non-joiner between two visible non-ASCII characters is kept: emoji
  sequences and Persian or Indic words need them.
- `taken_name` compares names the same way, ignoring case in any script, so a row stored before
  this cleaning existed (" Demo  MDM") still clashes with "demo mdm"; it returns the stored name,
  for the message. Compared in Python with str.casefold(): SQL lower() on SQLite folds ASCII
  letters only, so “Évry” and “ÉVRY” would both be accepted there and refused on PostgreSQL. The
  tables holding such names have tens of rows, so reading their names is cheap.
- `same_name` is the typed confirmation ("Type Paris exactly to confirm"): case counts, spacing
  and invisible characters do not.
"""
from __future__ import annotations

import unicodedata

from sqlalchemy import select
from wtforms import StringField
from wtforms.validators import DataRequired, Length, StopValidation

from .extensions import db

INVISIBLE = "Remove the invisible control characters from the name."
_INVISIBLE_CATEGORIES = ("Cc", "Cf")
_JOINERS = ("\u200c", "\u200d")  # zero-width non-joiner and joiner


def normalize_name(value):
    """`value` trimmed, each run of white space made one space, in NFC; anything but text unchanged.

    White space is what str.split() splits on: every Unicode space separator, tabs, line and
    paragraph breaks. A WTForms filter (it also receives None and the stored value of an edit form).
    """
    if not isinstance(value, str):
        return value
    return " ".join(unicodedata.normalize("NFC", value).split())


def invisible_characters(name: str) -> list[str]:
    """The format and control characters in `name` (Unicode categories Cc and Cf), in order, once each,
    except the joiners that writing needs (see _joining)."""
    found: list[str] = []
    for index, char in enumerate(name):
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES and char not in found and not _joining(name, index):
            found.append(char)
    return found


def _joining(name: str, index: int) -> bool:
    """Whether the character at `index` is a zero-width joiner or non-joiner doing its job: between two
    visible characters outside ASCII, as in the emoji "👩‍💻" (ZWJ) or the Persian "می‌خواهم" (ZWNJ).
    Between ASCII letters it does nothing visible ("Pa" ZWJ "ris" reads "Paris"), so it is refused there.
    Names are still compared without it (taken_name), so a look-alike of a stored name stays refused."""
    if name[index] not in _JOINERS or index == 0 or index == len(name) - 1:
        return False
    return all(not neighbour.isascii() and not neighbour.isspace()
               and unicodedata.category(neighbour) not in _INVISIBLE_CATEGORIES
               for neighbour in (name[index - 1], name[index + 1]))


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name.lower()})" if name else "")


def refuse_invisible(form, field) -> None:
    """WTForms validator: refuse a name holding invisible characters, saying which (and stop there)."""
    found = invisible_characters(field.data or "")
    if found:
        raise StopValidation(f"{INVISIBLE} It contains {', '.join(_describe(c) for c in found)}.")


def name_field(label: str, *, required: str, max_length: int, too_long: str | None = None,
               length: type[Length] = Length, **kwargs) -> StringField:
    """A StringField for a name: normalised, required, visible characters only, at most `max_length` characters.

    `required` and `too_long` are the messages shown next to the field; by default the latter is
    "The name can be at most N characters.". The length is counted after normalising, with `length`
    (a Length validator class: portal.apple_text.AppleLength for a name sent to Apple).
    """
    return StringField(label, filters=[normalize_name], validators=[
        DataRequired(required),
        refuse_invisible,
        length(max=max_length, message=too_long or f"The name can be at most {max_length} characters."),
    ], **kwargs)


def _visible(name: str) -> str:
    """`name` as it reads: normalised (NFC, single spaces), without invisible characters (joiners
    doing their job kept)."""
    # Spacing first: tabs and line breaks are control characters too, but they separate words.
    spaced = normalize_name(name)
    return normalize_name("".join(c for i, c in enumerate(spaced)
                                  if unicodedata.category(c) not in _INVISIBLE_CATEGORIES or _joining(spaced, i)))


def _comparable(name: str) -> str:
    """For telling names apart: also without joiners, so "Paris" and a look-alike holding one clash."""
    bare = "".join(c for c in _visible(name) if c not in _JOINERS)
    return unicodedata.normalize("NFC", bare.casefold())


def taken_name(name_column, name: str, *conditions) -> str | None:
    """The stored name of a row matching `conditions` that reads like `name` (any case, spacing), or None."""
    wanted = _comparable(name)
    names = db.session.execute(select(name_column).where(*conditions)).scalars()
    return next((existing for existing in names if existing and _comparable(existing) == wanted), None)


def shown_name(name: str) -> str:
    """`name` as a page shows it and as a confirmation must be typed (single spaces, nothing invisible)."""
    return _visible(name)


def same_name(typed: str | None, stored: str) -> bool:
    """Whether a typed confirmation is `stored`: the same letters in the same case, spacing aside."""
    return _visible(typed or "") == _visible(stored)
