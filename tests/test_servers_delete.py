"""Delete a managed server through the web UI: typing its name to confirm, what goes with it (devices,
synchronization history, enrollment profiles, Add Devices requests) in the dialog and the activity log, and
its id never given to a new server."""
from __future__ import annotations

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import ActivityEntry, Device, EnrollmentProfile, SyncRun
from tests.servers_helpers import post_add_server, server_named
from tests.servers_helpers import identity, token  # noqa: F401 - fixtures


def test_delete_requires_typing_the_name(htmx, apple, identity, token, run_jobs):
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    form = htmx.get(f"/servers/{server.id}/delete")
    assert b"Type the server name to confirm" in form.data and b"25 devices" in form.data
    wrong = htmx.post(f"/servers/{server.id}/delete", data={"confirm_name": "paris"})
    assert wrong.status_code == 422 and server_named("Paris") is not None
    ok = htmx.post(f"/servers/{server.id}/delete", data={"confirm_name": "Paris"})
    assert ok.status_code == 204
    assert server_named("Paris") is None
    assert db.session.execute(select(func.count()).select_from(Device)).scalar_one() == 0
    assert db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "server.deleted")).scalar_one()


def test_delete_names_the_profiles_and_requests_that_go_with_the_server(htmx, apple, identity, token, run_jobs):
    """The confirmation and the activity log say what goes with the server: its enrollment profiles (how many are
    configured at Apple, how many devices keep Apple's profile) and its Add Devices requests."""
    from tests.assignments_helpers import configured_profile, devices_of, pick

    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    sales = configured_profile(server, "Sales")
    db.session.add(EnrollmentProfile(server_id=server.id, name="Draft"))  # not configured
    db.session.commit()
    assert pick(htmx, sales, [d.id for d in list(devices_of(server.id).values())[:3]]).status_code == 204
    assert run_jobs() == []

    html = " ".join(htmx.get(f"/servers/{server.id}/delete").get_data(as_text=True).split())
    assert ("with its 25 devices, its synchronization history, its 2 enrollment profiles (1 configured at Apple) and its "
            "1 Add Devices / Remove Devices request with its results. Nothing changes in Apple Business Manager") in html
    assert "<strong>3 devices</strong> are associated with the configured profile." in html
    assert "those devices keep Apple's profile until it is removed from them" in html

    assert htmx.post(f"/servers/{server.id}/delete", data={"confirm_name": "Paris"}).status_code == 204
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "server.deleted")).scalar_one()
    assert entry.summary == ("Deleted managed server Paris with 25 devices, its synchronization history, its "
                             "2 enrollment profiles (1 configured at Apple) and its 1 Add Devices / Remove Devices "
                             "request with its results; "
                             "3 associated devices keep Apple's profile until it is removed from them")
    assert entry.details["profiles"] == 2 and entry.details["associated_devices"] == 3
    assert db.session.execute(select(func.count()).select_from(EnrollmentProfile)).scalar_one() == 0


def test_delete_of_a_server_without_profiles_says_only_what_it_has(htmx, apple, identity, token, run_jobs):
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    html = " ".join(htmx.get(f"/servers/{server.id}/delete").get_data(as_text=True).split())
    assert "with its 25 devices and its synchronization history. Nothing changes in Apple Business Manager" in html
    assert "enrollment profile" not in html and "Remove Devices" not in html
    htmx.post(f"/servers/{server.id}/delete", data={"confirm_name": "Paris"})
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "server.deleted")).scalar_one()
    assert entry.summary == "Deleted managed server Paris with 25 devices and its synchronization history"


def test_a_deleted_server_id_is_never_given_to_a_new_one(htmx, apple, identity, token, run_jobs):
    """The next server (and its devices, sync runs) gets new ids: the old server's links are 404s and its
    activity entries (found by id) do not show on the new server's page."""
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    paris = server_named("Paris")
    old_id, old_max_device = paris.id, db.session.execute(select(func.max(Device.id))).scalar_one()
    old_max_run = db.session.execute(select(func.max(SyncRun.id))).scalar_one()
    assert htmx.post(f"/servers/{old_id}/delete", data={"confirm_name": "Paris"}).status_code == 204
    lyon_token = apple.state.issue_token("Lyon MDM", identity.certificate_pem, devices=3)
    post_add_server(htmx, "Lyon", lyon_token, identity.key_pem)
    run_jobs()
    lyon = server_named("Lyon")
    assert lyon.id > old_id and htmx.get(f"/servers/{old_id}").status_code == 404
    assert db.session.execute(select(func.min(Device.id))).scalar_one() > old_max_device
    assert db.session.execute(select(func.min(SyncRun.id))).scalar_one() > old_max_run
    assert "Paris" not in htmx.get(f"/servers/{lyon.id}").get_data(as_text=True)
