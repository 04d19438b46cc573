"""Synchronizing a managed server's devices from Apple, page by page.

The first run (or one after Apple expired or rejected the cursor) fetches every device; later
runs ask only for changes since the stored cursor. Pages' devices and the cursor after them are
committed in one transaction, so a crash loses nothing and skips nothing: the next run starts
again from the last committed page. Consecutive pages share a transaction for up to
COMMIT_EVERY_S seconds: a page of random serials touches most leaf pages of every serial index,
and writing those out once per page cost more than the inserts. While a page is written, the next
ones are already being fetched (page_feed.py), so the database work hides behind the wait for Apple.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

from ..activity.record import record_activity
from ..apple import errors as apple_errors
from ..apple_link import client_for, note_apple_error, note_apple_success, status_of
from ..devices.counts import recount
from ..devices.store import mark_missing_removed, prepare_page, write_page
from ..extensions import db
from ..models import ManagedServer, SyncRun
from .page_feed import PageFeed
from .sync_notices import clear_notice, sleep_with_notice

log = logging.getLogger(__name__)
PAGE_LIMIT = 1000
COMMIT_EVERY_S = 1.0


class SyncAborted(Exception):
    """The server cannot be synchronized now (expired token, Apple-reported problem)."""


def run_sync(run_id: int, client=None) -> dict:
    """Perform the sync run `run_id` (a job body); safe to run twice."""
    run = db.session.get(SyncRun, run_id)
    if run is None or run.status not in ("queued", "running"):
        return {"skipped": True}
    server = run.server
    run.status, run.started_at, run.retry_at = "running", _now(), None
    db.session.commit()
    try:
        status = status_of(server)
        if not status.can_sync:
            raise SyncAborted(f"{status.label}: {status.remedy}")
        try:
            notice = sleep_with_notice(run.id)
            _sync_pages(server, run, client or client_for(server, sleep=notice, on_retry=notice.note))
        finally:
            clear_notice(run.id)
        note_apple_success(server)
        _finish(run, "succeeded")
    except SyncAborted as exc:
        _finish(run, "failed", code="not_syncable", message=str(exc))
    except (apple_errors.TransientError, apple_errors.Throttled) as exc:
        db.session.rollback()
        if not _retry_later(run, exc):
            _finish(run, "failed", code=exc.code or "unavailable", message=exc.message)
    except apple_errors.AppleError as exc:
        db.session.rollback()
        note_apple_error(server, exc)
        _finish(run, "failed", code=exc.code or type(exc).__name__, message=exc.message)
    except Exception:
        db.session.rollback()
        _finish(run, "failed", code="internal_error",
                message="The synchronization stopped on an unexpected error; the next run resumes where it stopped.")
        raise  # RQ's failed registry keeps the traceback
    return {"status": run.status, "added": run.added, "updated": run.updated, "removed": run.removed}


def _sync_pages(server: ManagedServer, run: SyncRun, client) -> None:
    if run.full_requested and run.pages == 0:
        # Full synchronization, not started yet (a retry after some pages carries on with its fetch):
        # forget the changes cursor, so the fetch below reads every device and marks the ones Apple
        # no longer lists as removed.
        server.sync_cursor, server.fetch_complete = None, False
    phase = "sync" if server.fetch_complete and server.sync_cursor else "fetch"
    if phase == "fetch" and not server.sync_cursor:
        server.fetch_generation += 1  # a fresh full fetch: everything not seen again gets removed
    run.kind = "incremental" if phase == "sync" else "full"
    db.session.commit()
    if server.awaiting_default_profile:  # left by a worker killed after a page's commit
        _assign_default_profile(server, server.awaiting_default_profile)

    server_id, dialect = server.id, db.session.get_bind().dialect.name  # plain values for the feed's threads

    def fetch(which: str, cursor: str | None):
        if which == "fetch":
            return client.fetch_devices(cursor, limit=PAGE_LIMIT)
        return client.sync_devices(cursor, limit=PAGE_LIMIT)

    def prepare(page, generation: int):
        return prepare_page(server_id, page.devices, generation, _now(), dialect)

    last_commit = time.monotonic()

    def commit_while_apple_is_slow() -> None:
        # The pages stored so far are committed rather than kept in an open transaction while Apple
        # takes its time: on SQLite that transaction holds the database's only write lock, and every
        # other writer (an admin's edit, an Add Devices request) would wait for Apple too.
        nonlocal last_commit
        db.session.commit()
        last_commit = time.monotonic()

    appeared: list[str] = []  # serials new to the server since the last commit (default profile)
    # The first full fetch finds the server's existing fleet; once one has completed, a device it
    # did not know is a new arrival, in Apple's changes or in a fetch again after a cursor expired.
    fleet_known = server.fetch_complete or server.fetch_generation > 1
    with PageFeed(fetch, prepare) as feed:
        feed.start(phase, server.sync_cursor, server.fetch_generation)
        while True:
            try:
                page, prepared = feed.next(on_wait=commit_while_apple_is_slow)
            except (apple_errors.CursorExhausted, apple_errors.CursorExpired, apple_errors.CursorInvalid) as exc:
                if isinstance(exc, apple_errors.CursorExhausted) and phase == "fetch":
                    # The fetch had already returned everything (a run stopped after its last page):
                    # finish it, removals included, then continue with changes since then.
                    run.removed += mark_missing_removed(server.id, server.fetch_generation, _now())
                    phase, server.fetch_complete = "sync", True
                    db.session.commit()
                    feed.start(phase, server.sync_cursor, server.fetch_generation)
                    continue
                # Expired or invalid; or exhausted in a sync (Apple lists it there too), where asking
                # again with the same cursor would only get the same answer, forever.
                log.info("server %s: cursor refused by Apple, fetching every device again", server.id)
                phase, run.kind = "fetch", "full"
                server.sync_cursor, server.fetch_complete = None, False
                server.fetch_generation += 1
                db.session.commit()
                feed.start(phase, None, server.fetch_generation)
                continue
            except Exception:
                db.session.commit()  # keep the pages already stored (with their cursor), then fail
                if appeared:  # known from now on: the retry would not find them new
                    _assign_default_profile(server, appeared)
                raise
            new_serials = _store_page(server, run, page, prepared)
            if (phase == "sync" or fleet_known) and new_serials:
                appeared += new_serials
                server.awaiting_default_profile = list(appeared)  # committed with the page
            if page.more_to_follow and time.monotonic() - last_commit < COMMIT_EVERY_S:
                continue
            db.session.commit()  # devices and cursor together: never one without the other
            last_commit = time.monotonic()
            if appeared:
                _assign_default_profile(server, appeared)
                appeared = []
            if page.more_to_follow:
                continue
            if phase == "fetch":
                run.removed += mark_missing_removed(server.id, server.fetch_generation, _now())
                server.fetch_complete = True
                db.session.commit()
                phase = "sync"
                feed.start(phase, server.sync_cursor, server.fetch_generation)
                continue
            break
    if run.removed:
        from ..assignments.retries import close_for_removed_devices

        close_for_removed_devices(server)
    # The pages kept the server's device count; one exact count per run repairs any drift (an
    # older worker still running during an upgrade, say) without a full fetch.
    recount(server.id)


def _store_page(server: ManagedServer, run: SyncRun, page, prepared) -> list[str]:
    counts = write_page(prepared)
    run.pages += 1
    run.devices_seen += len(page.devices)
    run.added += counts.added
    run.updated += counts.updated
    run.removed += counts.removed
    if page.cursor:
        server.sync_cursor, server.sync_cursor_at = page.cursor, prepared.now
    return counts.new_serials or []


def _assign_default_profile(server: ManagedServer, serials: list[str]) -> None:
    """Devices that appeared in Apple's changes get the server's default profile, if it has one.
    A failure here is recorded and never stops the sync: the devices are stored either way.

    The serials wait in server.awaiting_default_profile, committed with their page; clearing it
    commits with the queued request (or with the report of why there is none).
    """
    from ..assignments.auto import assign_to_default_profile

    serials = list(serials)
    server.awaiting_default_profile = None
    try:
        assign_to_default_profile(server.id, serials)
        db.session.commit()  # no request (no default profile, no current device): clear the wait alone
    except Exception:  # noqa: BLE001 - reported, and the admin can still Add Devices by hand
        log.exception("server %s: default profile assignment failed", server.id)
        db.session.rollback()
        server.awaiting_default_profile = None
        record_activity("server.default_profile_failed", server, level="error", actor="system",
                        summary=f"{len(serials):,} new device{'s' if len(serials) != 1 else ''} of {server.name} could not be queued for the "
                                f"default profile; use Add Devices on the profile")
        db.session.commit()


RETRY_DELAYS = (60, 300, 1800)


def _retry_later(run: SyncRun, error: Exception) -> bool:
    """Apple kept failing even after the client's own retries: try the run again later."""
    if run.retries >= len(RETRY_DELAYS):
        return False
    from ..queue import new_job_id, schedule_in

    # Throttled: never sooner than Apple asked.
    delay = max(RETRY_DELAYS[run.retries], getattr(error, "retry_after", 0))
    run.job_id = new_job_id()
    run.retries += 1
    run.status, run.retry_at = "queued", _now() + timedelta(seconds=delay)
    retry = f"retry {run.retries} of {len(RETRY_DELAYS)} in {delay:,} s"
    if isinstance(error, apple_errors.ClockSkew):  # not Apple's doing: say what to fix first
        run.error_code, run.error_message = "clock_skew", f"{error} ({retry[0].upper()}{retry[1:]}.)"
    else:
        run.error_code, run.error_message = None, f"Apple is unavailable or busy; {retry}. ({error})"
    record_activity("server.sync_retry", run.server, level="warning", actor="system", summary=run.error_message,
                    details={"run_id": run.id})
    db.session.commit()
    schedule_in(delay, "jobs.sync.sync_server", run.id, job_id=run.job_id)
    return True


def _finish(run: SyncRun, status: str, *, code: str | None = None, message: str | None = None) -> None:
    run.status, run.finished_at = status, _now()
    run.error_code, run.error_message = code, message
    server = run.server
    if status == "succeeded":
        summary = (f"Synchronized {server.name}: {run.added:,} added, {run.updated:,} updated, "
                   f"{run.removed:,} removed ({run.kind})")
        record_activity("server.synchronized", server, summary=summary, actor="system",
                        details={"run_id": run.id, "pages": run.pages, "devices": run.devices_seen})
    else:
        record_activity("server.sync_failed", server, level="error", actor="system",
                        summary=f"Synchronization of {server.name} failed: {message}",
                        details={"run_id": run.id, "code": code})
    db.session.commit()


def _now() -> datetime:
    return datetime.now(timezone.utc)
