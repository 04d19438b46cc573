"""Portal administrators who sign in to the web UI."""
from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from .types import IDS_NEVER_REUSED, UTCDateTime, utcnow

# A fixed hash to compare against when the name is unknown, so a failed login takes the same
# time whether or not the admin exists.
_DUMMY_HASH = generate_password_hash("not-a-password")


class Admin(UserMixin, db.Model):
    """An administrator account (password hashed with scrypt)."""

    __tablename__ = "admin"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def set_password(self, password: str) -> None:
        """Store a scrypt hash of the password."""
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password: str) -> bool:
        """True when `password` matches."""
        return check_password_hash(self.password_hash, password)

    def __repr__(self) -> str:
        return f"<Admin {self.username}>"


def find_admin(name: str) -> Admin | None:
    """The admin whose user name is `name`, as typed at sign-in: spacing and case do not count
    ("Alice " signs in as "alice"). An exact match wins; two accounts differing only in case
    (created before names were compared this way) need the exact spelling.

    Compared in Python with str.casefold() (SQL lower() folds ASCII only on SQLite); a portal has
    a handful of admins.
    """
    wanted = " ".join(name.split())
    if not wanted:
        return None
    admins = db.session.execute(select(Admin)).scalars().all()
    exact = [a for a in admins if a.username == wanted]
    if exact:
        return exact[0]
    folded = [a for a in admins if " ".join(a.username.split()).casefold() == wanted.casefold()]
    return folded[0] if len(folded) == 1 else None


def burn_password_check(password: str) -> None:
    """Spend the time of a real check for an unknown user name."""
    check_password_hash(_DUMMY_HASH, password)
