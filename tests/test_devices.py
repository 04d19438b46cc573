"""Managed Devices at scale: search, filters, sorts with keyset pages, CSV export, the device page,
automatic-enrollment readiness. Devices are seeded with bulk INSERTs (Apple is not the point here)."""
from __future__ import annotations

import csv
import html
import io
import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select, update

from portal import vault
from portal.devices.counts import recount
from portal.extensions import db
from portal.models import (AssignmentBatch, AssignmentTask, Device, EnrollmentProfile, ManagedServer,
                           ServerConfiguration)

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
SERIAL_CELL = re.compile(r"<td><a class=.device-link.[^>]*><code>([^<]+)</code></a></td>")


def _server(name: str, configured: bool = False) -> ManagedServer:
    config = None
    if configured:
        config = ServerConfiguration(name=f"MDM for {name}", url="https://mdm.example.com/enroll")
        db.session.add(config)
        db.session.flush()
    server = ManagedServer(name=name, token_ciphertext=vault.encrypt("{}"), key_ciphertext=vault.encrypt("k"),
                           consumer_key=f"CK_{name}", token_expiry=NOW + timedelta(days=365),
                           configuration_id=config.id if config else None)
    db.session.add(server)
    db.session.commit()
    return server


def _profile(server: ManagedServer, name: str, status: str = "configured") -> EnrollmentProfile:
    profile = EnrollmentProfile(server_id=server.id, name=name, status=status)
    db.session.add(profile)
    db.session.commit()
    return profile


def _seed(server: ManagedServer, *devices: dict) -> None:
    rows = [{"server_id": server.id, "first_seen_at": NOW, "updated_at": NOW, "fetch_generation": 1,
             "os": "iOS", "device_family": "iPhone", "model": "iPhone 15", "profile_status": "empty", **d}
            for d in devices]
    db.session.execute(insert(Device), rows)
    recount(server.id)  # as a sync's full fetch leaves it (portal/devices/counts.py)
    db.session.commit()


def _queue(server: ManagedServer, profile: EnrollmentProfile, serial: str) -> None:
    """A request for the device waiting to be sent to Apple (a queued task)."""
    batch = AssignmentBatch(server_id=server.id, profile_id=profile.id, action="assign", actor="alice", total=1)
    db.session.add(batch)
    db.session.flush()
    db.session.add(AssignmentTask(batch_id=batch.id, device_id=_device(serial).id, serial_number=serial,
                                  state="queued"))
    db.session.commit()


def _device(serial: str) -> Device:
    db.session.expire_all()
    return db.session.execute(select(Device).where(Device.serial_number == serial)).scalar_one()


def _serials(response) -> list[str]:
    assert response.status_code == 200, response.status_code
    return SERIAL_CELL.findall(response.get_data(as_text=True))


def _link(response, rel: str) -> str | None:
    match = re.search(rf'<a rel="{rel}" href="([^"]+)"', response.get_data(as_text=True))
    return html.unescape(match.group(1)) if match else None


STAFF_UUID, LYON_UUID = "9145EDB932A42C48A9DD56AD69213C64", "LYON-UUID-1"


