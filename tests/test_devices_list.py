"""The Managed Devices lists (every server's and one server's): search, filters, their words and totals,
sorts with keyset pages, bookmarkable URLs, htmx fragments, odd query arguments, and the profile or
request a device waits for."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal.extensions import db
from portal.models import AssignmentTask, ManagedServer
from tests.devices_helpers import (NOW, STAFF_UUID, _batch_of, _device, _expected_order, _profile, _queue, _seed,
                                   _serials, _server)
from tests.devices_helpers import fleet, many  # noqa: F401 - the fixtures


# ----- filters and search -------------------------------------------------------------------------

def test_default_list_shows_current_devices_of_every_server(admin_client, fleet):
    page = admin_client.get("/devices")
    assert sorted(_serials(page)) == ["C02AAA1", "C02AAB2", "DMQ100_", "F17XYZ9", "LYN0001"]
    assert "5 devices" in page.get_data(as_text=True)
    assert sorted(_serials(admin_client.get(f"/servers/{fleet['lyon'].id}/devices"))) == ["LYN0001"]


def test_unfiltered_totals_are_the_counts_the_writers_keep(admin_client, fleet):
    """Lists of every current device read managed_server.device_count, never a count of the rows
    (portal/devices/counts.py); filtered lists still count their matches."""
    paris, lyon = fleet["paris"], fleet["lyon"]
    for server, kept in ((paris, 4321), (lyon, 1000)):  # values no count of the rows could give
        db.session.execute(update(ManagedServer).where(ManagedServer.id == server.id).values(device_count=kept))
    db.session.commit()
    assert "5,321 devices" in admin_client.get("/devices").get_data(as_text=True)
    assert "4,321 devices" in admin_client.get(f"/servers/{paris.id}/devices").get_data(as_text=True)
    assert "4,321 devices match the filters" in admin_client.get(f"/devices?server={paris.id}").get_data(as_text=True)
    assert "2 devices match the filters" in admin_client.get("/devices?q=c02").get_data(as_text=True)
    servers_page = admin_client.get("/servers").get_data(as_text=True)
    assert "<td>4,321</td>" in servers_page and "<td>1,000</td>" in servers_page
    popup = admin_client.get(f"/profiles/{fleet['staff'].id}/devices/add").get_data(as_text=True)
    assert "Select all 4,321 devices of Paris" in popup
    filtered = admin_client.get(f"/profiles/{fleet['staff'].id}/devices/add?q=c02").get_data(as_text=True)
    assert "Select all 2 devices matching the filter" in filtered


@pytest.mark.parametrize("query, expected", [
    ("q=c02", ["C02AAA1", "C02AAB2"]),                       # serial prefix, any case
    ("q=air", ["C02AAB2", "F17XYZ9"]),                       # model contains
    ("q=wi-fi", ["C02AAB2"]),                                # description contains
    ("q=macbook%20%20air", ["F17XYZ9"]),                     # a space typed twice is one
    ("q=AA1", []),                                           # serial: from the first character only
    ("q=100%25", ["DMQ100_"]),                               # a % is literal, not a wildcard
    ("q=_", []),                                             # a _ too (LIKE '%_%' would match all)
    ("q=DMQ100_", ["DMQ100_"]),
    ("profile_status=empty", ["DMQ100_", "F17XYZ9"]),
    ("profile_status=pushed", ["C02AAB2"]),
    ("profile_status=removed", ["LYN0001"]),
    ("family=iPad", ["C02AAB2", "LYN0001"]),
    ("os=OSX", ["F17XYZ9"]),
    ("profile=none", ["DMQ100_", "F17XYZ9"]),
    ("assignment=failed", ["F17XYZ9"]),
    ("assignment=none", []),
    ("assignment=queued", ["DMQ100_"]),
    ("removed=removed", ["F17OLD0"]),
    ("removed=all&q=f17", ["F17OLD0", "F17XYZ9"]),
    ("enroll=yes", ["C02AAA1"]),
    ("enroll=no", ["C02AAB2", "DMQ100_", "F17XYZ9", "LYN0001"]),
    # combined
    ("family=iPad&os=iPadOS&profile_status=pushed", ["C02AAB2"]),
    ("q=c02&enroll=no", ["C02AAB2"]),
    ("family=iPhone&removed=all&assignment=assigned", ["C02AAA1"]),
])
def test_each_filter_and_combinations(admin_client, fleet, query, expected):
    response = admin_client.get(f"/devices?{query}")
    assert sorted(_serials(response)) == expected
    if expected:  # the total is counted with the same rows (listing.count_devices, conditions(for_count=True))
        n = len(expected)
        label = f"{n} devices match the filters" if n != 1 else "1 device matches the filters"
        assert label in response.get_data(as_text=True)


def test_a_search_finding_only_removed_devices_says_so_and_links_to_them(admin_client, fleet):
    """Looking for a released device gave a bare "No device matches", though it was under Removed devices."""
    page = " ".join(admin_client.get("/devices?q=f17old").get_data(as_text=True).split())
    assert "No device matches" in page
    assert ("1 removed device (released, or moved to another MDM server) matches: "
            '<a href="/devices?q=f17old&amp;removed=all">show removed devices too</a>') in page
    assert _serials(admin_client.get("/devices?q=f17old&removed=all")) == ["F17OLD0"]
    for nothing in ("/devices?q=zzz", "/devices?q=f17old&removed=removed&family=iPad", "/devices?q=c02aaa1&family=Mac"):
        assert "removed device" not in admin_client.get(nothing).get_data(as_text=True), nothing


def test_profile_and_server_filters(admin_client, fleet):
    assert _serials(admin_client.get(f"/devices?profile={fleet['staff'].id}")) == ["C02AAA1"]
    assert _serials(admin_client.get(f"/devices?server={fleet['lyon'].id}")) == ["LYN0001"]
    assert sorted(_serials(admin_client.get(f"/devices?server={fleet['paris'].id}&profile=none"))) == ["DMQ100_", "F17XYZ9"]
    # the per-server list ignores ?server= (the path decides)
    assert _serials(admin_client.get(f"/servers/{fleet['lyon'].id}/devices?server={fleet['paris'].id}")) == ["LYN0001"]


def test_a_filter_naming_a_deleted_profile_or_server_says_so(admin_client, fleet):
    """A bookmark of a deleted profile's devices showed "Any" profile and "No device matches", as if the filter was
    merely narrow."""
    page = admin_client.get("/devices?profile=999999").get_data(as_text=True)
    assert "No device matches" in page and "The filter names a profile (#999999) that no longer exists" in page
    page = admin_client.get("/devices?server=999999").get_data(as_text=True)
    assert "The filter names a managed server (#999999) that no longer exists" in page
    page = admin_client.get(f"/devices?profile={fleet['staff'].id}").get_data(as_text=True)
    assert "no longer exists" not in page


def test_filter_choices_come_from_the_data(admin_client, fleet):
    page = admin_client.get("/devices").get_data(as_text=True)
    for value in ("iPad", "iPhone", "Mac", "iOS", "iPadOS", "OSX"):
        assert f'<option value="{value}"' in page
    assert "Paris · Staff" in page and "Lyon · Lyon default" in page
    server_page = admin_client.get(f"/servers/{fleet['lyon'].id}/devices").get_data(as_text=True)
    assert "Lyon default" in server_page and "Staff" not in server_page


def test_device_families_are_named_as_the_profile_form_names_them(admin_client, fleet):
    """Apple's "AppleTV" reads "Apple TV" in the lists and their filters, as on a profile's default families."""
    _seed(fleet["paris"], {"serial_number": "DY3TV01", "model": "Apple TV 4K", "os": "tvOS", "device_family": "AppleTV"})
    page = admin_client.get("/devices").get_data(as_text=True)
    assert '<option value="AppleTV" >Apple TV</option>' in page
    assert re.search(r"<td>Apple TV<br><span class=\"muted\">tvOS</span></td>", page)
    assert _serials(admin_client.get("/devices?family=AppleTV")) == ["DY3TV01"]  # the value sent is still Apple's
    popup = admin_client.get(f"/profiles/{fleet['staff'].id}/devices/add").get_data(as_text=True)
    assert '<option value="AppleTV">Apple TV</option>' in popup
    assert ">AppleTV<" not in page + popup


def test_empty_results_say_what_to_do(admin_client, fleet):
    page = admin_client.get("/devices?q=nothing-like-this").get_data(as_text=True)
    assert "No device matches" in page and "clear them" in page


def test_device_query_round_trips_through_args():
    from werkzeug.datastructures import MultiDict

    from portal.devices.filters import DeviceQuery

    args = {"q": "c02", "server": "3", "profile_status": "pushed", "family": "iPad", "os": "iPadOS",
            "profile": "none", "assignment": "failed", "enroll": "no", "removed": "all", "sort": "model",
            "direction": "desc"}
    query = DeviceQuery.from_args(MultiDict(args))
    assert {k: str(v) for k, v in query.to_args().items()} == args
    assert DeviceQuery.from_args(MultiDict(query.to_args())) == query
    assert DeviceQuery.from_args(MultiDict({"server": "3"}), server_id=5).to_args() == {}
    assert DeviceQuery.from_args(MultiDict()).to_args() == {}


def _options(page: str, select_id: str) -> list[tuple[str, str]]:
    block = re.search(r'<select[^>]*id="%s".*?</select>' % select_id, page, re.S).group(0)
    return re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', block)


def test_the_assignment_filter_uses_the_words_of_the_add_devices_pop_up(admin_client, app):
    server = _server("Paris", configured=True)
    profile = _profile(server, "Sales")
    profile.apple_profile_uuid = "UUID-SALES"
    db.session.commit()
    listed = _options(admin_client.get("/devices").get_data(as_text=True), "f-assignment")
    picked = _options(admin_client.get(f"/profiles/{profile.id}/devices/add").get_data(as_text=True), "pick-assignment")
    assert listed == picked == [("", "Any"), ("queued", "Queued"), ("assigned", "Assigned"),
                                ("not_accessible", "Not accessible"), ("failed", "Failed"),
                                ("throttled", "Throttled"), ("none", "None")]


def test_assignment_states_read_the_same_words_everywhere(admin_client, fleet):
    """The Assignment column, the device page, the Managed Devices filter and the Add Devices pop-up
    say "Not accessible", "Queued"..., never the stored "not_accessible"."""
    _seed(fleet["paris"], {"serial_number": "NAC0001", "assignment_state": "not_accessible"})
    listed = admin_client.get("/devices?q=NAC").get_data(as_text=True)
    assert "<td>Not accessible</td>" in listed and "not_accessible</td>" not in listed
    assert "<td>Queued</td>" in admin_client.get("/devices?q=DMQ").get_data(as_text=True)
    page = admin_client.get(f"/devices/{_device('NAC0001').id}").get_data(as_text=True)
    assert "<dt>Assignment</dt><dd>Not accessible" in page
    fleet["staff"].apple_profile_uuid = STAFF_UUID
    popup = admin_client.get(f"/profiles/{fleet['staff'].id}/devices/add").get_data(as_text=True)
    assert '<label for="pick-assignment">Assignment</label>' in popup


# ----- sorting and keyset pages -------------------------------------------------------------------

def _link(response, rel: str) -> str | None:
    match = re.search(rf'<a rel="{rel}" href="([^"]+)"', response.get_data(as_text=True))
    return html.unescape(match.group(1)) if match else None


@pytest.mark.parametrize("sort", ["serial", "model", "assigned"])
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_sorts_page_forward_and_back_without_duplicates_or_gaps(admin_client, many, sort, direction):
    url = f"/devices?sort={sort}&direction={direction}"
    pages, numbers = [], []
    while url:
        response = admin_client.get(url)
        pages.append(_serials(response))
        numbers.append(re.search(r"<span>Page (\d+)</span>", response.get_data(as_text=True)).group(1))
        url = _link(response, "next")
    assert [len(p) for p in pages] == [100, 100, 50]
    assert numbers == ["1", "2", "3"]
    assert sum(pages, []) == _expected_order(sort, direction)
    # and back with Previous from the last page
    last = admin_client.get(f"/devices?sort={sort}&direction={direction}")
    for _ in range(2):
        last = admin_client.get(_link(last, "next"))
    back = admin_client.get(_link(last, "prev"))
    assert _serials(back) == pages[1]
    first = admin_client.get(_link(back, "prev"))
    assert _serials(first) == pages[0] and _link(first, "prev") is None
    assert "<span>Page 1</span>" in first.get_data(as_text=True)


def test_sort_headers_toggle_direction_and_keep_filters(admin_client, many):
    page = admin_client.get("/devices?sort=model&q=S0").get_data(as_text=True)
    header = re.search(r'<th aria-sort="ascending">\s*<a href="([^"]+)"', page).group(1)
    assert "direction=desc" in header and "sort=model" in header and "q=S0" in header


def test_a_sort_header_sets_the_forms_sort_so_the_next_filter_keeps_it(admin_client, many):
    """The filter form is outside the table a sort header replaces: its answer sends the form's Sort by and Order
    again (out of band), or the next search would go back to the form's old sort."""
    headers = {"HX-Request": "true", "HX-Target": "device-table"}
    by_header = admin_client.get("/devices?sort=model&direction=desc",
                                 headers={**headers, "HX-Trigger": "sort-model"}).get_data(as_text=True)
    sort = re.search(r'<select id="f-sort" name="sort" hx-swap-oob="true">(.*?)</select>', by_header, re.S)
    direction = re.search(r'<select id="f-direction" name="direction" hx-swap-oob="true">(.*?)</select>', by_header, re.S)
    assert sort and re.search(r'<option value="model"\s+selected', sort.group(1))
    assert direction and re.search(r'<option value="desc"\s+selected', direction.group(1))
    # The form's own requests leave its selects alone (one of them may have the keyboard).
    by_form = admin_client.get("/devices?sort=model", headers={**headers, "HX-Trigger": "q"}).get_data(as_text=True)
    assert "hx-swap-oob" not in by_form


