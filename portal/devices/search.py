"""The device search box: serial number prefix, or a model / description containing the text.

"Contains" cannot use an index: a LIKE '%text%' reads all 100,000 rows (70 ms and more on SQLite).
But models and descriptions repeat (a few dozen models, a few hundred descriptions such as
"IPAD WI-FI 64GB"), so the text is first matched against the *distinct* values, read from their
index by a loose index scan, and the device condition becomes `model IN (...)`, which uses the
index. A column with too many distinct values for that falls back to LIKE.
"""
from __future__ import annotations

from sqlalchemy import and_, false, or_, text

from ..extensions import db
from ..models import Device

MAX_DISTINCT = 2000  # values read per column before giving up on the expansion
# One index probe per distinct value (ix_device_model, ix_device_description); the column name
# comes from SEARCHED below, never from the request. Same SQL on SQLite and PostgreSQL.
LOOSE_DISTINCT = """
WITH RECURSIVE found(value) AS (
    SELECT MIN({column}) FROM device
    UNION ALL
    SELECT (SELECT MIN({column}) FROM device WHERE {column} > found.value) FROM found WHERE found.value IS NOT NULL
)
SELECT value FROM found WHERE value IS NOT NULL LIMIT {limit}
"""
SEARCHED = {"model": Device.model, "description": Device.description}
LAST_CODE_POINT = chr(0x10FFFF)
SURROGATES = (0xD800, 0xDFFF)


def distinct_values(column: str, limit: int = MAX_DISTINCT) -> list[str]:
    """Up to `limit` distinct non-NULL values of an indexed device column, in order."""
    if column not in ("model", "description", "os", "device_family"):
        raise ValueError(column)
    return [row[0] for row in db.session.execute(text(LOOSE_DISTINCT.format(column=column, limit=int(limit))))]


def search_condition(query: str):
    """A condition on Device for the search box text."""
    terms = [serial_prefix_condition(query.upper())]
    needle = query.lower()
    for name, column in SEARCHED.items():
        values = distinct_values(name, MAX_DISTINCT + 1)
        if len(values) > MAX_DISTINCT:
            terms.append(column.ilike("%" + escape_like(query) + "%", escape="\\"))
        else:
            matching = [v for v in values if needle in v.lower()]
            terms.append(column.in_(matching) if matching else false())
    return or_(*terms)


def serial_prefix_condition(prefix: str):
    """Serial numbers starting with `prefix`.

    Also given as a range so both SQLite (whose LIKE is case-insensitive and so cannot use the
    index) and PostgreSQL (LIKE needs a C collation or text_pattern_ops) walk ix_device_serial;
    LIKE keeps the match exact.
    """
    if not prefix:
        return Device.serial_number.is_not(None)
    conditions = [Device.serial_number >= prefix, Device.serial_number.like(escape_like(prefix) + "%", escape="\\")]
    upper = prefix_upper_bound(prefix)
    if upper is not None:
        conditions.append(Device.serial_number < upper)
    return and_(*conditions)


def prefix_upper_bound(prefix: str) -> str | None:
    """The exclusive upper bound of the texts starting with `prefix`; None when there is none.

    The last character is replaced by the next code point. U+10FFFF has no next one: such trailing
    characters are dropped first ("AB" + U+10FFFF sorts below "AC"), and a prefix made only of them
    has no upper bound. The surrogates cannot be stored in UTF-8, so U+D7FF is followed by U+E000.
    """
    stem = prefix.rstrip(LAST_CODE_POINT)
    if not stem:
        return None
    following = ord(stem[-1]) + 1
    if SURROGATES[0] <= following <= SURROGATES[1]:
        following = SURROGATES[1] + 1
    return stem[:-1] + chr(following)


def escape_like(value: str) -> str:
    """Make LIKE wildcards in user text literal (used with escape='\\')."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