@pytest.fixture
def fleet(app):
    """Two servers (one with a server configuration), three profiles, a varied handful of devices."""
    paris, lyon = _server("Paris", configured=True), _server("Lyon")
    staff, kiosk = _profile(paris, "Staff"), _profile(paris, "Kiosk", status="changed")
    staff.apple_profile_uuid = STAFF_UUID  # configured at Apple, which holds it for C02AAA1
    lyon_default = _profile(lyon, "Lyon default")
    lyon_default.apple_profile_uuid = LYON_UUID
    _seed(paris,
          {"serial_number": "C02AAA1", "model": "iPhone 15", "description": "IPHONE 15 128GB", "profile_id": staff.id,
           "assignment_state": "assigned", "profile_status": "assigned", "profile_uuid": STAFF_UUID,
           "device_assigned_date": NOW - timedelta(days=3)},
          {"serial_number": "C02AAB2", "model": "iPad Air", "description": "IPAD AIR WI-FI", "os": "iPadOS",
           "device_family": "iPad", "profile_id": kiosk.id, "assignment_state": "assigned",
           "profile_status": "pushed", "device_assigned_date": NOW - timedelta(days=1)},
          {"serial_number": "F17XYZ9", "model": "MacBook Air", "description": "MACBOOK AIR 13", "os": "OSX",
           "device_family": "Mac", "assignment_state": "failed", "device_assigned_date": NOW - timedelta(days=2)},
          {"serial_number": "F17OLD0", "model": "iPhone 14", "description": "OLD PHONE", "removed_at": NOW},
          # Apple failed it before; a newer request for it waits to be sent: shown as queued.
          {"serial_number": "DMQ100_", "model": "iPhone 15", "description": "100% BATTERY", "assignment_state": "failed"})
    _queue(paris, staff, "DMQ100_")
    _seed(lyon,
          {"serial_number": "LYN0001", "model": "iPad Pro", "description": "IPAD PRO", "os": "iPadOS",
           "device_family": "iPad", "profile_id": lyon_default.id, "assignment_state": "assigned",
           "profile_status": "removed", "profile_uuid": LYON_UUID})  # removed at Apple since: drift
    return {"paris": paris, "lyon": lyon, "staff": staff, "kiosk": kiosk, "lyon_default": lyon_default}


# ----- filters and search ----------------------------------------------------------------------

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


def test_profile_and_server_filters(admin_client, fleet):
    assert _serials(admin_client.get(f"/devices?profile={fleet['staff'].id}")) == ["C02AAA1"]
    assert _serials(admin_client.get(f"/devices?server={fleet['lyon'].id}")) == ["LYN0001"]
    assert sorted(_serials(admin_client.get(f"/devices?server={fleet['paris'].id}&profile=none"))) == ["DMQ100_", "F17XYZ9"]
    # the per-server list ignores ?server= (the path decides)
    assert _serials(admin_client.get(f"/servers/{fleet['lyon'].id}/devices?server={fleet['paris'].id}")) == ["LYN0001"]


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


# ----- sorting and keyset pages ------------------------------------------------------------------

