"""Whole synchronizations against the simulator: manual and scheduled, incremental and full (expired or
exhausted cursor, Full synchronization…), one at a time, progress and results on the server page, the
schedule and its interval setting."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from rq_scheduler import Scheduler
from sqlalchemy import select, update

from jobs.schedule import PREFIX
from portal.extensions import db
from portal.models import ActivityEntry, Device, ManagedServer
from portal.queue import get_redis
from tests.servers_helpers import server_named
from tests.sync_helpers import _device_count, _devices, _kept_count, _runs
from tests.sync_helpers import paris  # noqa: F401 - the fixture


# ----- incremental and full synchronizations ------------------------------------------------------

def test_incremental_sync_applies_added_moved_released_and_profile_changes(htmx, apple, paris, run_jobs):
    server = paris(devices=30)
    sim = apple.state
    serials = [d["serial"] for d in sim.devices("Paris MDM", limit=100)]
    sim.create_server("Other MDM", devices=3)
    sim.add_devices("Paris MDM", 4)
    sim.release_devices(serials[:2])
    sim.move_devices(serials[2:5], "Other MDM")
    sim.mark_pushed(serials[5:6])
    response = htmx.post(f"/servers/{server.id}/sync")
    assert "started" in response.headers["HX-Trigger"]
    assert run_jobs() == []
    run = _runs(server.id)[-1]
    assert run.status == "succeeded" and run.kind == "incremental"
    assert (run.added, run.removed) == (4, 5)
    assert _device_count(server.id) == 30 + 4 - 5
    assert _device_count(server.id, removed=True) == 5
    apple_serials = {d["serial"] for d in sim.devices("Paris MDM", limit=1000)}
    db.session.expire_all()
    ours = set(db.session.execute(select(Device.serial_number).where(Device.server_id == server.id,
                                                                       Device.removed_at.is_(None))).scalars())
    assert ours == apple_serials


def test_every_sync_repairs_a_drifted_device_count(htmx, apple, paris, run_jobs):
    server = paris(devices=20)
    db.session.execute(update(ManagedServer).where(ManagedServer.id == server.id).values(device_count=7))
    db.session.commit()  # drifted, whatever the cause
    apple.state.add_devices("Paris MDM", 2)
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    assert _runs(server.id)[-1].kind == "incremental"
    assert _kept_count(server.id) == 22


def test_expired_cursor_falls_back_to_a_full_fetch(htmx, apple, paris, run_jobs):
    server = paris(devices=20)
    apple.state.advance_clock(8 * 86400)
    apple.state.add_devices("Paris MDM", 2)
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    run = _runs(server.id)[-1]
    assert run.status == "succeeded" and run.kind == "full"
    assert _device_count(server.id) == 22


def test_exhausted_cursor_on_sync_falls_back_to_a_full_fetch_instead_of_asking_again(
        htmx, apple, paris, run_jobs, monkeypatch):
    # Apple lists EXHAUSTED_CURSOR for /devices/sync too (reference §3.0, §3.3): asking again with the
    # same cursor would get the same answer forever.
    from portal.apple import errors
    from portal.apple.client import DEPClient

    server = paris(devices=20)
    stale = server_named("Paris").sync_cursor
    real = DEPClient.sync_devices
    refused: list[str] = []

    def exhausted_once(self, cursor, *args, **kwargs):
        if cursor == stale:
            refused.append(cursor)
            if len(refused) > 3:  # the bug: the same call again and again (stop it, do not hang)
                raise RuntimeError("sync asked Apple again with the cursor it called exhausted")
            raise errors.CursorExhausted(status=400, code="EXHAUSTED_CURSOR", body="EXHAUSTED_CURSOR")
        return real(self, cursor, *args, **kwargs)

    monkeypatch.setattr(DEPClient, "sync_devices", exhausted_once)
    apple.state.add_devices("Paris MDM", 2)
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    run = _runs(server.id)[-1]
    assert refused == [stale]
    assert run.status == "succeeded" and run.kind == "full"
    assert _device_count(server.id) == 22
    assert server_named("Paris").sync_cursor not in (None, stale)


def test_full_synchronization_marks_the_devices_apple_stopped_listing_as_removed(htmx, apple, paris, run_jobs):
    server = paris(devices=5)
    gone = sorted(_devices(server.id))[0]
    apple.state.release_devices([gone], silent=True)  # released in ABM: no 'deleted' change (fleet#49268)
    htmx.post(f"/servers/{server.id}/sync")
    run_jobs()
    assert _runs(server.id)[-1].kind == "incremental" and _devices(server.id)[gone].removed_at is None

    dialog = " ".join(htmx.get(f"/servers/{server.id}/full-sync").get_data(as_text=True).split())
    assert "reads every device Apple assigns" in dialog and "5 devices now: about 1 call to Apple" in dialog
    response = htmx.post(f"/servers/{server.id}/full-sync")
    assert response.status_code == 204 and response.headers["HX-Redirect"] == f"/servers/{server.id}"
    run_jobs()
    run = _runs(server.id)[-1]
    assert (run.kind, run.status, run.removed, run.full_requested) == ("full", "succeeded", 1, True)
    assert _devices(server.id)[gone].removed_at is not None and _kept_count(server.id) == 4
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "server.sync_requested")
                               .order_by(ActivityEntry.id.desc()).limit(1)).scalar_one()
    assert entry.summary.startswith("Full synchronization of Paris requested")

    htmx.post(f"/servers/{server.id}/sync")  # and afterwards, changes only again
    run_jobs()
    assert _runs(server.id)[-1].kind == "incremental"


def test_full_synchronization_is_refused_while_the_token_cannot_sync(htmx, apple, paris, run_jobs):
    server = paris(devices=2)
    server.token_expiry = datetime.now(timezone.utc) - timedelta(days=1)
    db.session.commit()
    assert "disabled" in htmx.get(f"/servers/{server.id}/full-sync").get_data(as_text=True)
    runs = len(_runs(server.id))
    assert htmx.post(f"/servers/{server.id}/full-sync").status_code == 204
    assert len(_runs(server.id)) == runs
    assert "cannot be synchronized" in htmx.get(f"/servers/{server.id}").get_data(as_text=True)


def test_an_expired_server_page_offers_renew_a_server_first_and_no_full_synchronization_pop_up(htmx, apple, paris):
    import re

    server = paris(devices=2)
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    toolbar = page[page.index('aria-label="Server actions"'):page.index("</header>")]
    assert re.search(r'<button type="submit" class="primary"\s*>Synchronize', toolbar)
    assert f'href="/servers/{server.id}/full-sync"' in page

    server.token_expiry = datetime.now(timezone.utc) - timedelta(days=1)
    db.session.commit()
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    toolbar = page[page.index('aria-label="Server actions"'):page.index("</header>")]
    assert re.search(r'<a class="button primary" href="/servers/\d+/renew"', toolbar)
    assert toolbar.index("Renew a server") < toolbar.index("Synchronize")
    assert re.search(r'<button type="submit" disabled aria-describedby="sync-off" title="[^"]+">Synchronize', toolbar)
    assert 'class="primary"' not in toolbar
    panel = page[page.index('id="sync-panel"'):page.index("Synchronization history")]
    assert "/full-sync" not in panel  # no pop-up whose button is disabled
    assert re.search(r'<button type="button" class="small" disabled\s+title="Expired: [^"]+">Full synchronization…',
                     panel)
    assert "Not possible while the token status is Expired." in panel


# ----- one at a time, progress and results --------------------------------------------------------

def test_a_second_synchronize_shows_the_running_one(htmx, apple, paris, run_jobs):
    server = paris(devices=5)
    first = htmx.post(f"/servers/{server.id}/sync")
    second = htmx.post(f"/servers/{server.id}/sync")
    assert "started" in first.headers["HX-Trigger"]
    assert "already running" in second.headers["HX-Trigger"]
    assert len([r for r in _runs(server.id) if r.status == "queued"]) == 1
    row = htmx.get(f"/servers/{server.id}/row")
    assert row.status_code == 200 and b'hx-trigger="every 2s"' in row.data  # keeps polling
    run_jobs()
    done = htmx.get(f"/servers/{server.id}/row")
    assert done.status_code == 286 and b"Succeeded" in done.data  # polling stops


def test_two_synchronize_requests_at_once_start_one_run(htmx, apple, paris, run_jobs, monkeypatch):
    """B looks for a running sync before A has committed its run, then gets the start lock once A
    has let go of it: B looks again under the lock instead of starting a second run."""
    from portal.servers import services

    server = paris(devices=5)  # synchronized once: no run active
    real = services.active_run
    looks = {"n": 0}

    def a_started_one_right_after_the_first_look(srv):
        looks["n"] += 1
        if looks["n"] == 1:
            assert services.start_sync(srv, trigger="manual", actor="alice")[1]  # request A, start to end
            return None  # what B saw just before
        return real(srv)

    monkeypatch.setattr(services, "active_run", a_started_one_right_after_the_first_look)
    response = htmx.post(f"/servers/{server.id}/sync")  # request B
    assert "already running" in response.headers["HX-Trigger"]
    assert [r.status for r in _runs(server.id)] == ["succeeded", "queued"]
    assert run_jobs() == []


def test_progress_and_result_on_the_server_page(htmx, apple, paris, run_jobs):
    server = paris(devices=2500)
    panel = htmx.get(f"/servers/{server.id}/sync-status")
    assert panel.status_code == 286
    html = panel.get_data(as_text=True)
    assert "2500 added" in html or "2,500 added" in html
    run = _runs(server.id)[-1]
    assert run.pages >= 3 and run.devices_seen == 2500  # fetched page by page (limit 1000)
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "server.synchronized")).scalar_one()
    assert "2,500 added" in entry.summary  # written as everywhere else in the portal
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    panel = page[page.index('id="sync-panel"'):page.index("Synchronization history")]
    assert "Never synchronized" not in panel and "Succeeded" in panel and "2,500 added" in panel


def test_managed_devices_lists_synced_devices_with_keyset_pages(htmx, apple, paris, run_jobs):
    server = paris(devices=250)
    first = htmx.get(f"/servers/{server.id}/devices").get_data(as_text=True)
    assert "250 devices" in first and "Next page" in first
    import re

    serials = re.findall(r"<td><a class=.device-link.[^>]*><code>([A-Z0-9]+)</code></a></td>", first)
    assert len(serials) == 100 and serials == sorted(serials)
    next_url = re.search(r'href="([^"]*after=[^"]*)"', first).group(1).replace("&amp;", "&")
    second = htmx.get(next_url).get_data(as_text=True)
    more = re.findall(r"<td><a class=.device-link.[^>]*><code>([A-Z0-9]+)</code></a></td>", second)
    assert len(more) == 100 and more[0] > serials[-1]
    prefix = serials[0][:3]
    found = htmx.get(f"/devices?q={prefix.lower()}", headers={"HX-Target": "device-table"})
    assert b"<html" not in found.data
    assert all(s.startswith(prefix) for s in re.findall(r"<td><a class=.device-link.[^>]*><code>([A-Z0-9]+)</code></a></td>", found.get_data(as_text=True)))


# ----- the schedule -------------------------------------------------------------------------------

def test_scheduled_sync_skips_expired_and_broken_servers(htmx, apple, paris, run_jobs):
    from jobs.sync import sync_all_servers

    server = paris(devices=5)
    expired = ManagedServer(name="Old", token_ciphertext=server.token_ciphertext, key_ciphertext=server.key_ciphertext,
                            consumer_key="CK_old", token_expiry=datetime.now(timezone.utc) - timedelta(days=1))
    db.session.add(expired)
    db.session.commit()
    result = sync_all_servers()
    assert result["started"] == [server.id] and expired.id in result["skipped"]
    run_jobs()
    assert _runs(server.id)[-1].trigger == "scheduled" and _runs(server.id)[-1].status == "succeeded"
    assert _runs(expired.id) == []


def test_a_scheduled_synchronization_is_full_every_full_sync_days(app, htmx, apple, paris, run_jobs):
    from jobs.sync import sync_all_servers

    server = paris(devices=5)
    gone = sorted(_devices(server.id))[0]
    apple.state.release_devices([gone], silent=True)
    assert sync_all_servers()["full"] == []  # its first full synchronization is fresh
    run_jobs()
    assert _runs(server.id)[-1].kind == "incremental"

    for run in _runs(server.id):  # a week later
        run.finished_at = run.finished_at - timedelta(days=7)
    db.session.commit()
    app.config["FULL_SYNC_DAYS"] = 0
    assert sync_all_servers()["full"] == []  # 0: only on request
    run_jobs()
    app.config["FULL_SYNC_DAYS"] = 7
    assert sync_all_servers()["full"] == [server.id]
    run_jobs()
    run = _runs(server.id)[-1]
    assert (run.trigger, run.kind, run.removed) == ("scheduled", "full", 1)
    assert sync_all_servers()["full"] == []  # just done


@pytest.mark.parametrize("interval", [86400, 604800])
def test_a_full_synchronization_finished_late_leaves_the_next_one_on_the_tick_7_days_later(app, htmx, apple, paris,
                                                                                          run_jobs, interval):
    """The last full one finished a minute after its tick: 7 days later the tick found it a minute short of 7 days
    old, and the full synchronization came a whole interval later (8 days apart, or 14 with a weekly interval)."""
    from jobs.sync import sync_all_servers
    from portal.models.setting import set_setting

    set_setting("sync_interval_seconds", str(interval))
    server = paris(devices=2)
    for run in _runs(server.id):
        run.finished_at = datetime.now(timezone.utc) - timedelta(days=7) + timedelta(minutes=1)
    db.session.commit()
    assert sync_all_servers()["full"] == [server.id]
    run_jobs()
    assert _runs(server.id)[-1].kind == "full"
    for run in _runs(server.id):  # half a day (with a daily interval) too early: not yet
        run.finished_at = datetime.now(timezone.utc) - timedelta(days=7) + timedelta(seconds=interval / 2 + 60)
    db.session.commit()
    assert sync_all_servers()["full"] == []


def _schedule_text(htmx, server_id) -> str:
    import re

    page = htmx.get(f"/servers/{server_id}").get_data(as_text=True)
    block = page[page.index('id="sync-schedule"'):]
    return " ".join(re.sub(r"<[^>]+>", "", block[:block.index("</dl>")]).split())


def test_the_server_page_says_when_the_next_scheduled_and_full_synchronizations_come(app, htmx, apple, paris):
    from jobs.schedule import reconcile_now
    from portal.models.setting import set_setting
    from portal.templating import format_datetime

    server = paris(devices=2)  # its first synchronization is a full one: the next full one is 7 days later
    text = _schedule_text(htmx, server.id)
    assert "Every 86,400 seconds (1 day) (Server Synchronization Interval)." in text
    assert "When the scheduler starts: it has not run yet." in text

    reconcile_now()  # what the scheduler does when it starts; it then enqueues at the stored time
    soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(hours=3)
    get_redis().zadd(Scheduler.scheduled_jobs_key, {PREFIX + "server-sync": soon.timestamp()})
    text = _schedule_text(htmx, server.id)
    assert f"Next scheduled synchronization About {format_datetime(soon)} (in 3 hours)." in text
    assert "No scheduler is running now" in text  # none in the tests
    full = soon + timedelta(days=7)  # the first daily one once the last full one is 7 days old
    assert f"Next full synchronization About {format_datetime(full)} (in 7 days): the first scheduled" in text

    app.config["FULL_SYNC_DAYS"] = 0
    assert "Only with Full synchronization…: scheduled synchronizations read Apple's changes only" in \
        _schedule_text(htmx, server.id)

    server.token_expiry = datetime.now(timezone.utc) - timedelta(days=1)
    db.session.commit()
    text = _schedule_text(htmx, server.id)
    assert "but not Paris while its token status is Expired." in text and "Next scheduled" not in text

    set_setting("sync_interval_seconds", "0")
    db.session.commit()
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    assert "Off: the Server Synchronization Interval is 0." in _schedule_text(htmx, server.id)
    assert '<a href="/settings/apple">Server Synchronization Interval</a>' in page


def test_synchronization_interval_setting_reschedules_immediately(htmx, admin_client):
    scheduler = Scheduler(queue_name="default", connection=get_redis())

    def periodic():
        return {job.id[len(PREFIX):]: job.meta["periodic"]["interval"] for job in scheduler.get_jobs()
                if job.id.startswith(PREFIX)}

    page = admin_client.get("/settings/apple").get_data(as_text=True)
    assert 'value="86400"' in page and "Server Synchronization Interval" in page
    assert admin_client.post("/settings/apple", data={"sync_interval": "3600", "warning_days": "30"}).status_code == 302
    always = {"token-status": 300, "assignment-retries": 60}
    assert periodic() == {**always, "server-sync": 3600}
    admin_client.post("/settings/apple", data={"sync_interval": "0", "warning_days": "45"})
    assert periodic() == always
    bad = admin_client.post("/settings/apple", data={"sync_interval": "-5", "warning_days": "30"})
    assert bad.status_code == 422 and b"Enter 0 (disabled)" in bad.data
    assert periodic() == always  # nothing changed


def test_interval_zero_keeps_manual_synchronize(htmx, apple, paris, run_jobs, admin_client):
    server = paris(devices=5)
    admin_client.post("/settings/apple", data={"sync_interval": "0", "warning_days": "30"})
    response = htmx.post(f"/servers/{server.id}/sync")
    assert "started" in response.headers["HX-Trigger"]
    run_jobs()
    assert _runs(server.id)[-1].status == "succeeded"


def test_daily_status_refresh_records_changes(app, htmx, apple, paris, run_jobs):
    from jobs.servers import refresh_token_statuses

    server = paris(devices=1)
    db.session.execute(ManagedServer.__table__.update().values(token_expiry=datetime.now(timezone.utc) + timedelta(days=3)))
    db.session.commit()
    assert refresh_token_statuses() == {"changed": 1, "reminded": 1}  # 3 days left: the 7-day reminder too
    assert refresh_token_statuses() == {"changed": 0, "reminded": 0}
    assert server_named("Paris").token_status == "about_to_expire"
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "server.token_status")
                               .order_by(ActivityEntry.id.desc())).scalars().first()
    assert "About to Expire" in entry.summary


def test_the_history_table_says_each_result_once(htmx, apple, paris, run_jobs):
    """Its Result column repeated "Succeeded 8 minutes ago · 5 added" beside the Started and Added columns."""
    server = paris(devices=5)
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    history = page[page.index("<h2>Synchronization history</h2>"):]
    history = history[:history.index("</table>")]
    assert '<span class="badge badge-ok">Succeeded</span>' in history
    assert " ago · " not in history and "5 added" not in history  # Added has its column
    panel = page[page.index("id=\"sync-panel\""):page.index("<h2>Synchronization history</h2>")]
    assert "5 added" in panel  # the panel above keeps the short account
