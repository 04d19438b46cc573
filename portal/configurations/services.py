"""MDM server configuration operations: create, edit, delete, assign to and unassign from servers.

Views call these, then commit. Certificates are all read before anything changes, so a bad
file leaves the configuration exactly as it was.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ..activity.record import record_activity
from ..apple.certs import CertificateInfo
from ..extensions import db
from ..models import EnrollmentProfile, ManagedServer, ServerConfiguration, TrustedCertificate
from ..models.profile import CHANGED, CONFIGURED
from ..models.types import utcnow
from ..profiles.services import note_configuration_changes, note_configuration_unassigned, out_of_date_reason
from .certificates import UnreadableCertificate, certificate_status, read_certificates


class FieldErrors(Exception):
    """Validation failed; ``errors`` maps form field names to their messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(m for messages in errors.values() for m in messages))
        self.errors = errors


class InUse(Exception):
    """The configuration is assigned to managed servers and cannot be deleted."""

    def __init__(self, servers: list[ManagedServer]):
        super().__init__(", ".join(s.name for s in servers))
        self.servers = servers


@dataclass
class Upload:
    """Certificates to add: uploaded files as (filename, bytes) and pasted PEM text."""

    files: list[tuple[str, bytes]] = field(default_factory=list)
    pasted: str = ""


def read_upload(upload: Upload) -> list[CertificateInfo]:
    """Every certificate of an upload, in order; FieldErrors name each file that is not one."""
    errors: dict[str, list[str]] = {}
    found: list[CertificateInfo] = []
    for filename, data in upload.files:
        try:
            found += read_certificates(data, filename or "The file")
        except UnreadableCertificate as exc:
            errors.setdefault("certificate_files", []).append(f"{exc.source}: {exc.reason}")
    if upload.pasted.strip():
        try:
            found += read_certificates(upload.pasted.strip().encode("utf-8", "replace"), "The pasted text")
        except UnreadableCertificate as exc:
            errors.setdefault("certificates_pem", []).append(f"{exc.source}: {exc.reason}")
    if errors:
        raise FieldErrors(errors)
    return found


def _fingerprint_hex(info: CertificateInfo) -> str:
    return info.sha256.replace(":", "").lower()


def _add_certificates(configuration: ServerConfiguration, infos: list[CertificateInfo]) -> int:
    """Append certificates not already in the configuration; return how many duplicates were skipped."""
    known = {c.sha256 for c in configuration.certificates}
    position = max((c.position for c in configuration.certificates), default=-1)
    skipped = 0
    for info in infos:
        digest = _fingerprint_hex(info)
        if digest in known:
            skipped += 1
            continue
        known.add(digest)
        position += 1
        configuration.certificates.append(TrustedCertificate(
            position=position, der=info.der, subject=info.subject[:1000], issuer=info.issuer[:1000],
            serial=info.serial[:100], not_before=info.not_before, not_after=info.not_after, sha256=digest))
    return skipped


@dataclass
class Saved:
    """What a create/edit did, for the confirmation message."""

    configuration: ServerConfiguration
    added: int = 0
    removed: int = 0
    duplicates: int = 0
    # Edit: the configured profiles it put out of date at Apple (now Changed — configure again).
    outdated: list[EnrollmentProfile] = field(default_factory=list)
    # Certificates it added that are not valid today ("CN=x expired on 2020-01-01"): saved, but said at once.
    unusable: list[str] = field(default_factory=list)

    def summary(self, verb: str) -> str:
        parts = [f"Configuration {self.configuration.name} {verb}"]
        details = []
        if self.added:
            details.append(f"{self.added:,} certificate{'s' if self.added != 1 else ''} added")
        if self.removed:
            details.append(f"{self.removed:,} removed")
        if self.duplicates:
            details.append(f"{self.duplicates:,} duplicate{'s' if self.duplicates != 1 else ''} kept once")
        return parts[0] + (f" ({', '.join(details)})." if details else ".") + self.unusable_note() + self.outdated_note()

    def unusable_note(self) -> str:
        """Said when it is saved, not only by the badge on the configuration's page: a device does not trust a
        certificate that is not valid, and Configure profile would send it to Apple all the same."""
        if not self.unusable:
            return ""
        one = len(self.unusable) == 1
        return (f" {'This certificate is' if one else 'These certificates are'} not valid today: "
                f"{'; '.join(self.unusable)}. Devices will not trust {'it' if one else 'them'}: add "
                f"{'a current one' if one else 'current ones'} (and remove {'it' if one else 'them'}).")

    def outdated_note(self) -> str:
        """" 2 configured enrollment profiles on 2 servers are now Changed — configure again…", or ""."""
        if not self.outdated:
            return ""
        return " " + profiles_words(self.outdated) + (" is" if len(self.outdated) == 1 else " are") + \
            " now Changed — configure again: Apple keeps the previous version until you use Configure profile."


