"""Every change of a server's token status is written once to the activity log (and announced on the webhook),
whichever path finds it: an Add Devices job, Check now, Renew a server."""
from __future__ import annotations

from sqlalchemy import select

from portal.apple_link import note_status_change
from portal.extensions import db
from portal.models import ActivityEntry, ManagedServer
from portal.models import Device
from tests.assignments_helpers import SIM, configured_profile, paris, pick  # noqa: F401 - paris is a fixture
from tests.servers_helpers import Identity, add_simulated_server, post_renew


def _status_entries() -> list[str]:
    db.session.expire_all()
    return list(db.session.execute(select(ActivityEntry.summary).where(ActivityEntry.action == "server.token_status")
                                   .order_by(ActivityEntry.id)).scalars())


def test_token_revoked_found_by_add_devices_is_logged_once_and_valid_again_after_renew(htmx, apple, run_jobs):
    identity = Identity()
    server = add_simulated_server(htmx, apple, 4, run_jobs=run_jobs, identity=identity, apple_server=SIM)
    profile = configured_profile(server)
    ids = [d.id for d in db.session.execute(select(Device).where(Device.server_id == server.id)).scalars()][:2]
    apple.state.set_fault(SIM, "token_revoked", True)
    assert pick(htmx, profile, ids).status_code in (200, 204)
    assert run_jobs() == []
    db.session.expire_all()
    assert db.session.get(ManagedServer, server.id).token_status == "token_rejected"
    assert "Token Revoked" in htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    assert _status_entries() == ["Token status of Paris is now Token Revoked"]
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "server.token_status")).scalar_one()
    assert entry.level == "error" and entry.actor == "system"
    assert "Token status of Paris is now Token Revoked" in htmx.get("/activity/").get_data(as_text=True)

    htmx.post(f"/servers/{server.id}/check")  # Check now finds the same: nothing new to log
    assert run_jobs() == []
    assert _status_entries() == ["Token status of Paris is now Token Revoked"]

    apple.state.set_fault(SIM, "token_revoked", False)
    renewed = apple.state.issue_token(SIM, identity.certificate_pem, devices=4)
    assert post_renew(htmx, server.id, renewed).status_code == 204
    assert run_jobs() == []  # the account check after the renewal, the held request sent
    assert _status_entries() == ["Token status of Paris is now Token Revoked", "Token status of Paris is now Valid"]
    valid = db.session.execute(select(ActivityEntry).where(ActivityEntry.summary.like("%is now Valid"))).scalar_one()
    assert valid.actor != "system"  # the admin's renewal changed it


def test_a_change_another_job_logged_meanwhile_is_not_logged_again(htmx, apple, paris, run_jobs):
    server, _ = paris(devices=1)
    server = db.session.get(ManagedServer, server.id)
    assert server.token_status == "valid"
    # Another job found the revoked token and committed; this job's copy of the server still says Valid.
    db.session.execute(ManagedServer.__table__.update().values(token_status="token_rejected"))
    server.apple_state = "token_rejected"
    assert note_status_change(server) == 0
    db.session.commit()
    assert _status_entries() == []
    assert db.session.get(ManagedServer, server.id).token_status == "token_rejected"


def test_a_status_change_found_by_a_synchronization_is_logged_once(htmx, apple, run_jobs):
    server = add_simulated_server(htmx, apple, 2, run_jobs=run_jobs, apple_server=SIM)
    apple.state.set_fault(SIM, "access_denied", True)
    htmx.post(f"/servers/{server.id}/sync")
    assert run_jobs() == []
    assert _status_entries() == ["Token status of Paris is now Access Denied"]
    htmx.post(f"/servers/{server.id}/check")  # Check now finds the same: logged already
    assert run_jobs() == []
    assert _status_entries() == ["Token status of Paris is now Access Denied"]
    apple.state.set_fault(SIM, "access_denied", False)
    htmx.post(f"/servers/{server.id}/check")
    assert run_jobs() == []
    assert _status_entries() == ["Token status of Paris is now Access Denied", "Token status of Paris is now Valid"]
