"""What the admin asked for in a Managed Devices list: search, filters and sort, read from the URL.

`DeviceQuery` is the single place that turns query arguments into SQL conditions on `Device`, so the
device list, its CSV export and the Select the Managed Devices pop-up (assignments) all select the
same rows for the same URL. Unknown or malformed values are ignored (the default applies) rather
than rejected: a bookmarked or hand-edited URL must never end in an error page.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields

from sqlalchemy import false, or_

from ..converters import small_int
from ..models import Device
from ..typed_text import control_characters, controls_message
from .pending import assignment_condition
from .search import search_condition

APPLE_PROFILE_STATUSES = ("empty", "assigned", "pushed", "removed")
# The last Add Devices / Remove Devices request of a device, with the words both filters show for it.
ASSIGNMENT_LABELS = {"queued": "Queued", "assigned": "Assigned", "not_accessible": "Not accessible",
                     "failed": "Failed", "throttled": "Throttled", "none": "None"}
ASSIGNMENT_STATES = tuple(ASSIGNMENT_LABELS)
REMOVED_CHOICES = ("", "removed", "all")      # "" = current devices only
ENROLL_CHOICES = ("", "no", "outdated", "yes")  # see enrollment.outlook()
SORTS = ("serial", "model", "assigned")
DIRECTIONS = ("asc", "desc")
MAX_TEXT = 64  # longer than any serial number, model code, OS or family name
NARROWING = ("q", "profile_status", "family", "os", "profile", "assignment", "enroll", "removed")


def _is_id(text: str) -> bool:
    """Whether `text` reads as an id that fits an id column (see converters.small_int)."""
    return small_int(text) is not None


@dataclass
class DeviceQuery:
    """Search, filters and sort of a device list (no paging: see listing.py)."""

    server_id: int | None = None
    server_fixed: bool = False   # the per-server list: the server comes from the path, not ?server=
    q: str = ""
    profile_status: str = ""
    family: str = ""
    os: str = ""
    profile: str = ""            # "" = any, "none", or an EnrollmentProfile id
    assignment: str = ""         # "" = any, or one of ASSIGNMENT_STATES
    enroll: str = ""
    removed: str = ""
    sort: str = "serial"
    direction: str = "asc"
    # Not a field (no annotation): what from_args() set aside, "assignment “zzz”", for the page to say.
    ignored = ()

    @classmethod
    def from_args(cls, args, server_id: int | None = None) -> "DeviceQuery":
        """Read a request's query arguments (a MultiDict or dict); `server_id` fixes the server."""
        def text(name: str) -> str:
            value = args.get(name)
            value = str(value) if isinstance(value, int) else value  # to_args() values round-trip
            # NUL never matches anything, and PostgreSQL refuses it in a query parameter.
            return value.replace("\x00", "").strip()[:MAX_TEXT] if isinstance(value, str) else ""

        ignored: list[str] = []  # "assignment “zzz”": values the list does not know, said on the page

        def choice(name: str, allowed: tuple[str, ...], default: str = "") -> str:
            value = text(name)
            if value and value not in allowed:
                ignored.append(f"{name} “{value}”")
            return value if value in allowed else default

        q = args.get("q")
        # Spaces typed twice ("iMac  24") are one: no model or description has two in a row. (Control characters:
        # see q_problem.)
        query = cls(q=re.sub(" {2,}", " ", q.strip())[:100] if isinstance(q, str) else "",
                    profile_status=choice("profile_status", APPLE_PROFILE_STATUSES),
                    family=text("family"), os=text("os"),
                    assignment=choice("assignment", ASSIGNMENT_STATES),
                    enroll=choice("enroll", ENROLL_CHOICES), removed=choice("removed", REMOVED_CHOICES),
                    sort=choice("sort", SORTS, "serial"), direction=choice("direction", DIRECTIONS, "asc"))
        profile = text("profile")
        query.profile = profile if profile == "none" or _is_id(profile) else ""
        if profile and not query.profile:
            ignored.append(f"profile “{profile}”")
        if server_id is not None:
            query.server_id, query.server_fixed = server_id, True
        else:
            server = text("server")
            query.server_id = int(server) if _is_id(server) else None
            if server and query.server_id is None:
                ignored.append(f"server “{server}”")
        query.ignored = ignored  # not a field: never part of to_args()
        return query

    def to_args(self) -> dict:
        """The query arguments that reproduce this query (defaults left out, so URLs stay short)."""
        args = {}
        for field in fields(self):
            if field.name in ("server_id", "server_fixed"):
                continue
            value = getattr(self, field.name)
            if value != field.default:
                args[field.name] = value
        if self.server_id is not None and not self.server_fixed:
            args["server"] = self.server_id
        return args

    @property
    def q_problem(self) -> str:
        """Why the search cannot match anything (it holds control characters, a NUL included, which no
        device attribute holds and PostgreSQL refuses in a query), for the list to say; "" when it can."""
        found = control_characters(self.q)
        return controls_message(found, "The search") if found else ""

    @property
    def only_current_devices(self) -> bool:
        """True when the query selects every current device (of its server, if it has one)."""
        return not any(getattr(self, name) for name in NARROWING)

    @property
    def is_filtered(self) -> bool:
        """True when something narrows the list beyond "current devices (of this server)"."""
        return not self.only_current_devices or (self.server_id is not None and not self.server_fixed)

    def conditions(self, *, for_count: bool = False) -> list:
        """SQLAlchemy conditions on Device (to be AND-ed) selecting exactly the rows of this query.

        `for_count`: the same rows, in the form that counts them fastest (see pending.assignment_condition).
        """
        conditions = []
        if self.removed == "":
            conditions.append(Device.removed_at.is_(None))
        elif self.removed == "removed":
            conditions.append(Device.removed_at.is_not(None))
        if self.server_id is not None:
            conditions.append(Device.server_id == self.server_id)
        if self.q_problem:
            conditions.append(false())
        elif self.q:
            conditions.append(search_condition(self.q))
        if self.profile_status:
            if self.profile_status == "empty":  # Apple leaves the field out as well as sending "empty"
                conditions.append(or_(Device.profile_status == "empty", Device.profile_status.is_(None)))
            else:
                conditions.append(Device.profile_status == self.profile_status)
        if self.family:
            conditions.append(Device.device_family == self.family)
        if self.os:
            conditions.append(Device.os == self.os)
        if self.profile == "none":
            conditions.append(Device.profile_id.is_(None))
        elif self.profile:
            conditions.append(Device.profile_id == int(self.profile))
        if self.assignment:
            conditions.append(assignment_condition(self.assignment, for_count=for_count))
        if self.enroll:
            from .enrollment import outlook_conditions  # enrollment imports nothing from here; avoids a cycle
            conditions.extend(outlook_conditions(self.enroll))
        return conditions
