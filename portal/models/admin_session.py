"""Signed-in browser sessions, kept on the server so that signing out really ends them."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import UTCDateTime, utcnow


class AdminSession(db.Model):
    """One sign-in. The browser's cookie holds a random token; only its SHA-256 is stored here, so
    the table tells nobody how to take over a session."""

    __tablename__ = "admin_session"
    __table_args__ = (Index("ix_admin_session_admin", "admin_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("admin.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