def test_bookmarked_urls_round_trip(admin_client, many):
    """The Next link carries filters, sort, cursor and page number; opening it later gives the same page."""
    first = admin_client.get("/devices?sort=assigned&direction=desc&family=iPhone")
    next_url = _link(first, "next")
    assert all(part in next_url for part in ("sort=assigned", "direction=desc", "family=iPhone", "after=", "page=2"))
    once, again = admin_client.get(next_url), admin_client.get(next_url)
    assert _serials(once) == _serials(again) and len(_serials(once)) == 100
    assert set(_serials(once)).isdisjoint(_serials(first))
    # The filter form shows what the URL says.
    page = once.get_data(as_text=True)
    assert re.search(r'<option value="assigned"\s+selected', page) and re.search(r'<option value="desc"\s+selected', page)


def test_htmx_gets_the_table_fragment_and_a_plain_request_the_page(admin_client, many):
    full = admin_client.get("/devices?q=S00")
    assert b"<html" in full.data and b'id="device-table"' in full.data and b"<form" in full.data
    fragment = admin_client.get("/devices?q=S00", headers={"HX-Request": "true", "HX-Target": "device-table"})
    assert b"<html" not in fragment.data and b"<form" not in fragment.data
    assert _serials(fragment) == _serials(full)
    assert b'hx-push-url="true"' in full.data and b'method="get"' in full.data  # works without JS too


