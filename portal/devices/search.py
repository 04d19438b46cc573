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
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(Device.serial_number >= prefix, Device.serial_number < upper,
                Device.serial_number.like(escape_like(prefix) + "%", escape="\\"))


def escape_like(value: str) -> str:
    """Make LIKE wildcards in user text literal (used with escape='\\')."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
