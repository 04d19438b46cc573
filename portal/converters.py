"""Integers from URLs and forms: ids limited to what the database can compare with one, and whole
numbers typed in a form (seconds, days) with one plain message.

Id columns are 32-bit INTEGER: PostgreSQL refuses a larger number in a comparison with one
(NumericValueOutOfRange) and SQLite cannot bind one above 2**63 - 1 (OverflowError), both a 500
where an unknown id (`/servers/2147483648`, `device=99999999999999999999`) should simply match
nothing. Python's int() is also more lenient than an id needs: it takes "1_000",
" 7 " and non-ASCII digits such as "٣".
"""
from __future__ import annotations

from werkzeug.routing import IntegerConverter
from wtforms import IntegerField
from wtforms.validators import StopValidation

MAX_DB_INT = 2**31 - 1  # the largest value of an id column (INTEGER) on PostgreSQL
MAX_DB_INT_DIGITS = len(str(MAX_DB_INT))  # also keeps int() below Python's digit limit for str -> int


class DatabaseIdConverter(IntegerConverter):
    """The `int` URL converter, with ASCII digits only and at most MAX_DB_INT: a larger id is a 404."""

    regex = r"[0-9]+"  # werkzeug's \d+ also matches other scripts' digits

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None, max: int | None = MAX_DB_INT,
                 signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, max, signed)


def small_int(value) -> int | None:
    """`value` (text or int) as an id between 1 and MAX_DB_INT; None for anything else (as an unknown id).

    Usable as `request.args.get(name, type=small_int)`.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if not (value.isascii() and value.isdecimal() and len(value) <= MAX_DB_INT_DIGITS):
            return None
        value = int(value)
    if not isinstance(value, int):
        return None
    return value if 1 <= value <= MAX_DB_INT else None


def small_ints(values) -> list[int]:
    """The values that are ids (see small_int), for `getlist(name)`; the others are left out."""
    return [number for number in map(small_int, values) if number is not None]


class WholeNumberField(IntegerField):
    """A whole number typed in a form, from `minimum` to `maximum` (or one of `also`, e.g. 0 for "disabled").

    Anything else (empty, "abc", "12.5", "-5", out of range) gets `message` once, next to the field:
    IntegerField alone says "Not a valid integer value." and then the range's message too. ASCII
    digits only, like the ids above (int() would take "1_000" and "٣٠٠"). What was typed is shown again.
    """

    def __init__(self, label, minimum: int, maximum: int, message: str, *, also: tuple[int, ...] = (), **kwargs):
        super().__init__(label, invalid_value_message=message, **kwargs)
        self.minimum, self.maximum, self.message, self.also = minimum, maximum, message, also

    def process_formdata(self, valuelist):
        if not valuelist:
            return
        text = valuelist[0].strip()
        if not (text.isascii() and text.isdecimal() and len(text) <= 15):
            self.data = None
            raise ValueError(self.message)
        self.data = int(text)

    def pre_validate(self, form):
        if self.process_errors:  # not a number: its one message is already there
            raise StopValidation()
        if self.data is None or (self.data not in self.also and not self.minimum <= self.data <= self.maximum):
            raise StopValidation(self.message)