def test_counts_are_exact_unfiltered_and_capped_when_filtered(admin_client, many, monkeypatch):
    from portal.devices import listing

    assert "250 devices · page 1 of 3</p>" in admin_client.get("/devices").get_data(as_text=True)
    second = _link(admin_client.get("/devices"), "next")
    assert "250 devices · page 2 of 3</p>" in admin_client.get(second).get_data(as_text=True)
    monkeypatch.setattr(listing, "COUNT_CAP", 100)
    capped = admin_client.get("/devices?q=S").get_data(as_text=True)
    assert "100+ devices match the filters · page 1</p>" in capped  # how many pages: not known
    assert "250 devices" in admin_client.get("/devices").get_data(as_text=True)


@pytest.mark.parametrize("query", [
    "sort=nonsense", "direction=sideways", "after=garbage", "before=garbage", "after=%FF%FE",
    "after=WyJ2IiwxLDJd", "after=WyJ2IiwiUzAwIiw5OTk5OTk5OTk5OTk5OTk5OTk5XQ", "after=WyJ2IiwiXHUwMDAwIiwxXQ", "after=WyJ2IiwiUzAwMDAiLCJ4Il0", "sort=assigned&after=WyJ2Iiwibm90IGEgZGF0ZSIsMV0",
    "sort=serial&after=WyJuIixudWxsLDFd", "page=-3", "page=abc", "page=99999999999999",
    "profile=abc", "profile=99999999999999999999", "server=x", "server=999999", "enroll=maybe",
    "removed=sometimes", "assignment=unknown", "profile_status=lost", "q=" + "x" * 5000, "q=%00",
    "family=%E2%9C%93", "after=" + "A" * 3000,
])
def test_bad_query_args_never_fail(admin_client, many, query):
    for url in (f"/devices?{query}", f"/servers/{many.id}/devices?{query}", f"/devices.csv?{query}"):
        response = admin_client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        response.get_data()


