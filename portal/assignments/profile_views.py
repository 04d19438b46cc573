"""A profile's devices: the list on the profile page, Add Devices (Select the Managed Devices) and
Remove Devices. Every pop-up is also a plain page; OK queues a batch and shows its results."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from flask import make_response, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import and_, exists, func, or_, select, true

from ..converters import small_ints
from ..devices.filters import APPLE_PROFILE_STATUSES, ASSIGNMENT_LABELS, DeviceQuery
from ..extensions import db
from ..htmx import STOP_POLLING, current_path, hx_trigger, is_htmx, part_of
from ..models import AssignmentBatch, AssignmentTask, Device, EnrollmentProfile, ManagedServer
from ..models.assignment import RELEASE, REMOVE
from ..models.profile import CONFIGURED
from ..views import form_done, render_form
from . import bp, queries
from .forms import ConfirmForm
from .serials import SerialsError, devices_for_serials, not_associated_message, parse_serials
from .services import OPEN_STATES, count_devices, request_assignment, request_matching
from .token_wait import to_request_page, token_wait_note

PICK_FILTERS = ("q", "profile", "family", "os", "profile_status", "assignment")


@bp.app_context_processor
def _helpers():
    """`assignment_panel(profile)` for the fragment B's profile page includes."""
    return {"assignment_panel": _panel}


def _panel(profile: EnrollmentProfile) -> dict:
    """The section as its own URL asks (page, search, ticks); inside the profile page, as the page's URL asks (page
    and search, which profile_devices writes there), so a reload or a bookmark keeps the search."""
    if request.endpoint == "profiles.detail":
        return queries.panel(profile, queries.page_number(request.args.get("page")), _search(request.args))
    if request.endpoint != "assignments.profile_devices":
        return queries.panel(profile)
    return queries.panel(profile, queries.page_number(request.args.get("page")), _search(request.args),
                         sorted(set(_device_ids(request.args))), _excepted(request.args, "all"))


def _search(source) -> DeviceQuery:
    """The section's search box: DeviceQuery's `q` alone, so the list, its Select all and Remove Devices select the
    same devices as the Managed Devices search would; the section has no other filter."""
    return DeviceQuery.from_args({"q": source.get("q")})


def _profile_or_404(profile_id: int) -> EnrollmentProfile:
    return db.get_or_404(EnrollmentProfile, profile_id)


def _device_ids(source, name: str = "device") -> list[int]:
    """The ticked devices' ids; one that cannot be an id (too large for the database, say) matches no device."""
    return small_ints(source.getlist(name))


def _excepted(source, select_all: str) -> list[int]:
    """The rows unticked while Select all (the field `select_all`) was ticked: "all but these" (portal.js,
    selectAllFollows). Select all unticked, they mean nothing: the admin then ticks devices one by one."""
    return sorted(set(_device_ids(source, "except"))) if source.get(select_all) else []


def _configured(profile: EnrollmentProfile) -> bool:
    return profile.status == CONFIGURED and bool(profile.apple_profile_uuid)


@bp.route("/profiles/<int:profile_id>/devices")
def profile_devices(profile_id: int):
    """The profile's associated devices: the section of the profile page (htmx) or a page of its own."""
    profile = _profile_or_404(profile_id)
    template = "assignments/_profile_devices.html" if is_htmx() else "assignments/profile_devices.html"
    excepted = _excepted(request.args, "all")
    response = make_response(render_template(template, profile=profile, server=profile.server,
                                             selected=[i for i in sorted(set(_device_ids(request.args)))
                                                       if i not in excepted],
                                             every=bool(request.args.get("all")), excepted=excepted))
    response.headers["Vary"] = "HX-Request"
    profile_page = url_for("profiles.detail", profile_id=profile.id)
    if is_htmx() and current_path() == profile_page:
        # The profile page's address follows the section's search and page. Another page of the list is a step Back
        # returns from (pushed); a search as it is typed, or the section refreshing itself, must not fill the
        # history (replaced).
        search = _search(request.args)
        page = queries.page_number(request.args.get("page"))
        address = url_for("profiles.detail", profile_id=profile.id, q=search.q or None, page=page if page > 1 else None)
        shown = parse_qs(urlsplit(request.headers.get("HX-Current-URL", "")).query)
        paged = page != queries.page_number((shown.get("page") or ["1"])[0]) and search.q == (shown.get("q") or [""])[0]
        response.headers["HX-Push-Url" if paged else "HX-Replace-Url"] = address
    return response


