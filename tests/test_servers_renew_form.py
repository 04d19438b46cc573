"""The Renew a server pop-up against the Apple simulator: a new token of the same server, another Apple MDM
server's token (confirmed, its profiles then out of date), a token for another key, the pop-up's words for an
expired token and for files to choose again. (Refusals and replacing step by step: test_servers_renew.py.)"""
from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.models import ActivityEntry, Device, EnrollmentProfile
from tests.servers_helpers import Identity, field_error, post_add_server, server_named
from tests.servers_helpers import identity, token  # noqa: F401 - fixtures


def _renew(client, server_id, token, headers=None, **extra):
    import io

    data = {"token": (io.BytesIO(token), "renew_smime.p7m"), "pending_key": "0", "password": "",
            "private_key_pem": "", **extra}
    return client.post(f"/servers/{server_id}/renew", data=data, content_type="multipart/form-data",
                       headers=headers or {})


def test_renewed_from_another_page_that_page_comes_back_with_the_new_token(htmx, apple, identity, token, run_jobs):
    """Renew a server from a held request's page (or the banner of any page) left that page saying Token Revoked,
    with its Renew a server button, until a reload. The servers list refreshes its row instead; the pop-up opened
    as a page of its own goes to the server's page."""
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    for current, lands_on in ((f"/assignments/7?state=failed", "/assignments/7"), ("/devices", "/devices"),
                              (f"/servers/{server.id}", f"/servers/{server.id}"),
                              (f"/servers/{server.id}/renew", f"/servers/{server.id}")):
        renewed = apple.state.issue_token("Paris MDM", identity.certificate_pem)
        response = _renew(htmx, server.id, renewed, headers={"HX-Current-URL": f"http://localhost{current}"})
        assert response.status_code == 204 and response.headers["HX-Redirect"] == lands_on, current
    renewed = apple.state.issue_token("Paris MDM", identity.certificate_pem)
    response = _renew(htmx, server.id, renewed, headers={"HX-Current-URL": "http://localhost/servers"})
    assert "HX-Redirect" not in response.headers and "serversChanged" in response.headers["HX-Trigger"]


def test_renew_with_a_new_token_of_the_same_server(htmx, apple, identity, token, run_jobs):
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    old_expiry = server.token_expiry
    apple.state.advance_clock(200 * 86400)
    renewed = apple.state.issue_token("Paris MDM", identity.certificate_pem)
    response = _renew(htmx, server.id, renewed)
    assert response.status_code == 204, response.get_data(as_text=True)
    assert (server_named("Paris").token_expiry - old_expiry).days >= 199
    assert "renewed" in response.headers["HX-Trigger"]
    assert run_jobs() == []
    assert server_named("Paris").apple_state is None


def test_the_renew_pop_up_says_an_expired_token_expired(htmx, apple, identity, token, run_jobs):
    """Renew a server on an Expired server does not say the token "expires" on a date already past."""
    from datetime import datetime, timedelta, timezone

    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    assert "Current token expires on" in htmx.get(f"/servers/{server.id}/renew").get_data(as_text=True)
    server.token_expiry = datetime.now(timezone.utc) - timedelta(days=2)
    db.session.commit()
    html = htmx.get(f"/servers/{server.id}/renew").get_data(as_text=True)
    assert "expires on" not in html
    assert f"The current token expired on {server.token_expiry:%Y-%m-%d}" in html
    assert "automatic synchronization is disabled" in html


def test_the_renew_pop_up_of_a_revoked_token_does_not_say_when_it_expires(htmx, apple, identity, token, run_jobs):
    """A revoked token was said to expire in a year, and renewing to "void the current one", already void."""
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    apple.state.set_fault(server.apple_server_name, "token_revoked", True)
    htmx.post(f"/servers/{server.id}/check")
    run_jobs()
    html = " ".join(htmx.get(f"/servers/{server.id}/renew").get_data(as_text=True).split())
    assert "expires on" not in html and "voids the current one" not in html
    assert "Apple no longer accepts the current token (Token Revoked): nothing reaches Apple for this server" in html


def test_the_renew_pop_up_asks_for_files_again_only_when_some_were_chosen(htmx, apple, identity, token, run_jobs):
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    nothing = htmx.post(f"/servers/{server.id}/renew", data={"pending_key": "0", "password": "", "private_key_pem": ""},
                        content_type="multipart/form-data")
    assert nothing.status_code == 422 and "choose them again" not in nothing.get_data(as_text=True)
    garbage = _renew(htmx, server.id, b"not a token")
    assert garbage.status_code == 422 and "Files are not kept after an error: choose them again." in garbage.get_data(as_text=True)


def test_renew_refuses_another_servers_token_unless_confirmed(htmx, apple, identity, token, run_jobs):
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    old_key = server.consumer_key
    foreign = apple.state.issue_token("Berlin MDM", identity.certificate_pem, devices=2)
    refused = _renew(htmx, server.id, foreign)
    assert refused.status_code == 422
    assert "different MDM server" in field_error(refused.get_data(as_text=True), "confirm_replace")
    assert server_named("Paris").consumer_key == old_key
    accepted = _renew(htmx, server.id, foreign, confirm_replace="y")
    assert accepted.status_code == 204
    assert "Synchronizing the devices of the new Apple MDM server now" in accepted.headers["HX-Trigger"]
    assert server_named("Paris").consumer_key != old_key
    assert run_jobs() == []
    server = server_named("Paris")
    assert server.apple_server_name == "Berlin MDM"
    # Berlin's devices replaced Paris's at once (a full fetch), not at the next scheduled synchronization.
    berlin = {d["serial"] for d in apple.state.devices("Berlin MDM")}
    current = set(db.session.execute(select(Device.serial_number).where(
        Device.server_id == server.id, Device.removed_at.is_(None))).scalars())
    assert current == berlin and len(berlin) == 2
    assert server.sync_runs[0].trigger == "renewed"
    assert "renewed by" in htmx.get(f"/servers/{server.id}").get_data(as_text=True)


def test_profiles_are_out_of_date_once_another_apple_server_replaced_the_token(htmx, apple, identity, token,
                                                                                run_jobs):
    """Berlin does not know Paris's profiles: Add Devices would be refused by Apple for ever."""
    from tests.assignments_helpers import configured_profile

    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    profile = configured_profile(server_named("Paris"))
    foreign = apple.state.issue_token("Berlin MDM", identity.certificate_pem, devices=2)
    assert _renew(htmx, server_named("Paris").id, foreign, confirm_replace="y").status_code == 204
    db.session.expire_all()
    profile = db.session.get(EnrollmentProfile, profile.id)
    assert profile.status == "changed" and "another Apple MDM server" in profile.status_detail
    page = htmx.get(f"/profiles/{profile.id}").get_data(as_text=True)
    assert "another Apple MDM server" in page and "Configure profile" in page
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "profile.server_replaced")).scalar_one()
    assert entry.level == "warning"


def test_renew_with_a_token_for_another_key_says_so(htmx, apple, identity, token, run_jobs):
    post_add_server(htmx, "Paris", token, identity.key_pem)
    other = Identity("new-cert")
    renewed = apple.state.issue_token("Paris MDM", other.certificate_pem)
    refused = _renew(htmx, server_named("Paris").id, renewed)
    assert refused.status_code == 422 and "new-cert" in field_error(refused.get_data(as_text=True), "token")
    import io

    ok = _renew(htmx, server_named("Paris").id, renewed,
                private_key=(io.BytesIO(other.key_pem), "new.pem"))
    assert ok.status_code == 204
