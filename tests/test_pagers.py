"""Every paged list words its pager as Managed Devices does (« First page, ‹ Previous page, Next page ›, with
rel="prev"/"next"), the lists inside pop-ups included: the activity log and the profile page used "← Previous".
Numbered lists also lead to their Last page » (the activity log's oldest entries were out of reach)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from portal.assignments import queries
from portal.devices.counts import recount
from portal.extensions import db
from portal.models import ActivityEntry, AssignmentBatch, AssignmentTask, Device, EnrollmentProfile, ManagedServer
from portal import vault

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
PAGER = re.compile(r'<nav class="pager" aria-label="([^"]+)">(.*?)</nav>', re.DOTALL)


@pytest.fixture
def profile(app) -> EnrollmentProfile:
    """A configured profile of a server with 5 devices, all associated with it."""
    server = ManagedServer(name="Paris", token_ciphertext=vault.encrypt("{}"), key_ciphertext=vault.encrypt("k"),
                           consumer_key="CK_Paris", token_expiry=NOW + timedelta(days=365))
    db.session.add(server)
    db.session.flush()
    profile = EnrollmentProfile(server_id=server.id, name="Sales", status="configured", apple_profile_uuid="UUID-1")
    db.session.add(profile)
    db.session.flush()
    db.session.execute(insert(Device), [{"server_id": server.id, "serial_number": f"SN{n:03d}", "profile_id": profile.id,
                                         "first_seen_at": NOW, "updated_at": NOW} for n in range(5)])
    recount(server.id)
    db.session.commit()
    return profile


def pager(html: str) -> tuple[str, list[tuple[str, str]]]:
    """The page's one pager: its label and its links as (rel, words)."""
    found = PAGER.findall(html)
    assert len(found) == 1, found
    label, inside = found[0]
    links = [(rel or "", words.strip()) for rel, words in
             re.findall(r'<a (?:rel="(\w+)" )?href="[^"]*"[^>]*>([^<]*)</a>', inside)]
    return label, links


LAST = ("", "Last page »")
MIDDLE = [("", "« First page"), ("prev", "‹ Previous page"), ("next", "Next page ›"), LAST]


def test_the_activity_log_pager_is_worded_as_managed_devices(admin_client):
    db.session.execute(insert(ActivityEntry), [{"action": "test", "summary": f"Entry {n}", "level": "info"}
                                               for n in range(120)])
    db.session.commit()
    html = admin_client.get("/activity/?page=2").get_data(as_text=True)
    assert pager(html) == ("Pages", MIDDLE)
    assert "Page 2 of 3" in html
    assert pager(admin_client.get("/activity/").get_data(as_text=True))[1] == [("next", "Next page ›"), LAST]


def test_the_profile_page_device_pager_is_worded_as_managed_devices(admin_client, htmx, profile, monkeypatch):
    monkeypatch.setattr(queries, "PROFILE_PAGE", 2)
    assert pager(admin_client.get(f"/profiles/{profile.id}").get_data(as_text=True)) == \
        ("Device pages", [("next", "Next page ›"), LAST])
    html = htmx.get(f"/profiles/{profile.id}/devices?page=2").get_data(as_text=True)
    assert pager(html) == ("Device pages", MIDDLE)
    # The ticks of other pages, Select all and the rows unticked under it ride along; the rows Select all ticked do not
    # (it covers them).
    assert ('hx-include="#profile-devices-form [name=device]:not([data-by-all]), #profile-devices-form [name=all], '
            '#profile-devices-form [name=except]"') in html


def test_the_select_the_managed_devices_pager_is_worded_as_managed_devices(htmx, profile, monkeypatch):
    monkeypatch.setattr(queries, "PICK_PAGE", 2)
    html = htmx.get(f"/profiles/{profile.id}/devices/add?page=2&q=SN").get_data(as_text=True)
    label, links = pager(html)
    assert (label, links) == ("Device pages", MIDDLE)
    # The filter rides along in every link, and the ticks of other pages (and Select all, not the rows it ticked, but
    # the rows unticked under it) with each click.
    assert re.search(r'rel="next" href="[^"]*q=SN[^"]*"[^>]*'
                     r'hx-include="#pick-form \[name=device\]:not\(\[data-by-all\]\), #pick-form \[name=all_matching\], '
                     r'#pick-form \[name=except\]"', html)


def test_a_requests_results_pager_is_worded_as_managed_devices(admin_client, profile, monkeypatch):
    monkeypatch.setattr(queries, "TASK_PAGE", 2)
    batch = AssignmentBatch(server_id=profile.server_id, profile_id=profile.id, action="assign", actor="alice", total=5)
    db.session.add(batch)
    db.session.flush()
    devices = db.session.execute(select(Device.id, Device.serial_number).order_by(Device.id)).all()
    db.session.add_all([AssignmentTask(batch_id=batch.id, device_id=id, serial_number=serial, state="assigned")
                        for id, serial in devices])
    db.session.commit()
    html = admin_client.get(f"/assignments/{batch.id}?page=2").get_data(as_text=True)
    assert pager(html) == ("Pages", MIDDLE)

