"""The activity log: who did what to which object, and when."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import IDS_NEVER_REUSED, UTCDateTime, utcnow


class ActivityEntry(db.Model):
    """One recorded action, by an admin or by the system (actor None)."""

    __tablename__ = "activity_entry"
    __table_args__ = (Index("ix_activity_entry_object", "object_type", "object_id"), IDS_NEVER_REUSED)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str | None] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(80))
    object_type: Mapped[str | None] = mapped_column(String(40))
    object_id: Mapped[int | None]
    object_label: Mapped[str | None] = mapped_column(String(255))
    summary: Mapped[str] = mapped_column(Text, default="")
    level: Mapped[str] = mapped_column(String(10), default="info")  # info | warning | error
    details: Mapped[dict | None] = mapped_column(JSON)