def test_missing_ids_are_404(admin_client, many):
    assert admin_client.get("/devices/999999").status_code == 404
    assert admin_client.get("/servers/999999/devices").status_code == 404
    assert admin_client.get("/servers/999999/devices.csv").status_code == 404


def test_past_the_end_cursor_shows_a_way_back(admin_client, many):
    from portal.devices.keyset import Cursor

    url = f"/devices?after={Cursor('v', 'ZZZZ', 10**6).encode()}&page=7"
    page = admin_client.get(url)
    assert _serials(page) == [] and _link(page, "prev")
    assert len(_serials(admin_client.get(_link(page, "prev")))) == 100


# ----- the profile a device waits for -------------------------------------------------------------

def _row(page: str, serial: str) -> str:
    match = re.search(rf"<tr[^>]*>\s*<td><a class=.device-link.[^>]*><code>{serial}</code>.*?</tr>", page, re.S)
    assert match, serial
    return match.group(0)


def test_a_device_waiting_for_its_first_profile_names_it_in_the_lists(admin_client, fleet):
    """Queued for Add Devices to Staff: the device row names no profile until Apple accepts, and the
    lists said "None"; they name the profile it waits for, linked to the request."""
    waiting = (f'<a class="waiting-for" href="/assignments/{_batch_of("DMQ100_")}" '
               f'title="Add Devices request #{_batch_of("DMQ100_")}: not accepted by Apple yet">Waiting for “Staff”</a>')
    for url in ("/devices", f"/servers/{fleet['paris'].id}/devices", "/devices?assignment=queued"):
        row = _row(admin_client.get(url).get_data(as_text=True), "DMQ100_")
        assert waiting in row and ">None<" not in row, url
    untouched = _row(admin_client.get("/devices").get_data(as_text=True), "F17XYZ9")
    assert ">None<" in untouched and "Waiting for" not in untouched


