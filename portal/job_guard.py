"""Jobs whose subject is deleted while they run (an admin deletes a server mid-sync, or with
its Add Devices request under way) stop quietly instead of failing with a traceback.

The rows vanish under the job: SQLAlchemy then raises ObjectDeletedError or StaleDataError, or
the database refuses a row pointing at them (IntegrityError). Such an error counts as "deleted"
only when the subject's row is really gone; anything else is raised as usual.
"""
from __future__ import annotations

import logging
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

from .extensions import db

log = logging.getLogger(__name__)


def unless_deleted(model, row_id: int, work: Callable[[], dict]) -> dict:
    """`work()`, or a "skipped" result when the `model` row `row_id` was deleted meanwhile."""
    try:
        return work()
    except (ObjectDeletedError, StaleDataError, IntegrityError):
        db.session.rollback()
        if db.session.execute(select(model.id).where(model.id == row_id)).first() is not None:
            raise
        log.info("%s %s was deleted while its job ran; stopped", model.__name__, row_id)
        return {"skipped": f"{model.__tablename__} {row_id} was deleted while the job ran"}
