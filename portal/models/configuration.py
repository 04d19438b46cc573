"""MDM server configurations: where devices enroll (URL) and which SSL certificates they trust."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import IDS_NEVER_REUSED, UTCDateTime, utcnow


class ServerConfiguration(db.Model):
    """An MDM endpoint configuration, assigned to managed servers (Assign Server Configuration)."""

    __tablename__ = "server_configuration"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    # The enrollment URL Apple hands the device during Setup Assistant (https only).
    url: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    certificates: Mapped[list["TrustedCertificate"]] = relationship(
        back_populates="configuration", cascade="all, delete-orphan", passive_deletes=True,
        order_by="TrustedCertificate.position")
    servers: Mapped[list["ManagedServer"]] = relationship(back_populates="configuration")

    def __repr__(self) -> str:
        return f"<ServerConfiguration {self.id} {self.name!r}>"


class TrustedCertificate(db.Model):
    """One SSL certificate a device must trust to reach the MDM URL (Apple's anchor_certs)."""

    __tablename__ = "trusted_certificate"
    __table_args__ = IDS_NEVER_REUSED

    id: Mapped[int] = mapped_column(primary_key=True)
    configuration_id: Mapped[int] = mapped_column(ForeignKey("server_configuration.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    subject: Mapped[str] = mapped_column(String(1000))
    issuer: Mapped[str] = mapped_column(String(1000))
    serial: Mapped[str] = mapped_column(String(100))
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    sha256: Mapped[str] = mapped_column(String(64))

    configuration: Mapped[ServerConfiguration] = relationship(back_populates="certificates")


from .server import ManagedServer  # noqa: E402  (relationship target)