def test_a_device_in_the_retry_queue_names_the_profile_it_waits_for(admin_client, fleet):
    """Apple answered FAILED: the request sits in the retry queue, and the device keeps its current
    profile (Kiosk) until Apple accepts; the list says both. Answered, replaced or removal requests do not."""
    paris, staff = fleet["paris"], fleet["staff"]
    _queue(paris, staff, "C02AAB2")
    db.session.execute(update(AssignmentTask).where(AssignmentTask.serial_number == "C02AAB2")
                       .values(state="failed", retry_at=NOW + timedelta(hours=24)))
    for serial, state, action in (("F17XYZ9", "done", "assign"), ("C02AAA1", "superseded", "assign"),
                                  ("LYN0001", "queued", "remove")):
        _queue(paris, fleet["kiosk"], serial)
        task = db.session.execute(select(AssignmentTask).where(AssignmentTask.serial_number == serial)).scalar_one()
        task.state, task.batch.action = state, action
    db.session.commit()
    page = admin_client.get("/devices").get_data(as_text=True)
    row = _row(page, "C02AAB2")
    assert re.search(rf">Kiosk</a><br><a class=\"waiting-for\" href=\"/assignments/{_batch_of('C02AAB2')}\"[^>]*>"
                     r"Waiting for “Staff”</a>", row), row
    for serial in ("F17XYZ9", "C02AAA1", "LYN0001"):
        assert "Waiting for" not in _row(page, serial), serial
    detail = admin_client.get(f"/devices/{_device('C02AAB2').id}").get_data(as_text=True)
    assert f'href="/assignments/{_batch_of("C02AAB2")}">Waiting for “Staff”</a>' in detail


def _task_queries(client, url: str) -> int:
    """How many statements reading assignment_task the page at `url` runs."""
    from sqlalchemy import event

    statements = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    return sum("assignment_task" in s for s in statements)


def test_the_profiles_waited_for_cost_one_query_per_page(admin_client, fleet):
    """A lookup by the page's device ids (≤ 100), never by matching device: the query count does not grow
    with the number of waiting devices shown."""
    def task_queries() -> int:
        return _task_queries(admin_client, "/devices")

    before = task_queries()
    assert before == 1  # queued or waiting, and for which profile or request: read together
    _seed(fleet["paris"], *({"serial_number": f"WAIT{n:03}"} for n in range(30)))
    for n in range(30):
        _queue(fleet["paris"], fleet["staff"], f"WAIT{n:03}")
    assert task_queries() == before
    assert admin_client.get("/devices").get_data(as_text=True).count("Waiting for “Staff”") == 31


