"""Managed server operations: add, delete, synchronize (renewal: renewal.py; key pairs: key_pairs.py).

Views call these, then commit. Every secret is encrypted before it reaches a model.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import redis
from rq.job import Dependency
from sqlalchemy import select

from .. import vault
from ..activity.record import record_activity
from ..apple import errors as apple_errors
from ..apple.errors import format_serial
from ..apple.keys import load_private_key, private_key_to_pem
from ..apple.tokens import ServerToken, decrypt_token, read_recipient
from ..device_locks import lock_device_writes
from ..devices.counts import current_counts
from ..extensions import db
from ..models import Device, ManagedServer, PendingKeyPair, SyncRun
from ..models.sync import ACTIVE
from ..names import normalize_name, taken_name
from ..queue import enqueue, fetch_job, get_redis, job_alive, new_job_id
from ..token_status import SERVER_TAKEN
from .deletion import DeletionScope, deletion_scope
from .key_pairs import key_pair_for_certificate

DELETE_WAIT_S = 10  # for a job writing the server's devices to commit; well below web timeouts
NEW_JOB_GRACE = timedelta(minutes=2)  # a run without an RQ job yet is not taken for dead before this


class FieldErrors(Exception):
    """Validation failed; `errors` maps form field names to messages. `new_key`: the fix is a private key other
    than the one the server has (Renew a server opens "Use a new private key" for it)."""

    def __init__(self, errors: dict[str, str], *, new_key: bool = False):
        super().__init__("; ".join(errors.values()))
        self.errors, self.new_key = errors, new_key


@dataclass
class KeyChoice:
    """Where the private key for a token comes from: uploaded/pasted bytes or a pending key pair."""

    data: bytes | None = None
    password: str | None = None
    pending: PendingKeyPair | None = None
    field: str = "private_key"
    stored: bool = False  # the key the managed server already has (Renew a server without a new key)


@dataclass
class OpenedToken:
    token: ServerToken
    key_pem: bytes
    recipient: str
    pending: PendingKeyPair | None = None


NO_TOKEN = "Choose the server token file (…_smime.p7m) downloaded from Apple Business Manager."
NO_KEY = ("Provide the private key of the certificate uploaded to Apple Business Manager: choose the file or "
          "paste it.")


PASTED_KEY_FIELD = "private_key_pem"
PASTED_NOT_A_KEY = ("The pasted text is not a private key: paste the whole PEM block, from its “-----BEGIN … PRIVATE "
                    "KEY-----” line to its “-----END … PRIVATE KEY-----” line, or choose the key file instead.")


def pasted_key_words(message: str) -> str:
    """A key error said of pasted text: the loader's sentences speak of a file (one chosen under Private key file)."""
    if message.startswith(("This file is not a private key", "This file does not contain")):
        return PASTED_NOT_A_KEY
    return (message.replace("This file", "The pasted text").replace("upload a file with just one", "paste just one")
            .replace("Upload the private key", "Paste the private key"))


def read_token_upload(upload) -> bytes:
    """The chosen token file's bytes. One chosen but empty (a download cut short, a sync client's placeholder) is
    named as such: "choose the file" would send the admin looking for a file they did choose."""
    data = upload.read() if upload else b""
    if upload and not data:
        raise FieldErrors({"token": f"The file {upload.filename} is empty: download the token (…_smime.p7m) again "
                                    "from Apple Business Manager."})
    return data


def load_key(key: KeyChoice):
    """The chosen private key; FieldErrors name the field to fix (no key, a wrong password, not a key)."""
    if key.pending is not None:
        return load_private_key(vault.decrypt(key.pending.key_ciphertext))
    if not key.data or not key.data.strip():
        raise FieldErrors({key.field: NO_KEY})
    try:
        return load_private_key(key.data, key.password or None)
    except (apple_errors.PasswordRequired, apple_errors.WrongPassword) as exc:
        raise FieldErrors({"password": str(exc)}) from None
    except apple_errors.PrivateKeyError as exc:
        raise FieldErrors({key.field: pasted_key_words(str(exc)) if key.field == PASTED_KEY_FIELD
                           else str(exc)}) from None


def check_token_file(token_file: bytes) -> None:
    """FieldErrors unless the file is an Apple server token (read without a key: which certificate it is for)."""
    try:
        read_recipient(token_file)
    except apple_errors.TokenFileError as exc:
        raise FieldErrors({"token": str(exc)}) from None


