"""Managed servers (the portal's side of an Apple Business Manager MDM server) and key pairs."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import IDS_NEVER_REUSED, UTCDateTime, utcnow


class ManagedServer(db.Model):
    """A managed server: its encrypted token and key, Apple account details and sync state."""

    __tablename__ = "managed_server"
    __table_args__ = IDS_NEVER_REUSED
    __encrypted__ = ("token_ciphertext", "key_ciphertext")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    # Secrets, encrypted with portal.vault: the token JSON and the private key PEM.
    token_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    key_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    # Not secret: lets the portal tell tokens of different Apple MDM servers apart on renewal.
    consumer_key: Mapped[str] = mapped_column(String(200))
    token_expiry: Mapped[datetime] = mapped_column(UTCDateTime)
    token_renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    certificate_subject: Mapped[str | None] = mapped_column(String(500))

    # Valid | About to Expire | Expired, or a state Apple reported (see portal.token_status).
    token_status: Mapped[str] = mapped_column(String(30), default="valid")
    # The last expiry reminder sent (jobs.servers._remind_of_expiry): "<token expiry>/<days>", once per step.
    token_reminded: Mapped[str | None] = mapped_column(String(40))
    apple_state: Mapped[str | None] = mapped_column(String(30))
    apple_state_detail: Mapped[str | None] = mapped_column(Text)
    apple_state_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Account details from Apple's GET /account.
    apple_server_name: Mapped[str | None] = mapped_column(String(255))
    apple_server_uuid: Mapped[str | None] = mapped_column(String(64))
    org_name: Mapped[str | None] = mapped_column(String(255))
    org_email: Mapped[str | None] = mapped_column(String(255))
    org_phone: Mapped[str | None] = mapped_column(String(64))
    org_address: Mapped[str | None] = mapped_column(String(500))
    org_id: Mapped[str | None] = mapped_column(String(64))
    admin_id: Mapped[str | None] = mapped_column(String(255))
    account_fetched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    account_job_id: Mapped[str | None] = mapped_column(String(64))
    # Set when a renewal's token turned out to belong to another Apple server UUID.
    expected_server_uuid: Mapped[str | None] = mapped_column(String(64))

    # Synchronization: the cursor is written in the same transaction as its page's devices.
    sync_cursor: Mapped[str | None] = mapped_column(String(1000))
    sync_cursor_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fetch_complete: Mapped[bool] = mapped_column(default=False)
    fetch_generation: Mapped[int] = mapped_column(default=0)
    # Devices currently assigned (not removed), kept by their writers (portal/devices/counts.py):
    # the lists and the Servers page read it instead of counting 100,000 rows on every view.
    device_count: Mapped[int] = mapped_column(default=0, server_default="0")
    # Serials that appeared in committed pages and are not queued for the default profile yet:
    # written with their page, cleared with the queued request, so a worker killed in between
    # leaves them for the next synchronization instead of dropping them (portal/servers/sync.py).
    awaiting_default_profile: Mapped[list | None] = mapped_column(JSON(none_as_null=True))

    # Assign Server Configuration: the MDM URL and trusted certificates its profiles are configured with.
    configuration_id: Mapped[int | None] = mapped_column(ForeignKey("server_configuration.id", ondelete="RESTRICT"))
    configuration_assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    configuration: Mapped["ServerConfiguration | None"] = relationship(back_populates="servers")
    profiles: Mapped[list["EnrollmentProfile"]] = relationship(back_populates="server", cascade="all, delete-orphan",
                                                               passive_deletes=True, order_by="EnrollmentProfile.name")

    sync_runs: Mapped[list["SyncRun"]] = relationship(back_populates="server", cascade="all, delete-orphan",
                                                      passive_deletes=True, order_by="SyncRun.id.desc()")

    @property
    def configuration_name(self) -> str | None:
        return self.configuration.name if self.configuration else None

    def __repr__(self) -> str:
        return f"<ManagedServer {self.id} {self.name!r}>"


class PendingKeyPair(db.Model):
    """A key pair generated by the portal; its certificate goes to Apple Business Manager and the
    private key stays here (encrypted) for the tokens that come back: one certificate may be uploaded to
    several MDM servers, so it is offered to Add Server and Renew a server until the certificate expires.
    Each server using it keeps its own encrypted copy of the key (key_ciphertext)."""

    __tablename__ = "pending_key_pair"
    __table_args__ = IDS_NEVER_REUSED
    __encrypted__ = ("key_ciphertext",)

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(120))
    certificate_pem: Mapped[str] = mapped_column(Text)
    key_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    # The server last added or renewed with it. Which servers use it is read from their keys instead
    # (portal.servers.services.key_pair_users): several may, and one renewed with another key no longer does.
    used_by_server_id: Mapped[int | None] = mapped_column(ForeignKey("managed_server.id", ondelete="SET NULL"))


from .configuration import ServerConfiguration  # noqa: E402  (relationship targets)
from .profile import EnrollmentProfile  # noqa: E402
from .sync import SyncRun  # noqa: E402