def _not_valid_today(certificates) -> list[str]:
    """"CN=x expired on 2020-01-01", "CN=y not valid before 2030-01-01": the certificates not valid today."""
    words = []
    for certificate in certificates:
        status = certificate_status(certificate.not_before, certificate.not_after)
        if status.key == "expired":
            words.append(f"{certificate.subject} expired on {certificate.not_after:%Y-%m-%d}")
        elif status.key == "not_yet_valid":
            words.append(f"{certificate.subject} not valid before {certificate.not_before:%Y-%m-%d}")
    return words


def profiles_words(profiles: list[EnrollmentProfile]) -> str:
    """"2 configured enrollment profiles on 2 servers" (or "1 configured enrollment profile on 1 server")."""
    servers = len({p.server_id for p in profiles})
    return (f"{len(profiles):,} configured enrollment profile{'s' if len(profiles) != 1 else ''} on "
            f"{servers:,} server{'s' if servers != 1 else ''}")


def create_configuration(name: str, url: str, upload: Upload) -> Saved:
    """A new configuration with its certificates (FieldErrors if a certificate is unreadable)."""
    infos = read_upload(upload)
    configuration = ServerConfiguration(name=name, url=url)
    db.session.add(configuration)
    duplicates = _add_certificates(configuration, infos)
    saved = Saved(configuration, added=len(infos) - duplicates, duplicates=duplicates,
                  unusable=_not_valid_today(configuration.certificates))
    db.session.flush()
    record_activity("configuration.created", configuration, summary=saved.summary("created"),
                    details={"url": url, "certificates": len(configuration.certificates)})
    return saved


def update_configuration(configuration: ServerConfiguration, name: str, url: str, upload: Upload,
                         remove_ids: list[int]) -> Saved:
    """Rename, change the URL, drop the ticked certificates and add new ones, all or nothing."""
    infos = read_upload(upload)  # first: a bad file must leave everything unchanged
    changes = {}
    if configuration.name != name:
        changes["name"] = [configuration.name, name]
    if configuration.url != url:
        changes["url"] = [configuration.url, url]
    configuration.name, configuration.url = name, url
    doomed = [c for c in configuration.certificates if c.id in set(remove_ids)]
    before = {c.sha256: c.subject for c in configuration.certificates}
    for certificate in doomed:
        configuration.certificates.remove(certificate)  # delete-orphan deletes the row
    duplicates = _add_certificates(configuration, infos)
    saved = Saved(configuration, added=len(infos) - duplicates, removed=len(doomed), duplicates=duplicates)
    if "url" in changes or saved.added or saved.removed:  # a new name changes nothing at Apple
        db.session.flush()
        # A profile Changed already (edited since it was configured) gets the new reason too, but did not become
        # Changed: it is not counted as such (the Edit pop-up's warning does not count it either).
        note_configuration_changes([s.id for s in servers_using(configuration)], into=saved.outdated, still=[])
    # What the edit changed, certificate by certificate: one ticked for removal and uploaded again stays, and is
    # neither (the log said "removed" while it was still there).
    after = {c.sha256: c.subject for c in configuration.certificates}
    saved.unusable = _not_valid_today([c for c in configuration.certificates if c.sha256 not in before])
    added_subjects = [subject for sha, subject in after.items() if sha not in before]
    removed_subjects = [subject for sha, subject in before.items() if sha not in after]
    record_activity("configuration.updated", configuration,
                    summary=_edit_summary(saved, changes, added_subjects, removed_subjects),
                    details={"changes": changes, "added": saved.added, "removed": saved.removed,
                             "added_subjects": added_subjects, "removed_subjects": removed_subjects,
                             "profiles_changed": [p.id for p in saved.outdated]})
    return saved