def open_token(token_file: bytes, key: KeyChoice) -> OpenedToken:
    """Decrypt an uploaded token with the chosen key; FieldErrors name the field to fix."""
    if not token_file:
        raise FieldErrors({"token": NO_TOKEN})
    private_key = load_key(key)
    try:
        token = decrypt_token(token_file, private_key)
    except apple_errors.WrongRecipient as exc:
        pair = key_pair_for_certificate(exc.serial)
        if pair is not None and pair is not key.pending:  # the key is here: name it rather than a bare serial number
            if key.stored:  # Renew a server, no key given
                raise FieldErrors({"token": (
                    f"This server token was encrypted for the certificate of the key pair “{pair.label}”, generated "
                    "here, not for the private key this managed server already has: choose "
                    f"“Generated here: {pair.label}” under “Use a new private key”.")}, new_key=True) from None
            raise FieldErrors({"token": (
                f"This server token was encrypted for the certificate of the key pair “{pair.label}”, generated here, "
                f"not for the key given: choose “Generated here: {pair.label}” as the private key (and no key "
                "file or pasted key).")}, new_key=True) from None
        if not key.stored:
            raise FieldErrors({"token": str(exc)}) from None
        # The admin gave no key: say which one was tried and where to give the right one.
        raise FieldErrors({"token": (
            "This server token cannot be decrypted with the private key this managed server already has: it was "
            f"encrypted for the certificate issued by \"{exc.issuer}\" with serial number {format_serial(exc.serial)}. "
            "Give the private key of that certificate under “Use a new private key”.")}, new_key=True) from None
    except apple_errors.TokenFileError as exc:
        raise FieldErrors({"token": str(exc)}) from None
    if token.is_expired():  # Apple refuses it: a server that could never synchronize
        raise FieldErrors({"token": expired_message(token)})
    issuer, serial = read_recipient(token_file)
    return OpenedToken(token=token, key_pem=private_key_to_pem(private_key), pending=key.pending,
                       recipient=f"{issuer}, serial {format_serial(serial)}")


def expired_message(token: ServerToken) -> str:
    """What an admin reads next to the token field for a token past its expiry."""
    return (f"This token expired on {token.access_token_expiry:%Y-%m-%d}: download a new one for this MDM server "
            "in Apple Business Manager.")


def connected_elsewhere(consumer_key: str, server_id: int | None = None) -> str | None:
    """The name of the managed server (other than `server_id`) whose token has this consumer key.

    One the account check found Already Connected does not hold it: the server it named does."""
    return db.session.execute(select(ManagedServer.name).where(
        ManagedServer.consumer_key == consumer_key, ManagedServer.id != (server_id or 0),
        ManagedServer.apple_state.is_distinct_from(SERVER_TAKEN)).limit(1)).scalar()


def already_connected(holder: str) -> FieldErrors:
    """The token field's error for an Apple MDM server another managed server holds (it would get its devices)."""
    return FieldErrors({"token": f"This token's Apple MDM server is already connected as “{holder}”. "
                                 "To give it a new token, use Renew a server there."})


def add_server(name: str, opened: OpenedToken) -> ManagedServer:
    """Create a managed server from a decrypted token (the caller commits, then calls after_add)."""
    name = normalize_name(name)
    taken = taken_name(ManagedServer.name, name)
    if taken is not None:
        raise FieldErrors({"name": f"A managed server named “{taken}” already exists. Choose another name."})
    holder = connected_elsewhere(opened.token.consumer_key)
    if holder is not None:
        raise already_connected(holder)
    server = ManagedServer(name=name, token_expiry=opened.token.access_token_expiry,
                           consumer_key=opened.token.consumer_key)
    store_secrets(server, opened)
    db.session.add(server)
    db.session.flush()
    if opened.pending is not None:
        opened.pending.used_by_server_id = server.id
    from ..apple_link import status_of

    server.token_status = status_of(server).key
    record_activity("server.added", server, summary=f"Added managed server {name} (token expires "
                    f"{server.token_expiry:%Y-%m-%d}, status {status_of(server).label})")
    return server


def store_secrets(server: ManagedServer, opened: OpenedToken) -> None:
    """Encrypt the token and its private key onto the server."""
    server.token_ciphertext = vault.encrypt(opened.token.to_json())
    server.key_ciphertext = vault.encrypt(opened.key_pem)
    server.certificate_subject = opened.recipient[:500]


def after_add(server: ManagedServer, actor: str | None) -> None:
    """Jobs that follow a new server: account details, then a first synchronization if possible."""
    account_job = request_account(server)
    from ..apple_link import status_of

    if status_of(server).can_sync:
        start_sync(server, trigger="added", actor=actor, after_job=account_job)


def request_account(server: ManagedServer) -> str:
    """Fetch the account details from Apple in a job; returns the job id."""
    job_id = new_job_id()
    server.account_job_id = job_id
    db.session.commit()
    enqueue("jobs.servers.fetch_account", server.id, job_id=job_id)
    return job_id


def delete_server(server: ManagedServer) -> DeletionScope:
    """Delete a managed server with its devices, history, profiles and requests (the caller commits).

    Waits a few seconds at most for a sync or Add Devices job writing its devices to commit;
    raises device_locks.Busy (nothing deleted) when they take longer.
    """
    lock_device_writes(server.id, timeout_s=DELETE_WAIT_S)
    scope = deletion_scope(server)  # counted under the lock: no job adds to it meanwhile
    record_activity("server.deleted", server, level="warning", summary=scope.summary(server.name),
                    details=scope.details())
    db.session.execute(Device.__table__.delete().where(Device.server_id == server.id))
    db.session.delete(server)
    return scope


