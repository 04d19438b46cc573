"""Devices Apple assigned to a managed server, as last synchronized."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .types import IDS_NEVER_REUSED, UTCDateTime, utcnow


class Device(db.Model):
    """One device of one managed server (a device moved between servers has a row on each)."""

    __tablename__ = "device"
    __table_args__ = (
        UniqueConstraint("server_id", "serial_number", name="uq_device_server_serial"),
        Index("ix_device_serial", "serial_number", "id"),
        Index("ix_device_server_removed_serial", "server_id", "removed_at", "serial_number"),
        # Partial: most devices have no profile of ours, and a full sync inserts 100,000 of them
        # without touching this index (`profile_id = ?` implies the predicate on both databases).
        Index("ix_device_profile", "profile_id", "serial_number", sqlite_where=text("profile_id IS NOT NULL"),
              postgresql_where=text("profile_id IS NOT NULL")),
        # Managed Devices lists: keyset paging when sorted by model / assigned date, and the
        # family and OS filter choices and the search (loose index scans, see portal/devices/search.py).
        Index("ix_device_model", "model", "id"),
        Index("ix_device_assigned_date", "device_assigned_date", "id"),
        Index("ix_device_family", "device_family"),
        Index("ix_device_os", "os"),
        Index("ix_device_description", "description"),  # search: distinct descriptions (devices/search.py)
        # The Assignment filter (failed, throttled...) and its count: without it, counting the first
        # 5,001 failed devices read two thirds of the table. Partial: a sync inserts devices without
        # an answer, so a full fetch of 100,000 new devices never touches it.
        Index("ix_device_assignment_state", "assignment_state", "removed_at",
              sqlite_where=text("assignment_state IS NOT NULL"), postgresql_where=text("assignment_state IS NOT NULL")),
        # The server page's counts of devices that will not enroll (devices/enrollment.py, not_ready_counts):
        # every column the rule reads, in the order it groups them, so both databases count a server's
        # 100,000 devices from this index alone, without reading the rows or sorting.
        Index("ix_device_enroll", "server_id", "removed_at", "profile_id", "profile_status", "profile_uuid"),
        IDS_NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("managed_server.id", ondelete="CASCADE"))
    serial_number: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    color: Mapped[str | None] = mapped_column(String(64))
    asset_tag: Mapped[str | None] = mapped_column(String(255))
    os: Mapped[str | None] = mapped_column(String(32))
    device_family: Mapped[str | None] = mapped_column(String(32))
    profile_status: Mapped[str | None] = mapped_column(String(16))
    profile_uuid: Mapped[str | None] = mapped_column(String(64))
    profile_assign_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    profile_push_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    device_assigned_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    device_assigned_by: Mapped[str | None] = mapped_column(String(255))
    # Newer and rarer attributes (MAC addresses, IMEI, replacement flags...) as Apple sent them.
    extra: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))  # SQL NULL, so COALESCE keeps the old value
    last_op_type: Mapped[str | None] = mapped_column(String(16))
    last_op_date: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fetch_generation: Mapped[int] = mapped_column(default=0)

    # The portal's side of the assignment (Add Devices / Remove Devices):
    # the enrollment profile Apple last accepted for this device (SUCCESS), and Apple's answer to the
    # latest request: none | assigned | not_accessible | failed | throttled. A request still waiting
    # to be sent shows as "queued" from its task (devices/pending.py), never stored here.
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("enrollment_profile.id", ondelete="SET NULL"))
    assignment_state: Mapped[str | None] = mapped_column(String(20))
    assignment_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
