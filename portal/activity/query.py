"""The activity log's filters (who, level, action, kind of object, one object, text), read from the URL so
every filtered view is a bookmark, and the link of each entry's object."""
from __future__ import annotations

from dataclasses import dataclass

from flask import url_for
from sqlalchemy import false, func, select

from ..converters import small_int
from ..extensions import db
from ..models import (ActivityEntry, AssignmentBatch, EnrollmentProfile, ManagedServer, PendingKeyPair,
                      ServerConfiguration)
from ..typed_text import control_characters, controls_message
from .labels import ACTION_LABELS

LEVELS = ("info", "warning", "error")
# object_type (a table name) → (what an admin calls it, the model, the page of one). No entry is recorded for one
# device (a device's history is its page's assignment history): the Object filter offers no Devices, found empty.
KINDS = {
    "managed_server": ("Managed servers", ManagedServer, "servers.detail", "server_id"),
    "enrollment_profile": ("Enrollment profiles", EnrollmentProfile, "profiles.detail", "profile_id"),
    "server_configuration": ("Server configurations", ServerConfiguration, "configurations.detail", "configuration_id"),
    "assignment_batch": ("Add Devices / Remove Devices / Release Devices requests", AssignmentBatch, "assignments.batch", "batch_id"),
    # A generated key pair's link is its row of the Key pairs page.
    "pending_key_pair": ("Generated key pairs", PendingKeyPair, "servers.key_pair", "key_id"),
    "admin": ("Admins", None, None, None),
}
TEXT_LIMIT = 100


def _object_id(value, kind: str) -> int | None:
    """The one object's id: "5" (a link of the log), or "managed_server:5" as the filter form carries it, which
    counts only while the Object select still names that kind: another choice there means every object of it,
    not the object of the same number in another table."""
    value = _text(value)
    if ":" in value:
        object_kind, _, value = value.partition(":")
        if object_kind != kind:
            return None
    return small_int(value)


@dataclass(frozen=True)
class ActivityQuery:
    actor: str = ""
    level: str = ""
    kind: str = ""
    object_id: int | None = None
    q: str = ""
    action: str = ""  # one action code (labels.ACTION_LABELS)

    @classmethod
    def from_args(cls, args) -> "ActivityQuery":
        """Unknown values are ignored (a hand-edited URL shows the whole log, never an error)."""
        level = args.get("level", "")
        kind = args.get("kind", "")
        action = args.get("action", "")
        return cls(actor=_text(args.get("actor")).strip()[:80], level=level if level in LEVELS else "",
                   kind=kind if kind in KINDS else "",
                   object_id=_object_id(args.get("object"), kind) if kind in KINDS else None,
                   q=" ".join(_typed(args.get("q")).split())[:TEXT_LIMIT],
                   action=action if action in ACTION_LABELS else "")

    @property
    def is_filtered(self) -> bool:
        return bool(self.actor or self.level or self.kind or self.q or self.action)

    @property
    def q_problem(self) -> str:
        """Why the search matches nothing (control characters, which no entry holds and PostgreSQL refuses
        as NUL in a query), for the page to say; "" when it can match."""
        found = control_characters(self.q)
        return controls_message(found, "The search") if found else ""

    def to_args(self) -> dict:
        args = {"actor": self.actor, "level": self.level, "kind": self.kind, "object": self.object_id, "q": self.q,
                "action": self.action}
        return {k: v for k, v in args.items() if v not in (None, "")}

    def statement(self):
        conditions = []
        if self.actor:
            conditions.append(ActivityEntry.actor == self.actor)
        if self.level:
            conditions.append(ActivityEntry.level == self.level)
        if self.action:
            conditions.append(ActivityEntry.action == self.action)
        if self.kind:
            conditions.append(ActivityEntry.object_type == self.kind)
            if self.object_id is not None:
                conditions.append(ActivityEntry.object_id == self.object_id)
        if self.q_problem:
            conditions.append(false())
        elif self.q:
            pattern = "%" + self.q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conditions.append(func.lower(ActivityEntry.summary).like(pattern, escape="\\"))
        return (select(ActivityEntry).where(*conditions)
                .order_by(ActivityEntry.created_at.desc(), ActivityEntry.id.desc()))


def _typed(value) -> str:
    """Typed text as it was typed (a non-text value: "")."""
    return value if isinstance(value, str) else ""


def _text(value) -> str:
    """Typed text as the database can compare it: PostgreSQL refuses NUL in any text parameter."""
    return value.replace("\x00", "") if isinstance(value, str) else ""


def actors() -> list[str]:
    """Everyone who did something (admins and "system"), for the Who filter."""
    return [a for a in db.session.execute(select(ActivityEntry.actor).distinct().order_by(ActivityEntry.actor))
            .scalars() if a]


def object_links(entries) -> dict[int, str]:
    """{entry id: URL of its object} for the entries whose object still exists."""
    wanted: dict[str, set[int]] = {}
    for entry in entries:
        kind = KINDS.get(entry.object_type or "")
        if kind and kind[1] is not None and entry.object_id is not None:
            wanted.setdefault(entry.object_type, set()).add(entry.object_id)
    existing = {}
    for object_type, ids in wanted.items():
        model = KINDS[object_type][1]
        existing[object_type] = set(db.session.execute(select(model.id).where(model.id.in_(ids))).scalars())
    links = {}
    for entry in entries:
        if entry.object_id in existing.get(entry.object_type or "", ()):
            _, _, endpoint, arg = KINDS[entry.object_type]
            links[entry.id] = url_for(endpoint, **{arg: entry.object_id})
    return links


def request_links(entries) -> dict[int, tuple[int, str]]:
    """{entry id: (request number, URL of its results page)} for the entries about an Add Devices, Remove Devices
    or Release Devices request that still exists: whose object is the profile (or server), not the request."""
    numbers = {entry.id: entry.details["batch_id"] for entry in entries
               if isinstance(entry.details, dict) and type(entry.details.get("batch_id")) is int}
    if not numbers:
        return {}
    existing = set(db.session.execute(select(AssignmentBatch.id)
                                      .where(AssignmentBatch.id.in_(set(numbers.values())))).scalars())
    return {entry_id: (number, url_for("assignments.batch", batch_id=number))
            for entry_id, number in numbers.items() if number in existing}
