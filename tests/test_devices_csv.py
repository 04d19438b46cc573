"""CSV export of Managed Devices: the current filter and sort, every column (the request a device waits
for too), the list's link to it, cells that look like formulas, and streaming in chunks."""
from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta

from sqlalchemy import select

from portal.extensions import db
from portal.models import AssignmentTask
from tests.devices_helpers import NOW, _batch_of, _expected_order, _queue, _seed, _server
from tests.devices_helpers import fleet, many  # noqa: F401 - the fixtures


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