@bp.route("/profiles/<int:profile_id>/devices/requests")
@part_of(lambda profile_id: url_for("profiles.detail", profile_id=profile_id))
def requests_panel(profile_id: int):
    """The profile's latest requests; polled while one runs, then the device list refreshes."""
    profile = _profile_or_404(profile_id)
    context = queries.panel(profile)
    response = make_response(render_template("assignments/_requests.html", profile=profile, panel=context))
    if context["active"]:
        return response
    response.status_code = STOP_POLLING
    return hx_trigger(response, assignmentsChanged=True)


def _pick_context(profile: EnrollmentProfile, source) -> dict:
    server = profile.server
    query = DeviceQuery.from_args({k: source.get(k) for k in PICK_FILTERS}, server_id=server.id)
    excepted = _excepted(source, "all_matching")
    selected = [i for i in sorted(set(_device_ids(source))) if i not in excepted]  # as OK reads them
    matching = [Device.server_id == server.id, Device.removed_at.is_(None), *query.conditions()]
    page = queries.pick_devices(server.id, query.conditions(), queries.page_number(source.get("page")),
                                all_current=query.only_current_devices)
    return {"profile": profile, "server": server, "query": query, "filters": query.to_args(), "page": page,
            "selected": selected, "all_matching": bool(source.get("all_matching")),
            # A filter edit turned Select all off (portal.js, staleSelectAll): the list says so.
            "select_all_dropped": bool(source.get("select_all_dropped")) and not source.get("all_matching"),
            "outside": len(selected) - queries.count_among(selected, matching),
            # "· N ticked" with Select all: every matching device but these (those the filter lists).
            "excepted": excepted, "excepted_count": queries.count_among(excepted, matching),
            # Select all moves these from their profile: said beside it, since OK asks nothing more.
            "moving": count_devices(server.id, [*query.conditions(), Device.profile_id.is_not(None),
                                                Device.profile_id != profile.id]) if page.total else 0,
            # A Release Devices waiting for these devices is not replaced by Add Devices (services._supersede_older):
            # they leave the organization when it is sent, whatever profile they get now.
            "releasing": count_devices(server.id, [*query.conditions(), exists().where(
                AssignmentTask.device_id == Device.id, AssignmentTask.state.in_(OPEN_STATES),
                AssignmentTask.batch_id.in_(select(AssignmentBatch.id).where(AssignmentBatch.action == RELEASE)))])
            if page.total else 0,
            "families": queries.distinct_values(server.id, Device.device_family),
            "oses": queries.distinct_values(server.id, Device.os), "apple_statuses": APPLE_PROFILE_STATUSES,
            "assignment_labels": ASSIGNMENT_LABELS,
            "profiles": list(db.session.execute(select(EnrollmentProfile.id, EnrollmentProfile.name).where(
                EnrollmentProfile.server_id == server.id).order_by(EnrollmentProfile.name)).all()),
            "configured": _configured(profile)}


@bp.route("/profiles/<int:profile_id>/devices/add", methods=["GET", "POST"])
def add_devices(profile_id: int):
    """Add Devices: the Select the Managed Devices pop-up; OK assigns the chosen devices at Apple."""
    profile = _profile_or_404(profile_id)
    form = ConfirmForm()
    error = serials_error = None
    if request.method == "POST" and not form.validate_on_submit():
        error = "The form expired. Select the devices again and click OK."
    elif request.method == "POST":
        try:
            batch = _assign_from_form(profile)
        except SerialsError as exc:
            serials_error = str(exc)
        except ValueError as exc:
            error = str(exc)
        else:
            what = f"Assigning {batch.total:,} device{'s' if batch.total != 1 else ''} to {profile.name}"
            return _done(batch, profile, what, f"{what}: results follow on the profile page.{_held_note(batch)}")
    source = request.form if request.method == "POST" else request.args
    context = _pick_context(profile, source)
    if request.method == "GET" and is_htmx() and request.headers.get("HX-Target") == "pick-list":
        return render_template("assignments/_pick_list.html", **context)
    return render_form("assignments/_add_form.html", "Select the Managed Devices",
                       status=422 if error or serials_error else 200, form=form, error=error,
                       serials_error=serials_error, serials_text=source.get("serials", ""), **context)


