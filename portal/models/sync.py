"""Synchronization runs: one row per sync job, with progress and result."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import IDS_NEVER_REUSED, UTCDateTime, utcnow

ACTIVE = ("queued", "running")


class SyncRun(db.Model):
    """A synchronization of one managed server with Apple.

    Progress lives here rather than in job.meta: the row is committed with every page of
    devices anyway, so the figures the page polls are exactly what is in the database.
    """

    __tablename__ = "sync_run"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("managed_server.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(20))  # manual | scheduled | added | renewed
    actor: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20), default="queued")  # queued running succeeded failed
    kind: Mapped[str | None] = mapped_column(String(20))  # full | incremental
    # Full synchronization: read every device again (not only Apple's changes), so devices Apple
    # stopped listing without a "deleted" event (released ones) are marked removed.
    full_requested: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pages: Mapped[int] = mapped_column(default=0)
    devices_seen: Mapped[int] = mapped_column(default=0)
    added: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    removed: Mapped[int] = mapped_column(default=0)
    retries: Mapped[int] = mapped_column(default=0)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # queued again for then (Apple unavailable or busy)
    error_code: Mapped[str | None] = mapped_column(String(60))
    error_message: Mapped[str | None] = mapped_column(Text)

    server = relationship("ManagedServer", back_populates="sync_runs")

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def retry_scheduled(self) -> bool:
        """Queued again for later after Apple kept failing (servers.sync._retry_later), not running meanwhile: its
        job waits in rq-scheduler until its time, then in the queue for a worker. Retry now can run it."""
        return self.status == "queued" and self.retry_at is not None

    @property
    def waiting_to_retry(self) -> bool:
        """A retry whose time has not come. Once it has, the run is as good as queued: it starts when a worker is
        free (a busy worker, or Retry now), and says so rather than "retried 5 minutes ago"."""
        return self.retry_scheduled and self.retry_at > utcnow()

    @property
    def duration(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
