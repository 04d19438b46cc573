"""Names an admin types (servers, profiles, configurations) are unique whatever their case.

Compared in Python with str.casefold(): SQL lower() on SQLite folds ASCII letters only, so “Évry”
and “ÉVRY” would both be accepted there and refused on PostgreSQL. The tables holding such names
have tens of rows, so reading their names is cheap.
"""
from __future__ import annotations

from sqlalchemy import select

from .extensions import db


def name_taken(name_column, name: str, *conditions) -> bool:
    """Whether a row matching `conditions` already has `name`, ignoring case (any script)."""
    wanted = name.strip().casefold()
    names = db.session.execute(select(name_column).where(*conditions)).scalars()
    return any(existing.strip().casefold() == wanted for existing in names if existing)