def _done(batch, profile: EnrollmentProfile, what: str, message: str):
    """After OK: the pop-up closes and the profile page shows the request's progress (toast: `message`). While
    the server's token cannot be used the request only waits: the admin goes to its page, which says why and
    what to do, rather than being told "Assigning…" next to a list where nothing happens."""
    url = url_for("assignments.batch", batch_id=batch.id)
    waiting = token_wait_note(profile.server)
    if waiting:
        return to_request_page(f"{what} (request #{batch.id}) waits. {waiting}", url)
    return form_done(message, url, "assignmentsChanged")


def _held_note(batch) -> str:
    """Said after OK when devices of the request wait for Apple's retry time (services._keep_apple_waits)."""
    held = getattr(batch, "held_for_apple", 0)
    if not held:
        return ""
    return (f" {held:,} of them {'wait' if held != 1 else 'waits'} for the retry time Apple asked for after an "
            "earlier FAILED or THROTTLED answer (see the retry queue).")


def _assign_from_form(profile: EnrollmentProfile):
    """The ticked devices (or all matching the filter but those unticked), plus those of the pasted serial numbers.

    A pasted serial number is sent even if its row was unticked under Select all: the paste names the device on
    purpose, after the fact, and the pasted list always adds to the ticks (as it does to rows left unticked)."""
    server = profile.server
    pasted = devices_for_serials(server, parse_serials(request.form.get("serials"), server=server))
    ticked = _device_ids(request.form)
    if request.form.get("all_matching"):
        # Every device matching the filter but those unticked, and those ticked under another filter ("· N ticked")
        # or pasted. A page never sends a row both ticked and unticked; if a request does, unticked wins.
        excepted = _excepted(request.form, "all_matching")
        ticked = [i for i in ticked if i not in excepted]
        query = DeviceQuery.from_args(request.form, server_id=server.id)
        conditions = query.conditions()
        if excepted:
            conditions = [*conditions, ~_ids_condition(excepted)]
        if ticked or pasted:
            conditions = [or_(and_(true(), *conditions), _ids_condition(ticked + pasted))]
        return request_matching(server, profile, conditions, actor=current_user.username)
    if not ticked and not pasted:
        raise ValueError("No device was selected: tick the devices (or all devices matching the filter), or paste "
                         "their serial numbers, first.")
    return request_assignment(server, profile, ticked + pasted, actor=current_user.username)


@bp.route("/profiles/<int:profile_id>/devices/remove", methods=["GET", "POST"])
def remove_devices(profile_id: int):
    """Remove Devices: confirm, then remove the profile at Apple from the selected associated devices."""
    profile = _profile_or_404(profile_id)
    form = ConfirmForm()
    source = request.form if request.method == "POST" else request.args
    every = bool(source.get("all"))
    excepted = _excepted(source, "all")  # rows unticked under Select all: never removed (the pop-up has no paste then)
    ids = [i for i in sorted(set(_device_ids(source))) if i not in excepted]
    search = _search(source)
    if every and ids:  # the rows Select all ticked come along: only those outside what it covers were ticked besides
        ids = _outside(ids, _removal_conditions(profile, [], True, search))
    error = serials_error = None
    if request.method == "POST":
        if not form.validate_on_submit():
            error = "The form expired. Select the devices again and use Remove Devices."
        else:
            try:
                batch = _remove(profile, ids, every, search, request.form.get("serials"), excepted)
            except SerialsError as exc:
                serials_error = str(exc)
            except ValueError as exc:
                error = str(exc)
            else:
                what = f"Removing {profile.name} from {batch.total:,} device{'s' if batch.total != 1 else ''}"
                if is_htmx() and re.fullmatch(r"/devices/\d+", current_path()) and not token_wait_note(profile.server):
                    # From a device's page (Remove Devices…): on to the request, as Add Devices… there does; the
                    # device page would go on saying the device has the profile until Apple answers and a reload.
                    return to_request_page(f"{what}: Apple's answer follows below.{_held_note(batch)}",
                                           url_for("assignments.batch", batch_id=batch.id), "success")
                return _done(batch, profile, what, f"{what}.{_held_note(batch)}")
    chosen = _associated(profile, ids, every, search, excepted)
    if not chosen["count"] and not error and (every or source.getlist("device")):
        error = (f"Select the devices to remove first: none of the chosen devices is associated with “{profile.name}” "
                 "now. Tick others on the profile page, or paste their serial numbers.")
    return render_form("assignments/_remove_form.html", "Remove Devices", status=422 if error or serials_error else 200,
                       form=form, profile=profile, ids=ids, every=every, search=search, excepted=excepted, error=error,
                       serials_error=serials_error, serials_text=source.get("serials", ""), **chosen)


