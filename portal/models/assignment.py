"""Add Devices / Remove Devices / Release Devices requests and each device's result (also the retry queue and
history)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import IDS_NEVER_REUSED, UTCDateTime, utcnow

ASSIGN = "assign"
REMOVE = "remove"
RELEASE = "release"  # disown: Apple takes the devices out of the organization for good
ACTIONS = (ASSIGN, REMOVE, RELEASE)
ACTION_WORDS = {ASSIGN: "Add Devices", REMOVE: "Remove Devices", RELEASE: "Release Devices"}
DONE_WORDS = {ASSIGN: "Assigned", REMOVE: "Removed", RELEASE: "Released"}  # what Apple's SUCCESS did
QUEUED_WORDS = {ASSIGN: "Assignment waiting", REMOVE: "Removal waiting", RELEASE: "Release waiting"}  # not sent yet

# Task states. Apple's per-device answers are stored in AssignmentTask.result as sent.
QUEUED = "queued"          # waiting for the batch job (or for its retry time)
SENDING = "sending"        # in a call to Apple; left like this only by an interrupted job
DONE = "done"              # Apple answered SUCCESS
NOT_ACCESSIBLE = "not_accessible"  # final: the device is not assigned to this server at Apple
FAILED = "failed"          # retried after 24 hours (Apple's guidance)
THROTTLED = "throttled"    # retried after retry_after_seconds
SUPERSEDED = "superseded"  # a newer request for the same device replaced this one
# What a device's Assignment says beside Apple's answer when a Remove Devices or Release Devices got it (not Add
# Devices: "Failed" alone would read as a failed profile assignment), and what happens next (devices/pending.py).
ANSWER_WORDS = {
    REMOVE: {FAILED: "Removal failed", THROTTLED: "Removal throttled", NOT_ACCESSIBLE: "Removal not accessible"},
    RELEASE: {FAILED: "Release failed", THROTTLED: "Release throttled", NOT_ACCESSIBLE: "Release not accessible"},
}
ANSWER_NEXT = {
    REMOVE: {
        FAILED: "Apple answered FAILED and still holds the profile for the device. The removal is sent again after "
                "24 hours, as Apple advises (Retry now in the Assignment retry queue sends it sooner).",
        THROTTLED: "Apple throttled it and still holds the profile for the device. The removal is sent again after "
                   "Apple's wait.",
        NOT_ACCESSIBLE: "Apple answered NOT_ACCESSIBLE because the device is not assigned to this MDM server in Apple "
                        "Business Manager; its profile was not removed. Nothing more is sent: synchronize the server "
                        "to see where the device is now.",
    },
    RELEASE: {
        FAILED: "Apple answered FAILED, so the device is still in your organization. The release is sent again after "
                "24 hours, as Apple advises (Retry now in the Assignment retry queue sends it sooner).",
        THROTTLED: "Apple throttled it, so the device is still in your organization. The release is sent again after "
                   "Apple's wait.",
        NOT_ACCESSIBLE: "Apple answered NOT_ACCESSIBLE because the device is not, or no longer, assigned to this MDM "
                        "server (moved to another MDM server in Apple Business Manager, or released by an earlier try "
                        "whose answer was lost). Nothing more is sent. If it is still in your organization, release it from "
                        "the MDM server it is assigned to now.",
    },
}
TASK_STATES = (QUEUED, SENDING, DONE, NOT_ACCESSIBLE, FAILED, THROTTLED, SUPERSEDED)
RETRY_STATES = (FAILED, THROTTLED)
# Values of an UPDATE that writes a task's new reason: whatever held it before holds it no longer.
NOT_HELD = {"held_for_apple_wait": False, "held_for_token": False, "held_for_profile": False}


class AssignmentBatch(db.Model):
    """One Add Devices / Remove Devices action (or an automatic one: default profile, re-assignment)."""

    __tablename__ = "assignment_batch"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("managed_server.id", ondelete="CASCADE"), index=True)
    profile_id: Mapped[int | None] = mapped_column(ForeignKey("enrollment_profile.id", ondelete="SET NULL"), index=True)
    action: Mapped[str] = mapped_column(String(10))  # assign | remove | release
    origin: Mapped[str] = mapped_column(String(20), default="manual")  # manual | default profile | reassign | retry
    actor: Mapped[str | None] = mapped_column(String(80))
    # queued | running | waiting (devices held for a retry) | finished | interrupted
    status: Mapped[str] = mapped_column(String(20), default="queued")
    job_id: Mapped[str | None] = mapped_column(String(64))
    total: Mapped[int] = mapped_column(default=0)
    succeeded: Mapped[int] = mapped_column(default=0)
    not_accessible: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    throttled: Mapped[int] = mapped_column(default=0)
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tasks: Mapped[list["AssignmentTask"]] = relationship(back_populates="batch", cascade="all, delete-orphan",
                                                         passive_deletes=True)

    @property
    def label(self) -> str:
        """How the activity log names it: "Add Devices #12"."""
        return f"{ACTION_WORDS.get(self.action, 'Request')} #{self.id}"


class AssignmentTask(db.Model):
    """One device in one batch: its state, Apple's answer and when to retry."""

    __tablename__ = "assignment_task"
    __table_args__ = (
        Index("ix_assignment_task_batch_state", "batch_id", "state"),
        Index("ix_assignment_task_state_retry", "state", "retry_at"),
        Index("ix_assignment_task_device", "device_id", "id"),
        IDS_NEVER_REUSED,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("assignment_batch.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("device.id", ondelete="CASCADE"))
    serial_number: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20), default=QUEUED)
    result: Mapped[str | None] = mapped_column(String(30))  # Apple's word: SUCCESS, NOT_ACCESSIBLE, FAILED, THROTTLED
    detail: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(default=0)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Queued only for the retry time Apple asked for on this device after an earlier request's FAILED or
    # THROTTLED (services._keep_apple_waits): a later request keeps that wait too. Cleared by whatever
    # next writes the task's reason (its answer, another hold, superseded, Retry now).
    held_for_apple_wait: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Queued until the server's token works again (runner: the token was refused or needs the admin);
    # a successful token check sends it at once (retries.release_token_holds). Cleared like the above.
    held_for_token: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Queued until its request's profile is configured at Apple (runner: not Configured, or Apple answered
    # "profile not found"); a successful Configure profile sends it at once (retries.release_profile_holds).
    # Cleared like the above.
    held_for_profile: Mapped[bool] = mapped_column(default=False, server_default=false())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    batch: Mapped[AssignmentBatch] = relationship(back_populates="tasks")