def _edit_summary(saved: Saved, changes: dict, added: list[str], removed: list[str]) -> str:
    """The activity log's account of an edit: what each change was, before and after (an audit trail), not only
    how many certificates it touched as the confirmation says."""
    parts = []
    if "name" in changes:
        parts.append(f"renamed from “{changes['name'][0]}”")
    if "url" in changes:
        parts.append(f"MDM server URL {changes['url'][0]} → {changes['url'][1]}")
    parts += [f"certificate {subject} added" for subject in added]
    parts += [f"certificate {subject} removed" for subject in removed]
    if saved.duplicates:
        parts.append(f"{saved.duplicates:,} duplicate certificate{'s' if saved.duplicates != 1 else ''} kept once")
    what = "; ".join(parts) if parts else "nothing changed"
    return f"Configuration {saved.configuration.name} updated: {what}." + saved.outdated_note()


def delete_configuration(configuration: ServerConfiguration) -> None:
    """Delete an unused configuration; InUse names the servers when it is still assigned."""
    users = servers_using(configuration)
    if users:
        raise InUse(users)
    record_activity("configuration.deleted", configuration, summary=f"Configuration {configuration.name} deleted",
                    details={"url": configuration.url})
    db.session.delete(configuration)


def servers_using(configuration: ServerConfiguration) -> list[ManagedServer]:
    """The managed servers the configuration is assigned to, read fresh from the database."""
    return list(db.session.execute(select(ManagedServer).where(ManagedServer.configuration_id == configuration.id)
                                   .order_by(ManagedServer.name)).scalars())


def _profiles_of_servers_using(configuration: ServerConfiguration, *statuses: str) -> list[EnrollmentProfile]:
    return list(db.session.execute(
        select(EnrollmentProfile).join(ManagedServer).where(
            ManagedServer.configuration_id == configuration.id, EnrollmentProfile.status.in_(statuses),
            EnrollmentProfile.apple_profile_uuid.is_not(None), EnrollmentProfile.configured_url.is_not(None))
        .order_by(ManagedServer.name, EnrollmentProfile.name)).scalars())


def profiles_at_stake(configuration: ServerConfiguration) -> list[EnrollmentProfile]:
    """The Configured profiles that Apple has as this configuration says now: a new MDM server URL or other
    certificates would put them out of date (Changed — configure again); a new name would not."""
    return [p for p in _profiles_of_servers_using(configuration, CONFIGURED)
            if out_of_date_reason(p, configuration) is None]


def profiles_out_of_date(configuration: ServerConfiguration) -> list[EnrollmentProfile]:
    """The Changed profiles of the servers using this configuration that Apple has with another URL or other
    certificates than it says now: Configure profile sends them again."""
    return [p for p in _profiles_of_servers_using(configuration, CHANGED)
            if out_of_date_reason(p, configuration) is not None]


def all_configurations() -> list[ServerConfiguration]:
    """Every configuration by name, with certificates and servers loaded for the list."""
    return list(db.session.execute(
        select(ServerConfiguration).options(selectinload(ServerConfiguration.certificates),
                                            selectinload(ServerConfiguration.servers))
        .order_by(ServerConfiguration.name)).scalars())


def configured_profiles_of(server: ManagedServer) -> list[EnrollmentProfile]:
    """The server's Configured profiles that Apple has with a URL (by name): another configuration than the one
    they were configured with makes them Changed — configure again, as Assign Server Configuration warns."""
    return list(db.session.execute(select(EnrollmentProfile).where(
        EnrollmentProfile.server_id == server.id, EnrollmentProfile.status == CONFIGURED,
        EnrollmentProfile.apple_profile_uuid.is_not(None), EnrollmentProfile.configured_url.is_not(None))
        .order_by(EnrollmentProfile.name)).scalars())


