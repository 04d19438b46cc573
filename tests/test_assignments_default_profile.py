"""The default profile against the Apple simulator: new devices of a sync (per device family, after an expired
cursor, in pages stored before an Apple error, found by a worker killed before queuing them) get it; one not
configured waits and is reported; a profile's devices re-assigned after a new UUID."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import ActivityEntry, AssignmentBatch, EnrollmentProfile
from tests.assignments_helpers import SIM, configured_profile, devices_of, latest_batch, pick, sim_serials
from tests.assignments_helpers import paris  # noqa: F401 - a fixture
from tests.servers_helpers import TakenJob, server_named


def test_default_profile_assigns_new_devices(htmx, apple, paris, run_jobs):
    from portal.assignments.auto import assign_to_default_profile

    server, profile = paris(devices=6)
    serials = sim_serials(apple)
    assert assign_to_default_profile(server.id, serials[:2]) == []  # no default profile: nothing
    profile.is_default = True
    db.session.commit()
    [batch] = assign_to_default_profile(server.id, serials[:2] + ["NOT-A-DEVICE"])
    assert (batch.origin, batch.actor, batch.total) == ("default profile", "system", 2)
    assert assign_to_default_profile(server.id, ["NOT-A-DEVICE"]) == []
    assert run_jobs() == []
    after = devices_of(server.id)
    assert {s for s, d in after.items() if d.profile_id == profile.id} == set(serials[:2])
    profile.status = "configuring"
    db.session.commit()
    assert assign_to_default_profile(server.id, serials[2:3]) == []  # not configured: no default


def test_devices_new_in_a_sync_get_the_default_profile(htmx, apple, paris, run_jobs):
    """The sync engine hands the serials that appeared to the default profile (end to end)."""
    server, profile = paris(devices=5)
    profile.is_default = True
    db.session.commit()
    existing = set(devices_of(server.id))
    new = apple.state.add_devices(SIM, 3)
    assert htmx.post(f"/servers/{server.id}/sync").status_code == 200
    assert run_jobs() == []  # the sync, then the batch it queued
    after = devices_of(server.id)
    assert {s for s, d in after.items() if d.profile_id == profile.id} == set(new)  # not the existing fleet
    assert all(after[s].profile_id is None for s in existing)
    assert {apple.state.device(s)["profile_uuid"] for s in new} == {profile.apple_profile_uuid}
    batch = db.session.execute(select(AssignmentBatch).where(AssignmentBatch.origin == "default profile")).scalar_one()
    assert (batch.total, batch.succeeded, batch.actor) == (3, 3, "system")


def test_devices_new_in_a_sync_get_the_default_profile_of_their_family(htmx, apple, paris, run_jobs):
    """iPhones to the profile for iPhones, every other family to the profile for every family."""
    server, everything = paris(devices=5)
    everything.is_default = True
    phones = configured_profile(server, "Phones")
    phones.is_default, phones.default_families = True, ["iPhone"]
    db.session.commit()
    existing = set(devices_of(server.id))
    new = apple.state.add_devices(SIM, 24)
    assert htmx.post(f"/servers/{server.id}/sync").status_code == 200
    assert run_jobs() == []  # the sync, then the batches it queued
    after = devices_of(server.id)
    iphones = {s for s in new if after[s].device_family == "iPhone"}
    others = set(new) - iphones
    assert iphones and others  # both kinds arrived: each route is exercised
    assert {s for s, d in after.items() if d.profile_id == phones.id} == iphones
    assert {s for s, d in after.items() if d.profile_id == everything.id} == others
    assert all(after[s].profile_id is None for s in existing)
    assert {apple.state.device(s)["profile_uuid"] for s in iphones} == {phones.apple_profile_uuid}
    batches = db.session.execute(select(AssignmentBatch).where(AssignmentBatch.origin == "default profile")
                                 .order_by(AssignmentBatch.id)).scalars().all()
    assert [(b.profile_id, b.total) for b in batches] == [(everything.id, len(others)), (phones.id, len(iphones))]


def test_a_family_whose_default_profile_is_not_configured_waits_rather_than_taking_the_other_default(
        htmx, apple, paris, run_jobs):
    from portal.assignments.auto import assign_to_default_profile

    server, everything = paris(devices=30)
    everything.is_default = True
    phones = EnrollmentProfile(server_id=server.id, name="Phones", is_default=True, default_families=["iPhone"])
    db.session.add(phones)
    db.session.commit()
    devices = devices_of(server.id)
    iphones = [s for s, d in devices.items() if d.device_family == "iPhone"]
    others = [s for s, d in devices.items() if d.device_family != "iPhone"]
    assert iphones and others
    [batch] = assign_to_default_profile(server.id, iphones + others)
    assert (batch.profile_id, batch.total) == (everything.id, len(others))
    warning = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "assignment.default_skipped")
                                 ).scalar_one()
    count = len(iphones)
    assert warning.summary.startswith(f"{count:,} new iPhone device{'s' if count != 1 else ''} of Paris did not get "
                                      "the default profile “Phones”: it is not configured at Apple.")


def test_devices_new_in_a_fetch_after_the_cursor_expired_get_the_default_profile(htmx, apple, paris, run_jobs):
    """Apple's cursors expire after about a week: the fetch that follows finds the known fleet
    again and the devices that arrived meanwhile, which are new arrivals all the same."""
    server, profile = paris(devices=5)
    profile.is_default = True
    db.session.commit()
    existing = set(devices_of(server.id))
    apple.state.advance_clock(8 * 86400)
    new = apple.state.add_devices(SIM, 3)
    assert htmx.post(f"/servers/{server.id}/sync").status_code == 200
    assert run_jobs() == []
    after = devices_of(server.id)
    assert {s for s, d in after.items() if d.profile_id == profile.id} == set(new)
    assert all(after[s].profile_id is None for s in existing)
    runs = server_named("Paris").sync_runs
    assert runs[0].kind == "full" and runs[0].added == 3  # it was a full fetch


def test_devices_new_in_pages_stored_before_an_apple_error_still_get_the_default_profile(
        htmx, apple, paris, run_jobs, monkeypatch):
    """A sync that fails keeps the pages it wrote: their new devices are queued for the default
    profile then, since the retry finds them known and no longer new."""
    from portal.apple import errors
    from portal.apple.client import DEPClient
    from portal.servers import sync as engine

    server, profile = paris(devices=5)
    profile.is_default = True
    db.session.commit()
    new = apple.state.add_devices(SIM, 3)
    monkeypatch.setattr(engine, "PAGE_LIMIT", 2)
    monkeypatch.setattr(engine, "COMMIT_EVERY_S", 3600)  # the first page waits for a later commit
    real, calls = DEPClient.sync_devices, {"n": 0}

    def second_page_fails(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise errors.TransientError(status=503)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(DEPClient, "sync_devices", second_page_fails)
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    run = server_named("Paris").sync_runs[0]
    assert (run.status, run.retries, run.added) == ("queued", 1, 2)  # the first page is kept; retried later

    from jobs.sync import sync_server

    assert sync_server(run.id)["status"] == "succeeded"  # the retry, come its time
    assert run_jobs() == []
    after = devices_of(server.id)
    assert {s for s, d in after.items() if d.profile_id == profile.id} == set(new)


class _WorkerKilled(BaseException):
    """What `kill -9` does to a job body: nothing after it runs, not even `except Exception`."""


def test_devices_found_by_a_worker_killed_before_queuing_the_default_profile_get_it_next_sync(
        htmx, apple, paris, run_jobs, monkeypatch):
    """The page with the new devices is committed, then the worker dies before it queues their
    default profile: the next synchronization queues it (the serials were committed with the page)."""
    from portal.servers import sync as engine
    from portal.servers.sync import run_sync

    server, profile = paris(devices=5)
    profile.is_default = True
    db.session.commit()
    new = apple.state.add_devices(SIM, 3)
    htmx.post(f"/servers/{server.id}/sync")
    run = server_named("Paris").sync_runs[0]
    job = TakenJob(run.job_id)
    real = engine._assign_default_profile

    def killed(*args, **kwargs):
        raise _WorkerKilled()

    monkeypatch.setattr(engine, "_assign_default_profile", killed)
    with pytest.raises(_WorkerKilled):
        run_sync(run.id)
    job.killed()
    db.session.rollback()
    assert set(server_named("Paris").awaiting_default_profile) == set(new)
    assert all(devices_of(server.id)[s].profile_id is None for s in new)  # stored, not assigned

    monkeypatch.setattr(engine, "_assign_default_profile", real)
    assert htmx.post(f"/servers/{server.id}/sync").status_code == 200  # the dead run is closed, a new one starts
    assert run_jobs() == []
    after = devices_of(server.id)
    assert {s for s, d in after.items() if d.profile_id == profile.id} == set(new)
    assert server_named("Paris").awaiting_default_profile is None
    batch = db.session.execute(select(AssignmentBatch).where(AssignmentBatch.origin == "default profile")).scalar_one()
    assert (batch.total, batch.succeeded) == (3, 3)


def test_a_default_profile_not_configured_is_reported_not_skipped_silently(htmx, apple, paris, run_jobs):
    server, profile = paris(devices=5)
    profile.is_default, profile.status = True, "changed"
    db.session.commit()
    assert "not applied until configured" in htmx.get(f"/profiles/{profile.id}").get_data(as_text=True)
    new = apple.state.add_devices(SIM, 2)
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    assert all(devices_of(server.id)[s].profile_id is None for s in new)
    assert db.session.execute(select(func.count()).select_from(AssignmentBatch).where(
        AssignmentBatch.origin == "default profile")).scalar_one() == 0
    entry = db.session.execute(select(ActivityEntry).where(
        ActivityEntry.action == "assignment.default_skipped")).scalar_one()
    assert entry.level == "warning" and "2 new devices of Paris" in entry.summary and "Sales" in entry.summary
    assert "did not get the default profile" in htmx.get("/activity/").get_data(as_text=True)


def test_reassign_profile_devices_after_a_new_uuid(htmx, apple, paris, run_jobs):
    from portal.apple_link import client_for
    from portal.assignments.services import reassign_profile_devices

    server, profile = paris(devices=4)
    serials = sim_serials(apple)
    pick(htmx, profile, [d.id for s, d in devices_of(server.id).items() if s in serials[:3]])
    run_jobs()
    profile.apple_profile_uuid = client_for(server).define_profile(
        {"profile_name": "Sales", "url": "https://mdm.example.com/v2"})["profile_uuid"]
    db.session.commit()
    batch = reassign_profile_devices(profile, "alice")
    assert (batch.origin, batch.total) == ("reassign", 3)
    assert run_jobs() == []
    assert {apple.state.device(s)["profile_uuid"] for s in serials[:3]} == {profile.apple_profile_uuid}


@pytest.mark.parametrize("status, reason", [
    ("changed", "it changed since it was configured, and Apple still has the previous version. Use Configure profile "
                "again, then Add Devices."),
    ("failed", "it could not be configured at Apple."),
    ("configuring", "it was still being configured at Apple."),
])
def test_a_skipped_default_profile_is_logged_with_the_reason_the_server_page_gives(paris, status, reason):
    """A Changed default was logged as "not configured at Apple", while the server page said it had changed."""
    from portal.assignments.auto import assign_to_default_profile

    server, profile = paris(devices=3)
    profile.is_default, profile.status = True, status
    db.session.commit()
    assert assign_to_default_profile(server.id, list(devices_of(server.id))) == []
    warning = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "assignment.default_skipped")
                                 ).scalar_one()
    assert f"did not get the default profile “{profile.name}”: {reason}" in warning.summary


def test_devices_that_came_while_the_default_was_not_configured_are_offered_on_its_page(htmx, apple, paris, run_jobs):
    """Configured again, the default profile gave nothing to the devices the syncs skipped meanwhile, and no page
    said they would never get it: they showed only as "won't enroll" among all the devices."""
    server, profile = paris(devices=5)
    # The 5 devices there before the profile was the default have no profile either: they are counted too.
    profile.is_default, profile.status = True, "changed"
    db.session.commit()
    new = apple.state.add_devices(SIM, 2)
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    assert all(devices_of(server.id)[s].profile_id is None for s in new)
    page = htmx.get(f"/profiles/{profile.id}").get_data(as_text=True)
    assert 'id="default-waiting"' not in page  # not configured: Add Devices is not offered yet

    profile = db.session.get(EnrollmentProfile, profile.id)
    profile.status = "configured"
    db.session.commit()
    page = " ".join(htmx.get(f"/profiles/{profile.id}").get_data(as_text=True).split())
    assert ('<strong>7 current devices</strong> of Paris for which this is the default profile have no enrollment '
            "profile and will not enroll automatically") in page
    assert f'href="/profiles/{profile.id}/devices/add?profile=none"' in page
    picker = htmx.get(f"/profiles/{profile.id}/devices/add?profile=none").get_data(as_text=True)
    assert all(serial in picker for serial in new)

    pick(htmx, profile, [devices_of(server.id)[s].id for s in new])
    page = " ".join(htmx.get(f"/profiles/{profile.id}").get_data(as_text=True).split())
    assert "<strong>5 current devices</strong> of Paris" in page  # the others are on their way, not counted again
    assert run_jobs() == []
    page = " ".join(htmx.get(f"/profiles/{profile.id}").get_data(as_text=True).split())
    assert "<strong>5 current devices</strong> of Paris" in page

    # A device whose profile an admin took off with Remove Devices is no oversight to point out.
    assert htmx.post(f"/profiles/{profile.id}/devices/remove",
                     data={"device": [str(devices_of(server.id)[new[0]].id)]}).status_code == 204
    assert run_jobs() == []
    assert devices_of(server.id)[new[0]].profile_id is None and latest_batch().succeeded == 1
    page = " ".join(htmx.get(f"/profiles/{profile.id}").get_data(as_text=True).split())
    assert "<strong>5 current devices</strong> of Paris" in page
    profile.is_default = False
    db.session.commit()
    assert 'id="default-waiting"' not in htmx.get(f"/profiles/{profile.id}").get_data(as_text=True)
