"""Delete server: what goes with a managed server, counted for the confirmation and the activity log."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from ..devices.counts import current_counts
from ..extensions import db
from ..models import AssignmentBatch, Device, EnrollmentProfile, ManagedServer
from ..models.assignment import RELEASE


def counted(n: int, word: str) -> str:
    """'1 device', '2 devices', '1,000 devices'."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class DeletionScope:
    """What deleting a server also deletes here (nothing changes at Apple)."""

    devices: int
    profiles: int
    configured: int  # profiles Apple holds a copy of (they have Apple's UUID)
    associated: int  # current devices associated with those profiles: they keep Apple's profile
    requests: int  # Add Devices / Remove Devices requests, with their per-device results
    releases: int = 0  # Release Devices requests: named apart, since they are not Add Devices ones

    def parts(self) -> list[str]:
        """What goes with the server, in words: '25 devices', 'its synchronization history', ..."""
        parts = [counted(self.devices, "device"), "its synchronization history"]
        if self.profiles:
            configured = f" ({self.configured:,} configured at Apple)" if self.configured else ""
            parts.append(f"its {counted(self.profiles, 'enrollment profile')}{configured}")
        for n, word in ((self.requests, "Add Devices / Remove Devices request"),
                        (self.releases, "Release Devices request")):
            if n:
                parts.append(f"its {counted(n, word)} with {'its' if n == 1 else 'their'} results")
        return parts

    def summary(self, name: str) -> str:
        """The activity log's line: the server and everything that went with it."""
        parts = self.parts()
        text = f"Deleted managed server {name} with {', '.join(parts[:-1])} and {parts[-1]}"
        if self.associated:
            text += (f"; {counted(self.associated, 'associated device')} "
                     f"{'keep' if self.associated != 1 else 'keeps'} Apple's profile until it is removed from "
                     f"{'them' if self.associated != 1 else 'it'}")
        return text

    def details(self) -> dict:
        return {"devices": self.devices, "profiles": self.profiles, "configured_profiles": self.configured,
                "associated_devices": self.associated, "requests": self.requests,
                "release_requests": self.releases}


def deletion_scope(server: ManagedServer) -> DeletionScope:
    """Count what goes with the server: a few grouped queries, whatever its size."""
    profile_ids = select(EnrollmentProfile.id).where(EnrollmentProfile.server_id == server.id).scalar_subquery()
    profiles, configured = db.session.execute(
        select(func.count(), func.count(EnrollmentProfile.apple_profile_uuid))
        .where(EnrollmentProfile.server_id == server.id)).one()
    associated = db.session.execute(select(func.count()).select_from(Device).where(
        Device.server_id == server.id, Device.removed_at.is_(None), Device.profile_id.in_(profile_ids))).scalar_one()
    by_action = dict(db.session.execute(select(AssignmentBatch.action, func.count())
                                        .where(AssignmentBatch.server_id == server.id)
                                        .group_by(AssignmentBatch.action)).all())
    releases = by_action.pop(RELEASE, 0)
    return DeletionScope(devices=current_counts(server.id).get(server.id, 0), profiles=profiles,
                         configured=configured, associated=associated, requests=sum(by_action.values()),
                         releases=releases)

