"""Key pairs generated here (Generate key pair, the Key pairs page): their certificate goes to Apple Business
Manager, their private key stays in the portal, encrypted, for the tokens that come back. Which servers use one
is read from the keys themselves."""
from __future__ import annotations

from datetime import datetime, timezone

from cryptography import x509
from sqlalchemy import select

from .. import vault
from ..activity.record import record_activity
from ..apple.certs import certificate_info
from ..apple.keys import generate_key_pair
from ..extensions import db
from ..models import ManagedServer, PendingKeyPair
from ..names import normalize_name, taken_name


def create_key_pair(common_name: str, days: int) -> PendingKeyPair:
    """Generate an RSA 2048 key and self-signed certificate; the key waits here, encrypted."""
    common_name = normalize_name(common_name)
    pair = generate_key_pair(common_name=common_name, days=days)
    info = certificate_info(pair.certificate_pem)[0]
    pending = PendingKeyPair(label=common_name, certificate_pem=pair.certificate_pem.decode(),
                             key_ciphertext=vault.encrypt(pair.private_key_pem), not_after=info.not_after)
    db.session.add(pending)
    db.session.flush()  # its id, for the activity entry's link
    record_activity("keypair.generated", pending, summary=f"Generated key pair “{common_name}” (valid {days:,} days)")
    return pending


def key_pair_name_clash(name: str) -> str | None:
    """Why a new key pair cannot have this name, naming the key pair that has it (and its servers), or None.

    Every generated key pair counts, used ones too: Add Server and Renew a server keep offering them."""
    taken = taken_name(PendingKeyPair.label, name)
    if taken is None:
        return None
    pending = db.session.execute(select(PendingKeyPair).where(PendingKeyPair.label == taken).limit(1)).scalar()
    users = key_pair_users([pending]).get(pending.id) if pending is not None else None
    used = f" (used by {', '.join(users)})" if users else ""
    return f"A key pair named “{taken}” was already generated here{used}. Choose another name."


def free_key_pair_name(base: str) -> str:
    """`base`, or the first of "base 2", "base 3"... no key pair has yet: the form's suggestion."""
    name, number = base, 1
    while taken_name(PendingKeyPair.label, name) is not None:
        number += 1
        name = f"{base} {number}"
    return name


def usable_key_pairs() -> list[PendingKeyPair]:
    """Generated key pairs whose certificate is still valid, newest first: the Private key choices of Add Server
    and Renew a server. One certificate may be uploaded to several MDM servers in Apple Business Manager, so a key
    pair stays offered once a server uses it (its private key stays here, encrypted; each server keeps its copy)."""
    return list(db.session.execute(select(PendingKeyPair).where(PendingKeyPair.not_after > datetime.now(timezone.utc))
                                   .order_by(PendingKeyPair.id.desc())).scalars())


def all_key_pairs() -> list[PendingKeyPair]:
    """Every generated key pair, newest first, expired ones too: the Key pairs page."""
    return list(db.session.execute(select(PendingKeyPair).order_by(PendingKeyPair.id.desc())).scalars())


def delete_key_pair(pending: PendingKeyPair) -> None:
    """Forget a generated key pair (the caller commits). Servers using its key keep their own encrypted copy."""
    users = key_pair_users([pending]).get(pending.id)
    keeps = "which keep their copies" if users and len(users) > 1 else "which keeps its copy"
    used = f"; still used by {', '.join(users)}, {keeps} of the key" if users else ""
    record_activity("keypair.deleted", pending, summary=f"Deleted key pair “{pending.label}”{used}")
    db.session.delete(pending)


def key_pair_for_certificate(serial: int) -> PendingKeyPair | None:
    """The usable key pair generated here whose certificate has this serial number (a token's recipient), if any.
    Generated serial numbers are random 159-bit numbers: the serial alone tells them apart."""
    for pair in usable_key_pairs():
        try:
            if x509.load_pem_x509_certificate(pair.certificate_pem.encode()).serial_number == serial:
                return pair
        except ValueError:
            continue
    return None


def key_pair_of(server: ManagedServer) -> PendingKeyPair | None:
    """The key pair generated here whose key the server uses (its certificate's expiry shows beside the token's),
    or None for a key of the admin's own. Compared by key, as key_pair_users does."""
    try:
        key = vault.decrypt(server.key_ciphertext)
    except vault.VaultError:
        return None
    for pair in all_key_pairs():
        try:
            if vault.decrypt(pair.key_ciphertext) == key:
                return pair
        except vault.VaultError:
            continue
    return None


def key_pair_users(pairs: list[PendingKeyPair]) -> dict[int, list[str]]:
    """The names of the managed servers whose private key is that of each key pair (key pair id -> names).

    Read from the keys themselves, not from a link kept on the side: a server renewed with another key drops
    out, one deleted is gone, and a server given the same key as a file counts too. Both are stored as
    private_key_to_pem wrote them, so equal keys are equal bytes. Unreadable secrets (a removed encryption key)
    match nothing."""
    keys = {}
    for pair in pairs:
        try:
            keys.setdefault(vault.decrypt(pair.key_ciphertext), []).append(pair.id)
        except vault.VaultError:
            continue
    users: dict[int, list[str]] = {}
    if not keys:
        return users
    for name, ciphertext in db.session.execute(select(ManagedServer.name, ManagedServer.key_ciphertext)
                                               .order_by(ManagedServer.name)):
        try:
            key = vault.decrypt(ciphertext)
        except vault.VaultError:
            continue
        for pair_id in keys.get(key, ()):
            users.setdefault(pair_id, []).append(name)
    return users
