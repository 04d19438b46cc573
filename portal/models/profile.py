"""Enrollment profiles: what Apple shows a device during setup, defined per managed server."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import IDS_NEVER_REUSED, UTCDateTime, utcnow

# Lifecycle: created locally, sent to Apple only by "Configure profile".
NOT_CONFIGURED = "not_configured"
CONFIGURING = "configuring"
CONFIGURED = "configured"
FAILED = "failed"
CHANGED = "changed"  # configured, then edited: Apple still has the old version
PROFILE_STATUSES = (NOT_CONFIGURED, CONFIGURING, CONFIGURED, FAILED, CHANGED)
# Apple's device_family values (reference §4, the Device record) and how the portal names them.
DEVICE_FAMILIES = {"iPhone": "iPhone", "iPad": "iPad", "Mac": "Mac", "AppleTV": "Apple TV", "Vision": "Apple Vision",
                   "iPod": "iPod"}


def family_words(families: list[str] | None) -> str:
    """"iPhone and iPad", or "every device family" for a default profile without families."""
    names = [DEVICE_FAMILIES.get(f, f) for f in families or []]
    if not names:
        return "every device family"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


class EnrollmentProfile(db.Model):
    """A managed server's enrollment profile and its state at Apple."""

    __tablename__ = "enrollment_profile"
    __table_args__ = (UniqueConstraint("server_id", "name", name="uq_enrollment_profile_server_name"),
                      IDS_NEVER_REUSED)

    id: Mapped[int] = mapped_column(primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("managed_server.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(125))  # Apple's profile_name
    # Portal-side (BMC's "Organization"): Apple shows the organisation from Apple Business Manager.
    organization: Mapped[str | None] = mapped_column(String(255))
    department: Mapped[str | None] = mapped_column(String(125))
    support_email: Mapped[str | None] = mapped_column(String(250))
    support_phone: Mapped[str | None] = mapped_column(String(50))
    is_mdm_removable: Mapped[bool] = mapped_column(default=True)
    # Advanced: Apple's other profile settings.
    is_supervised: Mapped[bool] = mapped_column(default=True)
    is_mandatory: Mapped[bool] = mapped_column(default=False)
    await_device_configured: Mapped[bool] = mapped_column(default=False)
    allow_pairing: Mapped[bool] = mapped_column(default=True)
    auto_advance_setup: Mapped[bool] = mapped_column(default=False)
    is_multi_user: Mapped[bool] = mapped_column(default=False)
    language: Mapped[str | None] = mapped_column(String(8))
    region: Mapped[str | None] = mapped_column(String(8))
    skip_setup_items: Mapped[list | None] = mapped_column(JSON)
    configuration_web_url: Mapped[str | None] = mapped_column(String(2000))
    # Devices new to the server (sync "added", or "modified" and unknown) get this profile: those of
    # default_families only, or (NULL) of every family that no other default profile of the server names.
    is_default: Mapped[bool] = mapped_column(default=False)
    default_families: Mapped[list | None] = mapped_column(JSON(none_as_null=True))

    @property
    def default_label(self) -> str:
        """"Default for new devices", "Default for new iPhone and iPad devices", or for the default of every family
        beside defaults for some, "Default for new devices other than iPhone and iPad"; "" if not a default."""
        if not self.is_default:
            return ""
        if self.default_families:
            return f"Default for new {family_words(self.default_families)} devices"
        others = self.families_of_other_defaults
        if self.others_take_every_family:
            return "Default for new devices Apple reports without a device family (other defaults take every family)"
        return "Default for new devices" + (f" other than {family_words(others)}" if others else "")

    @property
    def others_take_every_family(self) -> bool:
        """A default for every family whose server's other defaults name each family: only devices Apple reports
        without a family are left to it, which its label and the profile list say rather than "other families"."""
        return len(self.families_of_other_defaults) == len(DEVICE_FAMILIES)

    @property
    def families_of_other_defaults(self) -> list[str]:
        """The families the server's other default profiles take from this one (a default for every family)."""
        if not self.is_default or self.default_families or self.server_id is None:
            return []
        taken = set()
        for families in db.session.execute(select(EnrollmentProfile.default_families).where(
                EnrollmentProfile.server_id == self.server_id, EnrollmentProfile.id != self.id,
                EnrollmentProfile.is_default.is_(True))).scalars():
            taken.update(families or [])
        return [family for family in DEVICE_FAMILIES if family in taken]

    status: Mapped[str] = mapped_column(String(20), default=NOT_CONFIGURED)
    status_detail: Mapped[str | None] = mapped_column(Text)  # failure reason in plain words
    apple_profile_uuid: Mapped[str | None] = mapped_column(String(64), index=True)
    configured_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    configured_url: Mapped[str | None] = mapped_column(String(2000))  # URL sent at the last configure
    # SHA-256 fingerprints of the anchor certificates sent then, sorted and comma-separated ("" for none).
    configured_certificates: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    server: Mapped["ManagedServer"] = relationship(back_populates="profiles")

    def __repr__(self) -> str:
        return f"<EnrollmentProfile {self.id} {self.name!r} {self.status}>"


from .server import ManagedServer  # noqa: E402  (relationship target)
