"""One Add Devices / Remove Devices job per managed server talks to Apple at a time.

Two requests of one server run by two workers could otherwise reach Apple out of order: when an
admin moves a device to another profile while the older request's call with that device is still
at Apple, the newer call may arrive first, and Apple then keeps the older profile while the portal
records the newer one. The newer request already replaces the older one's tasks when it is made
(services._supersede_older); taking turns also makes it wait until the older call is answered.

The turn is a Redis lock, one key per server, whose value names its holder (batch id, RQ job id).
A waiting job polls it. A holder whose RQ job is no longer alive (its worker was killed) loses the
turn at once; as a last resort the key expires on its own, TTL_S after the holder last renewed it
(after every call).
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Callable

from redis.exceptions import LockError
from redis.lock import Lock
from rq import get_current_job

from ..queue import fetch_job, get_redis, job_alive

log = logging.getLogger(__name__)
TTL_S = 15 * 60       # longer than one call with all of the client's retries (about 6 minutes)
POLL_S = 0.2
WAIT_LIMIT_S = 10 * 60  # then the job ends and the batch is tried again a minute later


class TurnBusy(Exception):
    """Another request of the server kept Apple busy for longer than WAIT_LIMIT_S."""

    def __init__(self, holder_batch_id: int | None):
        super().__init__(f"request #{holder_batch_id} is being sent to Apple")
        self.holder_batch_id = holder_batch_id


class Turn:
    """The server's turn at Apple for one batch: take() (waiting if needed), renew(), release()."""

    def __init__(self, server_id: int, batch_id: int):
        job = get_current_job()
        # batch id, then the RQ job that can be checked for life (none outside a worker)
        self.token = f"{batch_id}:{job.id if job else '-'}:{uuid.uuid4().hex}"
        self.lock = Lock(get_redis(), f"ade:assignment-turn:{server_id}", timeout=TTL_S, thread_local=False)

    def take(self, on_wait: Callable[[int | None], None]) -> None:
        """Take the turn, calling on_wait(holder's batch id) whenever another holder makes this wait."""
        deadline = time.monotonic() + WAIT_LIMIT_S
        told = False
        while not self.lock.acquire(blocking=False, token=self.token):
            holder = self.lock.redis.get(self.lock.name)
            if holder is None:
                continue  # released meanwhile
            holder = holder.decode()
            batch_id, job_id = _parse(holder)
            if job_id and not job_alive(fetch_job(job_id)):
                log.warning("Assignment turn %s: holder %s is dead; taking over", self.lock.name, holder)
                try:
                    self.lock.do_release(holder)
                except LockError:
                    pass  # someone else took it meanwhile
                continue
            if time.monotonic() >= deadline:
                raise TurnBusy(batch_id)
            if not told:
                on_wait(batch_id)
                told = True
            time.sleep(POLL_S)

    def renew(self) -> None:
        """Push the expiry back (after every call); a turn lost meanwhile is only logged."""
        try:
            self.lock.reacquire()
        except LockError:
            log.warning("Assignment turn %s was lost while sending (expired or taken over)", self.lock.name)

    def release(self) -> None:
        try:
            self.lock.release()
        except LockError:
            pass  # expired or taken over: nothing of ours to release


def _parse(token: str) -> tuple[int | None, str | None]:
    """(batch id, RQ job id) of a holder's token."""
    batch, _, rest = token.partition(":")
    job_id = rest.partition(":")[0]
    return (int(batch) if batch.isdigit() else None), (job_id if job_id not in ("", "-") else None)
