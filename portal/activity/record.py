"""Recording actions in the activity log; every feature writes through record_activity()."""
from __future__ import annotations

from flask import has_request_context
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..models import ActivityEntry


def record_activity(action: str, target=None, *, summary: str = "", level: str = "info",
                    details: dict | None = None, actor: str | None = None) -> ActivityEntry:
    """Add an activity entry to the session (the caller commits with its own change).

    `target` is any model with an `id`; its label is its `name`, `username`, `serial_number` or `label`.
    The actor defaults to the signed-in admin, or "system" outside a request (jobs).
    """
    if actor is None:
        actor = current_user.username if has_request_context() and current_user.is_authenticated else "system"
    entry = ActivityEntry(
        actor=actor,
        action=action,
        object_type=getattr(target, "__tablename__", None),
        object_id=getattr(target, "id", None),
        object_label=_label(target),
        summary=summary,
        level=level,
        details=details,
    )
    db.session.add(entry)
    return entry


def _label(target) -> str | None:
    for attr in ("name", "username", "serial_number", "label"):  # label: a generated key pair
        value = getattr(target, attr, None)
        if value:
            return str(value)[:255]
    return None


RECENT_LIMIT = 20


def recent_activity(target, limit: int = RECENT_LIMIT) -> list[ActivityEntry]:
    """The latest entries about one object, newest first: the Activity card of its page (the log has them all)."""
    return list(db.session.execute(
        select(ActivityEntry).where(ActivityEntry.object_type == target.__tablename__,
                                    ActivityEntry.object_id == target.id)
        .order_by(ActivityEntry.id.desc()).limit(limit)).scalars())