@pytest.mark.parametrize("action, words", [("remove", "Removal waiting"), ("release", "Release waiting")])
def test_a_waiting_removal_or_release_is_named_beside_queued(admin_client, fleet, action, words):
    """A device queued for Remove Devices or Release Devices said only "Queued" (its profile column
    still names the profile it has): the Assignment column names the request waiting, linked to it."""
    _queue(fleet["paris"], fleet["kiosk"], "C02AAB2")
    task = db.session.execute(select(AssignmentTask).where(AssignmentTask.serial_number == "C02AAB2")).scalar_one()
    task.batch.action = action
    db.session.commit()
    batch_id = _batch_of("C02AAB2")
    for url in ("/devices", "/devices?assignment=queued"):
        row = _row(admin_client.get(url).get_data(as_text=True), "C02AAB2")
        assert re.search(rf'<td>Queued<br><a class="waiting-for" href="/assignments/{batch_id}"[^>]*>{words} '
                         rf'\(#{batch_id}\)</a></td>', row), (url, row)
        assert "Waiting for" not in row  # the profile column: no profile is being assigned
    other = _row(admin_client.get("/devices").get_data(as_text=True), "DMQ100_")  # queued for Add Devices
    assert "Assignment waiting" not in other and "Waiting for “Staff”" in other
    detail = admin_client.get(f"/devices/{_device('C02AAB2').id}").get_data(as_text=True)
    assert (f'<dt>Assignment</dt><dd>Queued · <a class="waiting-for" href="/assignments/{batch_id}">{words}</a> '
            f'({ {"remove": "Remove Devices", "release": "Release Devices"}[action]} request #{batch_id}, '
            "not answered by Apple yet)") in detail


def test_the_request_a_failure_came_from_costs_no_query_of_its_own(admin_client, fleet):
    """"Release failed (#12)" is read with the page's one lookup of its devices' tasks, not one per row; and a
    device whose newest FAILED answer came from an Add Devices says "Failed" alone, an older failed release or not."""
    from portal.models import AssignmentBatch

    def answer(serial: str, action: str, state: str, when) -> int:
        batch = AssignmentBatch(server_id=fleet["paris"].id, action=action, actor="alice", total=1, status="waiting")
        db.session.add(batch)
        db.session.flush()
        db.session.add(AssignmentTask(batch_id=batch.id, device_id=_device(serial).id, serial_number=serial,
                                      state=state, result=state.upper(), updated_at=when))
        db.session.commit()
        return batch.id

    def task_queries() -> int:
        return _task_queries(admin_client, "/devices?assignment=failed")

    before = task_queries()
    _seed(fleet["paris"], *({"serial_number": f"GONE{n:03}", "assignment_state": "failed", "assignment_at": NOW}
                            for n in range(30)))
    batches = {f"GONE{n:03}": answer(f"GONE{n:03}", "release", "failed", NOW) for n in range(30)}
    answer("GONE000", "assign", "failed", NOW + timedelta(minutes=1))  # answered after the release
    assert task_queries() == before  # the filter's own (not queued) and the one lookup of the page
    page = admin_client.get("/devices?assignment=failed").get_data(as_text=True)
    assert page.count("Release failed (#") == 29
    assert "answered-by" not in _row(page, "GONE000") and "<td>Failed</td>" in _row(page, "GONE000")
    assert f'>Release failed (#{batches["GONE001"]})</a></td>' in _row(page, "GONE001")


def test_values_the_list_does_not_know_are_said_to_be_ignored(admin_client):
    """?assignment=zzz, ?sort=bogus, ?profile=abc were silently ignored: every device showed as if the link selected
    them. ?server=999 and ?profile=999 already said they name something gone."""
    html = admin_client.get("/devices?assignment=zzz&sort=bogus&profile=abc&server=x1").get_data(as_text=True)
    assert ("Ignored in the address, as this list knows no such value: assignment “zzz”, sort “bogus”, profile “abc”, "
            "server “x1”. The list shows what the other filters select.") in " ".join(html.split())
    assert "Ignored in the address" not in admin_client.get("/devices?assignment=failed&sort=model").get_data(
        as_text=True)