@pytest.fixture
def many(app):
    """250 current devices with heavy ties on model and assigned date, and some NULLs, plus removed ones."""
    server = _server("Big")
    models = ["iPad Air", "iPhone 15", "MacBook Pro", None]
    dates = [NOW - timedelta(days=d) for d in (1, 2, 3)] + [None]
    _seed(server, *[{"serial_number": f"S{(i * 7919) % 1000:04d}", "model": models[i % 4],
                     "device_assigned_date": dates[(i // 4) % 4]} for i in range(250)])
    _seed(server, *[{"serial_number": f"R{i:04d}", "removed_at": NOW} for i in range(5)])
    return server


def _expected_order(sort: str, direction: str) -> list[str]:
    devices = db.session.execute(select(Device).where(Device.removed_at.is_(None))).scalars().all()
    if sort == "serial":
        return sorted((d.serial_number for d in devices), reverse=direction == "desc")
    attr = {"model": "model", "assigned": "device_assigned_date"}[sort]
    with_value = sorted((d for d in devices if getattr(d, attr) is not None),
                        key=lambda d: (getattr(d, attr), d.id), reverse=direction == "desc")
    without = sorted((d for d in devices if getattr(d, attr) is None), key=lambda d: d.id,
                     reverse=direction == "desc")
    return [d.serial_number for d in with_value + without]  # no value: last, whatever the direction


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

    assert "250 devices" in admin_client.get("/devices").get_data(as_text=True)
    monkeypatch.setattr(listing, "COUNT_CAP", 100)
    assert "100+ devices" in admin_client.get("/devices?q=S").get_data(as_text=True)
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


# ----- CSV export ---------------------------------------------------------------------------------

def test_csv_export_of_the_current_filter(admin_client, fleet):
    response = admin_client.get("/devices.csv?family=iPad&sort=serial&direction=desc")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["serial_number"] for r in rows] == ["LYN0001", "C02AAB2"]
    ipad = rows[1]
    assert ipad["model"] == "iPad Air" and ipad["os"] == "iPadOS" and ipad["profile_status"] == "pushed"
    assert ipad["managed_server"] == "Paris" and ipad["enrollment_profile"] == "Kiosk"
    assert ipad["assignment_state"] == "assigned" and ipad["will_enroll"] == "no"
    assert ipad["device_assigned_date"] == (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    per_server = admin_client.get(f"/servers/{fleet['paris'].id}/devices.csv?family=iPad").get_data(as_text=True)
    assert [r["serial_number"] for r in csv.DictReader(io.StringIO(per_server))] == ["C02AAB2"]
    waiting = list(csv.DictReader(io.StringIO(admin_client.get("/devices.csv?q=DMQ").get_data(as_text=True))))
    assert [(r["serial_number"], r["assignment_state"]) for r in waiting] == [("DMQ100_", "queued")]
    # The request it waits for, as the lists name it: Add Devices to Staff (the CSV used to say nothing of it).
    assert (waiting[0]["waiting_request"], waiting[0]["waiting_for_profile"]) == (f"Add Devices #{_batch_of('DMQ100_')}",
                                                                                "Staff")
    assert (ipad["waiting_request"], ipad["waiting_for_profile"]) == ("", "")


def test_csv_export_names_a_waiting_removal(admin_client, fleet):
    _queue(fleet["paris"], fleet["kiosk"], "C02AAB2")
    task = db.session.execute(select(AssignmentTask).where(AssignmentTask.serial_number == "C02AAB2")).scalar_one()
    task.batch.action = "remove"
    db.session.commit()
    rows = {r["serial_number"]: r for r in csv.DictReader(io.StringIO(admin_client.get("/devices.csv").get_data(as_text=True)))}
    ipad = rows["C02AAB2"]
    assert (ipad["assignment_state"], ipad["enrollment_profile"]) == ("queued", "Kiosk")
    assert (ipad["waiting_request"], ipad["waiting_for_profile"]) == (f"Remove Devices #{_batch_of('C02AAB2')}", "")


def test_a_device_with_a_request_waiting_shows_as_queued_on_its_page(admin_client, fleet):
    page = admin_client.get(f"/devices/{_device('DMQ100_').id}").get_data(as_text=True)
    assert re.search(r"<dt>Assignment</dt><dd>Queued", page)
    assert "A request is waiting to be sent to Apple." in page


def test_csv_link_carries_the_filters(admin_client, fleet):
    page = admin_client.get("/devices?os=OSX&sort=model").get_data(as_text=True)
    link = html.unescape(re.search(r'href="(/devices\.csv[^"]*)"', page).group(1))
    rows = list(csv.DictReader(io.StringIO(admin_client.get(link).get_data(as_text=True))))
    assert [r["serial_number"] for r in rows] == ["F17XYZ9"]


def test_csv_cells_that_look_like_formulas_are_neutralised(admin_client, app):
    server = _server("=cmd|' /C calc'!A0")
    _seed(server, {"serial_number": "EVIL1", "model": "=HYPERLINK(\"http://x\")", "description": "+1+1",
                   "asset_tag": "-2", "color": "@SUM(A1)", "extra": {"imei": ["35"], "note": "=1"}},
          {"serial_number": "GOOD1", "model": "iPhone", "description": "a=b", "asset_tag": "1-2"})
    rows = {r["serial_number"]: r for r in csv.DictReader(io.StringIO(admin_client.get("/devices.csv").get_data(as_text=True)))}
    evil = rows["EVIL1"]
    assert evil["model"] == "'=HYPERLINK(\"http://x\")" and evil["description"] == "'+1+1"
    assert evil["asset_tag"] == "'-2" and evil["color"] == "'@SUM(A1)"
    assert evil["managed_server"].startswith("'=")
    assert '"note": "=1"' in evil["other_apple_attributes"] and evil["other_apple_attributes"].startswith("{")
    assert rows["GOOD1"]["description"] == "a=b" and rows["GOOD1"]["asset_tag"] == "1-2"


def test_csv_export_streams_every_row_across_chunks(admin_client, many, monkeypatch):
    from portal.devices import export

    monkeypatch.setattr(export, "CHUNK", 7)
    response = admin_client.get("/devices.csv?sort=model&direction=desc")
    assert response.is_streamed
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["serial_number"] for r in rows] == _expected_order("model", "desc")


# ----- the device page and automatic enrollment -----------------------------------------------------

def test_the_words_are_spelt_as_apple_and_bmc_spell_them(admin_client, fleet):
    """The portal writes US English as Apple and BMC do ("Organization", "synchronize"): not "Colour" on a device page
    next to Apple's own "color", nor "organisation" in the remedy of Terms Not Accepted."""
    from portal.apple.errors import CursorInvalid, PROFILE_CODES
    from portal.token_status import STATUSES, TERMS_NOT_SIGNED

    page = admin_client.get(f"/devices/{_device('C02AAA1').id}").get_data(as_text=True)
    assert ">Color<" in page and "Colour" not in page
    assert "An administrator of the organization must sign in" in STATUSES[TERMS_NOT_SIGNED].remedy
    assert PROFILE_CODES["MAGIC_INVALID"][1].startswith("The organization magic string")
    assert "did not recognize" in CursorInvalid.default_message


def test_device_page_shows_attributes_server_profile_and_history(admin_client, fleet):
    _seed(fleet["paris"], {"serial_number": "HIST001", "model": "iPhone 15", "color": "MIDNIGHT",
                           "asset_tag": "TAG-9", "profile_id": fleet["staff"].id, "assignment_state": "assigned",
                           "profile_status": "assigned", "profile_uuid": STAFF_UUID,
                           "extra": {"imei": ["356000000000001"], "is_replacement": True}})
    device = _device("HIST001")
    first = AssignmentBatch(server_id=fleet["paris"].id, profile_id=fleet["staff"].id, action="assign", actor="alice")
    second = AssignmentBatch(server_id=fleet["paris"].id, profile_id=fleet["staff"].id, action="remove",
                             origin="retry", actor=None)
    db.session.add_all([first, second])
    db.session.flush()
    db.session.add_all([
        AssignmentTask(batch_id=first.id, device_id=device.id, serial_number="HIST001", state="failed",
                       result="FAILED", detail="Apple could not assign", updated_at=NOW - timedelta(hours=2)),
        AssignmentTask(batch_id=second.id, device_id=device.id, serial_number="HIST001", state="done",
                       result="SUCCESS", updated_at=NOW - timedelta(hours=1))])
    db.session.commit()
    page = admin_client.get(f"/devices/{device.id}").get_data(as_text=True)
    for text in ("HIST001", "MIDNIGHT", "TAG-9", "imei", "356000000000001", "is_replacement",
                 f'href="/profiles/{fleet["staff"].id}"', "Staff", f'href="/servers/{fleet["paris"].id}"',
                 "alice", "Apple could not assign", "FAILED", "SUCCESS", "Add Devices", "Remove Devices",
                 "2026-10-31 22:00 UTC", "Will enroll automatically"):
        assert text in page, text
    assert page.index("SUCCESS") < page.index("Apple could not assign")  # newest first
    # Apple's other attributes read as words, with Apple's own name on hover.
    assert '<dt title="Apple’s name: is_replacement">Is replacement</dt><dd>Yes</dd>' in page
    assert '<dt title="Apple’s name: imei">IMEI</dt><dd>356000000000001</dd>' in page
    # The list links to it.
    assert f'href="/devices/{device.id}"' in admin_client.get("/devices?q=HIST").get_data(as_text=True)


@pytest.mark.parametrize("serial, ready, words", [
    ("C02AAA1", True, "MDM for Paris"),
    ("C02AAB2", False, "Kiosk” is changed since it was last configured: Configure profile"),
    ("F17XYZ9", False, "No enrollment profile is associated with the device: Add Devices to a profile."),
    ("DMQ100_", False, "A request is waiting to be sent to Apple"),
    ("LYN0001", False, "no server configuration: Assign Server Configuration"),
    ("F17OLD0", False, "no longer assigned to this server"),
])
def test_will_enroll_reasons_on_the_device_page(admin_client, fleet, serial, ready, words):
    from portal.devices.enrollment import will_enroll

    device = _device(serial)
    assert will_enroll(device)[0] is ready
    page = admin_client.get(f"/devices/{device.id}").get_data(as_text=True)
    assert html.unescape(words) in html.unescape(page)
    assert ("Won’t enroll automatically" in page) is not ready


def test_will_enroll_and_the_sql_rule_agree(app, fleet):
    from portal.devices.enrollment import not_ready_conditions, will_enroll

    not_ready = set(db.session.execute(select(Device.serial_number).where(*not_ready_conditions())).scalars())
    for device in db.session.execute(select(Device)).scalars():
        if device.removed_at is None:
            assert (device.serial_number in not_ready) is (not will_enroll(device)[0]), device.serial_number
    # Configuring the profile (and Apple assigning its new UUID) and giving Lyon a configuration makes
    # them ready.
    _device("C02AAB2").profile_uuid = "kiosk-uuid-2"  # UUIDs compare in any case
    fleet["kiosk"].status, fleet["kiosk"].apple_profile_uuid = "configured", "KIOSK-UUID-2"
    config = ServerConfiguration(name="Lyon MDM", url="https://mdm.example.com/lyon")
    db.session.add(config)
    db.session.flush()
    fleet["lyon"].configuration_id = config.id
    db.session.commit()
    not_ready = set(db.session.execute(select(Device.serial_number).where(*not_ready_conditions())).scalars())
    assert not_ready == {"F17XYZ9", "DMQ100_", "LYN0001"}  # Apple removed LYN0001's profile: drift


def test_devices_apple_still_hands_a_profile_are_flagged_apart(admin_client, fleet):
    """Not ready here, but Apple still holds a profile for them: they enroll, with settings that are not
    the ones set up here (a profile deleted here, or changed since it was configured)."""
    from portal.devices.enrollment import outlook, outlook_conditions, will_enroll

    kiosk, paris = fleet["kiosk"], fleet["paris"]
    kiosk.apple_profile_uuid = "KIOSK-UUID-1"
    db.session.commit()
    _seed(paris,
          # its profile was deleted here: the association is gone, Apple's profile is not
          {"serial_number": "GONE001", "profile_uuid": "DELETED-UUID", "profile_status": "pushed"},
          # associated with Kiosk, changed since Apple got it
          {"serial_number": "KSK0001", "profile_id": kiosk.id, "profile_uuid": "KIOSK-UUID-1",
           "profile_status": "assigned"},
          # Apple removed its profile: nothing is handed out
          {"serial_number": "RMV0001", "profile_uuid": "DELETED-UUID", "profile_status": "removed"})

    gone = _device("GONE001")
    ready, reason = will_enroll(gone)
    assert (ready, outlook(gone, ready)) == (False, "outdated")
    assert "No enrollment profile is associated" in reason
    assert "a profile this portal no longer has (UUID DELETED-UUID" in reason and "(pushed to the device)" in reason
    page = html.unescape(admin_client.get(f"/devices/{gone.id}").get_data(as_text=True))
    assert "Enrolls with a profile not as set up here" in page and "Won’t enroll automatically" not in page
    kiosk_device = _device("KSK0001")
    ready, reason = will_enroll(kiosk_device)
    assert outlook(kiosk_device, ready) == "outdated"
    assert "Kiosk” is changed since it was last configured: Configure profile." in reason
    assert "the version of the profile “Kiosk” it was last configured with (assigned)" in reason
    assert outlook(_device("RMV0001"), False) == "no"

    # The server page counts them apart, each linking to its filtered list.
    server_page = admin_client.get(f"/servers/{paris.id}").get_data(as_text=True)
    assert "4 devices will fail to enroll automatically" in server_page  # F17XYZ9, DMQ100_, C02AAB2, RMV0001
    assert "2 devices will enroll with a profile that is not as set up here" in server_page
    link = html.unescape(re.search(r'href="([^"]*enroll=outdated[^"]*)"', server_page).group(1))
    assert sorted(_serials(admin_client.get(link))) == ["GONE001", "KSK0001"]
    rows = dict(re.findall(r"<td><a class=.device-link.[^>]*><code>([^<]+)</code></a></td>.*?<td class=\"nowrap\">(<span[^>]*>[^<]+</span>)",
                           admin_client.get("/devices?sort=serial").get_data(as_text=True), re.S))
    assert "Outdated profile" in rows["GONE001"] and "Won’t enroll" in rows["RMV0001"]
    csv_rows = {r["serial_number"]: r["will_enroll"] for r in csv.DictReader(io.StringIO(
        admin_client.get("/devices.csv").get_data(as_text=True)))}
    assert (csv_rows["GONE001"], csv_rows["RMV0001"], csv_rows["C02AAA1"]) == ("outdated", "no", "yes")

    # Python and SQL agree on every current device, for every value of the filter.
    for value in ("yes", "outdated", "no"):
        matched = set(db.session.execute(select(Device.serial_number).where(*outlook_conditions(value))).scalars())
        expected = {d.serial_number for d in db.session.execute(select(Device)).scalars()
                    if d.removed_at is None and outlook(d, will_enroll(d)[0]) == value}
        assert matched == expected, value


def test_not_ready_devices_are_flagged_in_the_list(admin_client, fleet):
    page = admin_client.get("/devices?sort=serial").get_data(as_text=True)
    rows = dict(re.findall(r"<td><a class=.device-link.[^>]*><code>([^<]+)</code></a></td>.*?<td class=\"nowrap\">(<span[^>]*>[^<]+</span>)",
                           page, re.S))
    assert "Yes" in rows["C02AAA1"] and "Won’t enroll" in rows["F17XYZ9"] and "Won’t enroll" in rows["LYN0001"]


def test_server_page_counts_devices_that_will_fail_to_enroll(admin_client, fleet):
    page = admin_client.get(f"/servers/{fleet['paris'].id}").get_data(as_text=True)
    assert "3 devices will fail to enroll automatically" in page
    link = html.unescape(re.search(r'href="([^"]*enroll=no[^"]*)"', page).group(1))
    assert sorted(_serials(admin_client.get(link))) == ["C02AAB2", "DMQ100_", "F17XYZ9"]
    lyon = admin_client.get(f"/servers/{fleet['lyon'].id}").get_data(as_text=True)
    assert "1 device will fail to enroll automatically" in lyon


def test_server_page_without_not_ready_devices_says_nothing(admin_client, app):
    server = _server("Ready", configured=True)
    profile = _profile(server, "Default")
    profile.apple_profile_uuid = "DEFAULT-UUID"
    _seed(server, {"serial_number": "OK00001", "profile_id": profile.id, "profile_uuid": "DEFAULT-UUID",
                   "profile_status": "pushed"})
    assert "will fail to enroll" not in admin_client.get(f"/servers/{server.id}").get_data(as_text=True)


def test_server_counts_agree_with_the_rule_device_by_device(app, fleet):
    """not_ready_counts counts combinations of a device's columns, not devices: many devices sharing
    one, UUIDs in another case, a profile's older UUID, a removed device and an empty server."""
    from portal.devices.enrollment import not_ready_counts, outlook_conditions

    paris, staff = fleet["paris"], fleet["staff"]
    _seed(paris, *[{"serial_number": f"SAME{i:03d}", "profile_id": staff.id, "profile_uuid": STAFF_UUID.lower(),
                    "profile_status": "pushed"} for i in range(5)],  # ready: UUIDs compare in any case
          *[{"serial_number": f"OLDU{i:03d}", "profile_id": staff.id, "profile_uuid": "STAFF-UUID-0",
             "profile_status": "assigned"} for i in range(3)],  # Apple holds an older UUID: outdated
          {"serial_number": "GONE002", "profile_uuid": STAFF_UUID, "profile_status": "removed",
           "removed_at": NOW})
    empty = _server("Empty", configured=True)
    for server in (paris, fleet["lyon"], empty):
        expected = {value: len(db.session.execute(select(Device.id).where(
            Device.server_id == server.id, *outlook_conditions(value))).all()) for value in ("no", "outdated")}
        assert not_ready_counts(server.id) == expected, server.name
    assert not_ready_counts(paris.id) == {"no": 3, "outdated": 3}
    assert not_ready_counts(empty.id) == {"no": 0, "outdated": 0}


def test_server_counts_read_the_enroll_index_alone(app, fleet):
    """At 100,000 devices the counts must not read each device's row nor sort them (SQLite's plan;
    PostgreSQL's depends on its statistics and visibility map, measured by bench/devices.py)."""
    from sqlalchemy import event

    from portal.devices.enrollment import not_ready_counts

    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query plan")
    statements = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        not_ready_counts(fleet["paris"].id)
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    [(statement, parameters)] = [s for s in statements if "FROM device" in s[0]]
    plan = " | ".join(row[-1] for row in db.session.connection().exec_driver_sql(
        "EXPLAIN QUERY PLAN " + statement, parameters))
    assert "COVERING INDEX ix_device_enroll" in plan, plan
    assert "TEMP B-TREE" not in plan and "SCAN device" not in plan, plan
    assert "SCAN groups" in plan, plan  # the rule's subqueries run once per combination, not per device


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


def test_the_device_history_states_use_the_words_of_the_request_page(admin_client, fleet):
    """The history's State column said "done" and "not accessible" (the stored task states): the request's page and
    the Assignment row above it say "Assigned" (or "Removed" for Remove Devices), "Not accessible", "Superseded"."""
    _seed(fleet["paris"], {"serial_number": "HIST002", "profile_id": fleet["staff"].id, "assignment_state": "assigned"})
    device = _device("HIST002")
    states = [("assign", "done"), ("remove", "done"), ("assign", "not_accessible"), ("assign", "superseded")]
    for number, (action, state) in enumerate(states):
        batch = AssignmentBatch(server_id=fleet["paris"].id, profile_id=fleet["staff"].id, action=action, actor="alice")
        db.session.add(batch)
        db.session.flush()
        db.session.add(AssignmentTask(batch_id=batch.id, device_id=device.id, serial_number="HIST002", state=state,
                                      updated_at=NOW - timedelta(hours=number)))
    db.session.commit()
    page = admin_client.get(f"/devices/{device.id}").get_data(as_text=True)
    history = page[page.index('id="history"'):]
    shown = re.findall(r'<span class="badge[^"]*">([^<]+)</span>', history)
    assert shown == ["Superseded", "Not accessible", "Removed", "Assigned"]  # newest first
    assert "<td>done</td>" not in history and "not accessible</td>" not in history


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


# ----- the profile a device waits for --------------------------------------------------------------

def _row(page: str, serial: str) -> str:
    match = re.search(rf"<tr[^>]*>\s*<td><a class=.device-link.[^>]*><code>{serial}</code>.*?</tr>", page, re.S)
    assert match, serial
    return match.group(0)


def _batch_of(serial: str) -> int:
    return db.session.execute(select(AssignmentTask.batch_id).where(
        AssignmentTask.serial_number == serial).order_by(AssignmentTask.id.desc())).scalars().first()


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


def test_the_profiles_waited_for_cost_one_query_per_page(admin_client, fleet):
    """A lookup by the page's device ids (≤ 100), never by matching device: the query count does not grow
    with the number of waiting devices shown."""
    from sqlalchemy import event

    def task_queries() -> int:
        statements = []

        def keep(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", keep)
        try:
            assert admin_client.get("/devices").status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", keep)
        return sum("assignment_task" in s for s in statements)

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


@pytest.mark.parametrize("family, shown", [("AppleTV", "Apple TV (AppleTV)"), ("Vision", "Apple Vision (Vision)"),
                                           ("iPhone", "iPhone")])
def test_the_device_page_names_the_family_as_the_lists_with_apples_value_beside_it(admin_client, fleet, family, shown):
    """The lists say "Apple TV"; the Apple attributes said Apple's "AppleTV" alone. They name it as the lists
    do and keep Apple's value as sent (what the CSV and ?family= carry) when it differs."""
    _seed(fleet["paris"], {"serial_number": "FAM0001", "device_family": family})
    page = admin_client.get(f"/devices/{_device('FAM0001').id}").get_data(as_text=True)
    assert f"<dt>Device family</dt><dd>{shown}</dd>" in page


def test_the_empty_history_names_every_request_that_would_show_in_it(admin_client, fleet):
    page = admin_client.get(f"/devices/{_device('F17XYZ9').id}").get_data(as_text=True)
    assert "No Add Devices, Remove Devices or Release Devices request has concerned this device yet." in page


def test_each_request_in_the_device_history_links_to_its_results(admin_client, fleet):
    """From a device's page an admin follows a request to every device's answer: "Remove Devices #7" links there."""
    _seed(fleet["paris"], {"serial_number": "HIST003", "profile_id": fleet["staff"].id, "assignment_state": "assigned"})
    device = _device("HIST003")
    batch = AssignmentBatch(server_id=fleet["paris"].id, profile_id=fleet["staff"].id, action="remove", actor="alice")
    db.session.add(batch)
    db.session.flush()
    db.session.add(AssignmentTask(batch_id=batch.id, device_id=device.id, serial_number="HIST003", state="done",
                                  updated_at=NOW))
    db.session.commit()
    page = admin_client.get(f"/devices/{device.id}").get_data(as_text=True)
    history = page[page.index('id="history"'):]
    link = re.search(rf'<a href="(/assignments/{batch.id})"[^>]*>Remove Devices #{batch.id}</a>', history)
    assert link is not None
    assert f"Remove Devices #{batch.id}" in admin_client.get(link.group(1)).get_data(as_text=True)


def test_a_device_without_a_profile_leads_to_its_servers_profiles(admin_client, fleet):
    """"Add Devices to a profile" is done from a profile's page: a device without one links to its server's
    Enrollment Profiles; a removed device (nothing to add) does not."""
    paris = fleet["paris"].id
    page = admin_client.get(f"/devices/{_device('F17XYZ9').id}").get_data(as_text=True)
    assert f'<a href="/servers/{paris}/profiles">Enrollment Profiles of Paris</a>: open a profile, then Add Devices' in page
    removed = admin_client.get(f"/devices/{_device('F17OLD0').id}").get_data(as_text=True)
    assert f'href="/servers/{paris}/profiles"' not in removed