def names_words(profiles: list[EnrollmentProfile], limit: int = 5) -> str:
    """"Kiosks, Sales" (by name), or "Kiosks, Sales and 3 more" past `limit` names."""
    names = ", ".join(sorted(p.name for p in profiles)[:limit])
    return names + (f" and {len(profiles) - limit:,} more" if len(profiles) > limit else "")


@dataclass
class Assigned:
    """What Assign Server Configuration did to the server's profiles, for its confirmation."""

    outdated: list[EnrollmentProfile] = field(default_factory=list)  # now Changed: Apple has another URL/certificates
    still: list[EnrollmentProfile] = field(default_factory=list)  # were Changed already: the reason names this one
    restored: list[EnrollmentProfile] = field(default_factory=list)  # Configured again: Apple has this configuration
    at_stake: int = 0  # Configured profiles the assignment could have made Changed

    def note(self, configuration: ServerConfiguration) -> str:
        """" 2 enrollment profiles (Sales, Kiosks) are now Changed …", or that none became Changed."""
        if self.outdated:
            many = len(self.outdated) != 1
            them, their = ("them", "their") if many else ("it", "its")
            note = (f" {len(self.outdated):,} enrollment profile{'s' if many else ''} ({names_words(self.outdated)}) "
                    f"{'are' if many else 'is'} now Changed: Apple has {them} with another MDM server URL or other "
                    f"certificates than {configuration.name}, and keeps sending {their} devices there until you use "
                    f"Configure profile again for {'each of them' if many else 'it'}.")
        elif self.at_stake:  # said only where a profile could have become Changed
            note = " No enrollment profile became Changed."
        else:
            note = ""
        if self.still:
            many = len(self.still) != 1
            note += (f" {len(self.still):,} enrollment profile{'s' if many else ''} ({names_words(self.still)}) "
                     f"{'were' if many else 'was'} already Changed and still need{'' if many else 's'} Configure "
                     f"profile: Apple has {'them' if many else 'it'} with another MDM server URL or other "
                     f"certificates than {configuration.name}.")
        if self.restored:
            many = len(self.restored) != 1
            note += (f" {len(self.restored):,} enrollment profile{'s' if many else ''} "
                     f"({names_words(self.restored)}) {'are' if many else 'is'} Configured again: Apple has "
                     f"{'them' if many else 'it'} with this configuration's URL and certificates.")
        return note


def assign_configuration(server: ManagedServer, configuration: ServerConfiguration,
                         assigned: Assigned | None = None) -> bool:
    """Assign Server Configuration (replacing any other); False when it was already assigned. What it did to the
    server's profiles goes into `assigned` when given."""
    previous = server.configuration
    if previous is not None and previous.id == configuration.id:
        return False
    assigned = assigned if assigned is not None else Assigned()
    assigned.at_stake = len(configured_profiles_of(server))
    server.configuration = configuration
    server.configuration_assigned_at = utcnow()
    summary = f"Server configuration {configuration.name} assigned to {server.name}"
    if previous is not None:
        summary += f" (replacing {previous.name})"
    record_activity("server.configuration_assigned", server, summary=summary,
                    details={"configuration_id": configuration.id, "configuration": configuration.name,
                             "previous": previous.name if previous else None})
    note_configuration_changes([server.id], into=assigned.outdated, restored=assigned.restored, still=assigned.still)
    return True


def unassign_configuration(server: ManagedServer) -> ServerConfiguration | None:
    """Unassign Server Configuration; returns the configuration removed (None if there was none)."""
    previous = server.configuration
    if previous is None:
        return None
    server.configuration = None
    server.configuration_assigned_at = None
    outdated = note_configuration_unassigned(server.id, previous.name)
    note = (f"; {outdated:,} enrollment profile{'s' if outdated != 1 else ''} already out of date at Apple now "
            f"need{'s' if outdated == 1 else ''} a server configuration before configuring again" if outdated else "")
    record_activity("server.configuration_unassigned", server,
                    summary=f"Server configuration {previous.name} unassigned from {server.name}{note}",
                    details={"configuration_id": previous.id, "configuration": previous.name})
    return previous  # existing profiles are left as they are (BMC); configuring needs a configuration again
