"""The device page (Apple's attributes, server, profile, assignment, request history) and automatic-enrollment
readiness: the rule in Python and in SQL, and where it shows (the device page, the lists, the CSV, the
server page's counts)."""
from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AssignmentBatch, AssignmentTask, Device, ServerConfiguration
from tests.devices_helpers import NOW, STAFF_UUID, _device, _profile, _seed, _serials, _server
from tests.devices_helpers import fleet  # noqa: F401 - the fixture


# ----- the device page ----------------------------------------------------------------------------

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


def test_a_device_with_a_request_waiting_shows_as_queued_on_its_page(admin_client, fleet):
    page = admin_client.get(f"/devices/{_device('DMQ100_').id}").get_data(as_text=True)
    assert re.search(r"<dt>Assignment</dt><dd>Queued", page)
    # What it waits for, not "Add Devices to a profile", which would only make a second request (QA).
    text = html.unescape(page)
    assert re.search(r"No enrollment profile is associated with the device yet: its Add Devices to “[^”]+” \(request "
                     r"#\d+\) waits to be sent to Apple, and it enrolls automatically once Apple accepts it\.", text)
    assert "Add Devices to a profile" not in text


@pytest.mark.parametrize("family, shown", [("AppleTV", "Apple TV (AppleTV)"), ("Vision", "Apple Vision (Vision)"),
                                           ("iPhone", "iPhone")])
def test_the_device_page_names_the_family_as_the_lists_with_apples_value_beside_it(admin_client, fleet, family, shown):
    """The lists say "Apple TV"; the Apple attributes said Apple's "AppleTV" alone. They name it as the lists
    do and keep Apple's value as sent (what the CSV and ?family= carry) when it differs."""
    _seed(fleet["paris"], {"serial_number": "FAM0001", "device_family": family})
    page = admin_client.get(f"/devices/{_device('FAM0001').id}").get_data(as_text=True)
    assert f"<dt>Device family</dt><dd>{shown}</dd>" in page


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
    assert ('use <strong>Add Devices…</strong> above, or open one of the '
            f'<a href="/servers/{paris}/profiles">Enrollment Profiles of Paris</a>') in page
    removed = admin_client.get(f"/devices/{_device('F17OLD0').id}").get_data(as_text=True)
    assert f'href="/servers/{paris}/profiles"' not in removed


# ----- automatic enrollment -----------------------------------------------------------------------

@pytest.mark.parametrize("serial, ready, words", [
    ("C02AAA1", True, "MDM for Paris"),
    ("C02AAB2", False, "Kiosk” is changed since it was last configured: Configure profile"),
    ("F17XYZ9", False, "No enrollment profile is associated with the device: Add Devices to a profile."),
    ("DMQ100_", False, "waits to be sent to Apple, and it enrolls automatically once Apple accepts it"),
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