def active_run(server: ManagedServer) -> SyncRun | None:
    """The queued or running sync of a server, if any."""
    return db.session.execute(
        select(SyncRun).where(SyncRun.server_id == server.id, SyncRun.status.in_(ACTIVE))
        .order_by(SyncRun.id.desc()).limit(1)).scalar_one_or_none()


def latest_run(server: ManagedServer) -> SyncRun | None:
    """The server's newest sync run, as the pages show it.

    A run left active by a job that will never finish it (its worker killed outright, the job
    lost with Redis) is closed as interrupted here, so no page polls a sync that cannot progress.
    """
    run = db.session.execute(select(SyncRun).where(SyncRun.server_id == server.id)
                             .order_by(SyncRun.id.desc()).limit(1)).scalar_one_or_none()
    if run is not None and run.active and _close_if_dead(run):
        db.session.commit()
    return run


def _close_if_dead(run: SyncRun) -> bool:
    """Mark an active run interrupted when no live job will finish it; True if it was.

    A run waiting for its retry is alive through its job, which rq-scheduler holds as 'scheduled'."""
    job = fetch_job(run.job_id)
    if job_alive(job):
        return False
    now = datetime.now(timezone.utc)
    # Its request may be between its commit and its enqueue; so may a Retry now (retry_sync_now), whose retry time
    # it sets to the moment it was pressed.
    started = [t for t in (run.created_at, run.retry_at) if t and t <= now]
    if job is None and started and max(started) > now - NEW_JOB_GRACE:
        return False
    run.status, run.finished_at = "failed", now
    run.error_code, run.error_message = "interrupted", "The worker stopped before the run ended; a new run resumes it."
    return True


def retry_sync_now(run: SyncRun, actor: str | None) -> bool:
    """Run a synchronization waiting to be retried now rather than at its retry time (Synchronize pressed while
    it waits: Apple may be back). Its scheduled job is taken from rq-scheduler first, so that only one job ever
    runs it; False when rq-scheduler had already handed it to a worker (it is starting anyway)."""
    from rq_scheduler import Scheduler

    if not run.retry_scheduled:
        return False
    scheduler = Scheduler(queue_name="default", connection=get_redis())
    if not get_redis().zrem(scheduler.scheduled_jobs_key, run.job_id):
        return False
    # Until the new job is in the queue, a poll of the run must not take it for one whose job died
    # (_close_if_dead): the old job is deleted only once the new one is there, and the retry time, now, gives the
    # new job the grace a new run gets.
    scheduled = fetch_job(run.job_id)
    run.job_id, run.retry_at = new_job_id(), datetime.now(timezone.utc)
    record_activity("server.sync_requested", run.server, actor=actor,
                    summary=f"Synchronization of {run.server.name} retried now, before its retry time")
    db.session.commit()
    enqueue("jobs.sync.sync_server", run.id, job_id=run.job_id, job_timeout=6 * 3600)
    if scheduled is not None:
        scheduled.delete()
    return True


def start_sync(server: ManagedServer, trigger: str, actor: str | None, *, full: bool = False,
               after_job: str | None = None) -> tuple[SyncRun, bool]:
    """Start a sync unless one is running; returns (the run, whether it was started now).
    `full`: read every device again, not only Apple's changes (Full synchronization).
    `after_job`: an account check just queued: the sync waits for it to end (whatever its outcome), so that
    a token it finds refused, or an Apple server another managed server holds, is never synchronized by a
    second worker in the meantime (the sync checks the token's status when it starts)."""
    run = active_run(server)
    if run is not None and not _close_if_dead(run):
        return run, False
    lock = get_redis().set(f"portal:sync-start:{server.id}", "1", nx=True, ex=30)
    if not lock:  # another request is starting one this instant
        db.session.commit()
        return active_run(server), False
    try:
        db.session.commit()  # a fresh snapshot: a request that held the lock a moment ago may have started one
        started_meanwhile = active_run(server)
        if started_meanwhile is not None:
            return started_meanwhile, False
        run = SyncRun(server_id=server.id, job_id=new_job_id(), trigger=trigger, actor=actor, full_requested=full)
        db.session.add(run)
        what = "Full synchronization" if full else "Synchronization"
        record_activity("server.sync_requested", server, summary=f"{what} of {server.name} requested ({trigger})",
                        actor=actor)
        db.session.commit()
        waits = {"depends_on": Dependency(jobs=[after_job], allow_failure=True)} if after_job else {}
        enqueue("jobs.sync.sync_server", run.id, job_id=run.job_id, job_timeout=6 * 3600, **waits)
    finally:
        get_redis().delete(f"portal:sync-start:{server.id}")
    return run, True


def device_counts(server_id: int | None = None) -> dict[int, int]:
    """Devices currently assigned, per server (kept by the writers; one server's when polling a row)."""
    return current_counts(server_id)


def redis_available() -> bool:
    """True when background work can be queued."""
    try:
        return bool(get_redis().ping())
    except (redis.RedisError, OSError, RuntimeError):
        return False