def _ids_condition(ids: list[int]):
    """Device.id in `ids`, as IN lists of at most 500 (bound-parameter limits)."""
    return or_(*(Device.id.in_(ids[i:i + 500]) for i in range(0, len(ids), 500))) if ids else Device.id.is_(None)


def _removal_conditions(profile: EnrollmentProfile, ids: list[int], every: bool, search: DeviceQuery,
                        excepted: list[int] = ()) -> list:
    """The devices Remove Devices removes, for the confirmation and its OK alike: associated with the profile and
    either ticked, or (Select all) matching the section's search, all of them without one, but those `excepted`
    (unticked under Select all). With a search, Select all stands for the devices the list showed, never those it
    left out: a device outside it goes only if ticked."""
    conditions = queries.associated_conditions(profile)
    if not every:
        return conditions + [_ids_condition(ids)]
    matching = queries.search_conditions(search)
    if excepted:
        matching = [*matching, ~_ids_condition(list(excepted))]
    if matching and ids:
        return conditions + [or_(and_(true(), *matching), _ids_condition(ids))]
    return conditions + matching


def _outside(ids: list[int], conditions: list) -> list[int]:
    """Those of `ids` whose device does not match `conditions`."""
    covered = set()
    for i in range(0, len(ids), 500):
        covered.update(db.session.execute(select(Device.id).where(Device.id.in_(ids[i:i + 500]), *conditions)).scalars())
    return [i for i in ids if i not in covered]


def _associated(profile: EnrollmentProfile, ids: list[int], every: bool, search: DeviceQuery,
                excepted: list[int] = ()) -> dict:
    """How many of the chosen devices are associated with the profile, and the first serials."""
    conditions = _removal_conditions(profile, ids, every, search, excepted)
    page = queries.paged(select(Device.serial_number).where(*conditions).order_by(Device.serial_number),
                         select(func.count()).select_from(Device).where(*conditions), 1, 10)
    return {"count": page.total, "sample": [r[0] for r in page.items]}


def _remove(profile: EnrollmentProfile, ids: list[int], every: bool, search: DeviceQuery, serials_text: str | None,
            excepted: list[int] = ()):
    server: ManagedServer = profile.server
    if every:
        return request_matching(server, profile, _removal_conditions(profile, ids, every, search, excepted),
                                action=REMOVE, actor=current_user.username)
    ids = ids + _associated_pasted(profile, parse_serials(serials_text, "removed", profile.server))
    if not ids:
        # Nothing ticked: the serial numbers are the pop-up's only field, so the message goes next to them.
        raise SerialsError("Select the devices to remove first: tick their rows on the profile page, or paste their "
                           "serial numbers.")
    return request_matching(server, profile, _removal_conditions(profile, sorted(set(ids)), False, search),
                            action=REMOVE, actor=current_user.username)


def _associated_pasted(profile: EnrollmentProfile, serials: list[str]) -> list[int]:
    """The ids of the pasted serials' devices; SerialsError names those not associated with the profile."""
    ids = devices_for_serials(profile.server, serials)
    if not ids:
        return []
    mine = set()
    for i in range(0, len(ids), 500):
        mine.update(db.session.execute(select(Device.id).where(
            Device.id.in_(ids[i:i + 500]), Device.profile_id == profile.id)).scalars())
    others = [serial for serial, device_id in zip(serials, ids) if device_id not in mine]
    if others:
        raise SerialsError(not_associated_message(others, profile.name))
    return ids
