"""Assignment jobs: send one Add Devices / Remove Devices batch, and the periodic retry pass."""
from __future__ import annotations

from portal.assignments.retries import retry_due as _retry_due
from portal.assignments.runner import run_batch as _run_batch
from portal.job_guard import unless_deleted
from portal.models import AssignmentBatch


def run_batch(batch_id: int) -> dict:
    """Send a batch's devices to Apple (see portal.assignments.runner); stops if the batch is deleted."""
    return unless_deleted(AssignmentBatch, batch_id, lambda: _run_batch(batch_id))


def retry_due() -> dict:
    """Periodic (every minute): due retries and batches whose job died (see portal.assignments.retries)."""
    return _retry_due()
