"""Renew a server against the Apple simulator: tokens it must refuse (expired, already held, of an
Apple MDM server connected elsewhere) and replacing the Apple MDM server step by step."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Device, ManagedServer
from tests.servers_helpers import Identity, field_error, post_add_server, post_renew, server_named

DAY = 86400


@pytest.fixture
def identity():
    return Identity()


def _add(htmx, apple, identity, name: str, apple_server: str, devices: int) -> ManagedServer:
    token = apple.state.issue_token(apple_server, identity.certificate_pem, devices=devices)
    assert post_add_server(htmx, name, token, identity.key_pem).status_code == 204
    return server_named(name)


def _expired_token(apple, identity, apple_server: str) -> bytes:
    """A token whose access-token expiry is past: issued by the simulator 400 days ago."""
    apple.state.advance_clock(-400 * DAY)
    try:
        return apple.state.issue_token(apple_server, identity.certificate_pem, devices=1)
    finally:
        apple.state.advance_clock(400 * DAY)


def _current_serials(server_id: int) -> set[str]:
    return set(db.session.execute(select(Device.serial_number).where(
        Device.server_id == server_id, Device.removed_at.is_(None))).scalars())


def test_renew_refuses_an_apple_server_already_connected_and_names_where(htmx, apple, identity, run_jobs):
    a = _add(htmx, apple, identity, "Managed A", "A MDM", 2)
    b = _add(htmx, apple, identity, "Managed B", "B MDM", 3)
    assert run_jobs() == []
    a_key = a.consumer_key
    b2 = apple.state.issue_token("B MDM", identity.certificate_pem)  # a new download for B
    refused = post_renew(htmx, a.id, b2, confirm_replace="y")
    assert refused.status_code == 422
    assert ("Apple MDM server is already connected as “Managed B”"
            in field_error(refused.get_data(as_text=True), "token"))
    assert server_named("Managed A").consumer_key == a_key and server_named("Managed A").apple_server_name == "A MDM"
    assert post_renew(htmx, b.id, b2).status_code == 204  # where it belongs, it renews


def test_the_account_check_pauses_a_server_whose_token_reads_an_apple_server_held_elsewhere(htmx, apple, identity,
                                                                                             run_jobs):
    """Another admin's download can carry another consumer key for the same Apple server: the account
    check, which sees the Apple server itself, stops the second managed server from synchronizing it."""
    a = _add(htmx, apple, identity, "Managed A", "A MDM", 2)
    b = _add(htmx, apple, identity, "Managed B", "B MDM", 3)
    assert run_jobs() == []
    b_serials = _current_serials(b.id)
    b.consumer_key = "CK_downloaded_by_another_admin"  # what Managed B's token had, from another admin
    db.session.commit()
    b2 = apple.state.issue_token("B MDM", identity.certificate_pem)
    assert post_renew(htmx, a.id, b2, confirm_replace="y").status_code == 204
    run_jobs()
    a = server_named("Managed A")
    assert a.apple_state == "server_taken" and "already connected as “Managed B”" in a.apple_state_detail
    assert not _current_serials(a.id) & b_serials  # B's devices were not copied into A
    page = htmx.get(f"/servers/{a.id}").get_data(as_text=True)
    assert "Already Connected" in page and "already connected as “Managed B”" in page
    assert "The account check found: The token is for Apple MDM server" in page  # the portal's words, not Apple's
    # Managed B keeps its Apple server (it held it first): renewed with B's newest token (the download for A
    # voided its own), it is Valid again, while Managed A stays paused.
    b3 = apple.state.issue_token("B MDM", identity.certificate_pem)
    assert post_renew(htmx, b.id, b3, confirm_replace="y").status_code == 204
    run_jobs()
    assert server_named("Managed B").apple_state is None
    assert _current_serials(b.id) == b_serials
    assert server_named("Managed A").apple_state == "server_taken"


def test_add_server_refuses_an_expired_token_on_its_field(htmx, apple, identity):
    token = _expired_token(apple, identity, "Paris MDM")
    from portal.apple.tokens import decrypt_token

    expiry = decrypt_token(token, identity.key).access_token_expiry
    response = post_add_server(htmx, "Paris", token, identity.key_pem)
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "token") == (
        f"This token expired on {expiry:%Y-%m-%d}: download a new one for this MDM server in Apple Business Manager.")
    assert 'value="Paris"' in response.get_data(as_text=True)  # the name typed stays
    assert server_named("Paris") is None


def test_renew_refuses_an_expired_token_and_changes_nothing(htmx, apple, identity, run_jobs):
    server = _add(htmx, apple, identity, "Paris", "Paris MDM", 2)
    run_jobs()
    before = (server.token_expiry, server.token_ciphertext)
    response = post_renew(htmx, server.id, _expired_token(apple, identity, "Paris MDM"))
    assert response.status_code == 422
    assert "This token expired on" in field_error(response.get_data(as_text=True), "token")
    assert "renewed" not in response.headers.get("HX-Trigger", "")
    server = server_named("Paris")
    assert (server.token_expiry, server.token_ciphertext) == before


def test_renew_with_the_token_already_in_use_says_nothing_changed(htmx, apple, identity, run_jobs):
    token = apple.state.issue_token("Paris MDM", identity.certificate_pem, devices=2)
    assert post_add_server(htmx, "Paris", token, identity.key_pem).status_code == 204
    run_jobs()
    server = server_named("Paris")
    same = post_renew(htmx, server.id, token)
    assert same.status_code == 422
    assert (f"This is the token Paris already uses (it expires on {server.token_expiry:%Y-%m-%d}): nothing changed"
            in field_error(same.get_data(as_text=True), "token"))
    # Revoked by a newer download: uploading the revoked token again does not make it look Valid.
    apple.state.issue_token("Paris MDM", identity.certificate_pem)
    htmx.post(f"/servers/{server.id}/check")
    run_jobs()
    assert server_named("Paris").apple_state == "token_rejected"
    again = post_renew(htmx, server.id, token)
    assert again.status_code == 422 and "nothing changed" in field_error(again.get_data(as_text=True), "token")
    assert server_named("Paris").apple_state == "token_rejected"
    assert "Token Revoked" in htmx.get(f"/servers/{server.id}").get_data(as_text=True)


def test_a_replacement_survives_a_first_check_that_fails_and_then_synchronizes(htmx, apple, identity, run_jobs):
    """Renew with Berlin's token (Replace anyway), a token already voided by a newer download: Token Revoked.
    Renewing with Berlin's newest token then connects Berlin, without a second confirmation, and its
    devices replace Paris's at once."""
    server = _add(htmx, apple, identity, "Paris", "Paris MDM", 3)
    assert run_jobs() == []
    voided = apple.state.issue_token("Berlin MDM", identity.certificate_pem, devices=2)
    newest = apple.state.issue_token("Berlin MDM", identity.certificate_pem)
    assert post_renew(htmx, server.id, voided, confirm_replace="y").status_code == 204
    run_jobs()
    assert server_named("Paris").apple_state == "token_rejected"

    renewed = post_renew(htmx, server.id, newest)
    assert renewed.status_code == 204, renewed.get_data(as_text=True)
    assert "Synchronizing its devices now" in renewed.headers["HX-Trigger"]
    assert run_jobs() == []
    server = server_named("Paris")
    assert server.apple_state is None and server.apple_server_name == "Berlin MDM"
    assert _current_serials(server.id) == {d["serial"] for d in apple.state.devices("Berlin MDM")}
    assert "Valid" in htmx.get(f"/servers/{server.id}").get_data(as_text=True)


def test_renewing_after_a_failed_synchronization_synchronizes_again_now(htmx, apple, identity, run_jobs):
    """The token card said Valid while the Synchronization panel kept the failure, and its advice to download a
    new token, until the next scheduled synchronization (a day later by default)."""
    server = _add(htmx, apple, identity, "Paris", "Paris MDM", 3)
    assert run_jobs() == []
    newest = apple.state.issue_token("Paris MDM", identity.certificate_pem)  # voids the token Paris has
    htmx.post(f"/servers/{server.id}/sync")
    run_jobs()
    assert server_named("Paris").sync_runs[0].status == "failed"

    renewed = post_renew(htmx, server.id, newest)
    assert renewed.status_code == 204, renewed.get_data(as_text=True)
    assert "Synchronizing again now: the last synchronization failed." in renewed.headers["HX-Trigger"]
    assert run_jobs() == []
    latest = server_named("Paris").sync_runs[0]
    assert (latest.trigger, latest.status) == ("renewed", "succeeded")

    # After a synchronization that went well, a renewal starts none: the next scheduled one uses the new token.
    again = post_renew(htmx, server.id, apple.state.issue_token("Paris MDM", identity.certificate_pem))
    assert again.status_code == 204 and "Synchroniz" not in again.headers["HX-Trigger"]


def test_renewing_an_expired_server_synchronizes_it_now(htmx, apple, identity, run_jobs):
    """No synchronization runs while a token is expired (none failed either): renewed, the server kept its old devices
    until the next scheduled synchronization, up to a day later."""
    from datetime import datetime, timedelta, timezone

    server = _add(htmx, apple, identity, "Paris", "Paris MDM", 3)
    assert run_jobs() == []
    runs = len(server_named("Paris").sync_runs)
    db.session.get(ManagedServer, server.id).token_expiry = datetime.now(timezone.utc) - timedelta(hours=1)
    db.session.commit()
    renewed = post_renew(htmx, server.id, apple.state.issue_token("Paris MDM", identity.certificate_pem))
    assert renewed.status_code == 204, renewed.get_data(as_text=True)
    assert "Synchronizing again now: none ran while its token was Expired." in renewed.headers["HX-Trigger"]
    assert run_jobs() == []
    paris = server_named("Paris")
    assert len(paris.sync_runs) == runs + 1 and (paris.sync_runs[0].trigger, paris.sync_runs[0].status) == (
        "renewed", "succeeded")


def test_different_apple_server_is_confirmed_on_the_renew_page(htmx, apple, identity, run_jobs):
    """The status says to confirm the replacement on the Renew a server page: that page offers it."""
    server = _add(htmx, apple, identity, "Paris", "Paris MDM", 3)
    assert run_jobs() == []
    server.apple_server_uuid = "0000OLD0000"  # the Apple server this managed server had before
    db.session.commit()
    token = apple.state.issue_token("Paris MDM", identity.certificate_pem)
    assert post_renew(htmx, server.id, token).status_code == 204
    run_jobs()
    assert server_named("Paris").apple_state == "server_mismatch"

    form = htmx.get(f"/servers/{server.id}/renew").get_data(as_text=True)
    assert "Replace anyway" in form and 'name="confirm_replace"' in form
    # Without the box ticked, the same token changes nothing; ticked, it confirms the Apple server it reads.
    assert post_renew(htmx, server.id, token).status_code == 422
    confirmed = post_renew(htmx, server.id, token, confirm_replace="y")
    assert confirmed.status_code == 204
    assert "Synchronizing the devices of the new Apple MDM server now" in confirmed.headers["HX-Trigger"]
    assert run_jobs() == []
    server = server_named("Paris")
    assert server.apple_state is None and server.expected_server_uuid is None
    assert server.sync_runs[0].trigger == "renewed" and server.sync_runs[0].status == "succeeded"


def test_a_token_the_stored_key_cannot_decrypt_does_not_blame_a_key_never_given(htmx, apple, identity, run_jobs):
    server = _add(htmx, apple, identity, "Paris", "Paris MDM", 1)
    other = Identity("new-cert")
    refused = post_renew(htmx, server.id, apple.state.issue_token("Paris MDM", other.certificate_pem))
    message = field_error(refused.get_data(as_text=True), "token")
    assert refused.status_code == 422 and "provided" not in message
    assert "the private key this managed server already has" in message and "new-cert" in message
    assert "Use a new private key" in message
    assert "<details open>" in " ".join(refused.get_data(as_text=True).split()).replace("<details open >", "<details open>")


def _as_pem(token: bytes) -> bytes:
    """The token converted by `openssl smime -pk7out` / `openssl cms -outform PEM`: a PEM PKCS7 block."""
    import base64
    der = base64.b64decode(token.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1])
    body = base64.encodebytes(der).replace(b"\n", b"\r\n")
    return b"-----BEGIN PKCS7-----\r\n" + body + b"-----END PKCS7-----\r\n"


def test_add_and_renew_accept_a_token_re_saved_by_an_editor_or_openssl(htmx, apple, identity, run_jobs):
    """A byte order mark and Windows line ends (an editor), a PEM block (openssl): still the token."""
    token = apple.state.issue_token("Paris MDM", identity.certificate_pem, devices=2)
    resaved = b"\xef\xbb\xbf" + token.replace(b"\n", b"\r\n") + b"\r\n\r\n"
    added = post_add_server(htmx, "Paris", resaved, identity.key_pem)
    assert added.status_code == 204, added.get_data(as_text=True)
    assert run_jobs() == [] and server_named("Paris").apple_server_name == "Paris MDM"
    server = server_named("Paris")
    old_expiry = server.token_expiry
    apple.state.advance_clock(100 * DAY)
    renewed = post_renew(htmx, server.id, _as_pem(apple.state.issue_token("Paris MDM", identity.certificate_pem)))
    assert renewed.status_code == 204, renewed.get_data(as_text=True)
    assert (server_named("Paris").token_expiry - old_expiry).days >= 99


@pytest.mark.parametrize("pasted, expected", [
    ("my key", "The pasted text is not a private key: paste the whole PEM block"),
    ("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", "The pasted text holds a public key"),
])
def test_a_pasted_key_that_is_not_one_is_spoken_of_as_pasted_text(htmx, apple, identity, pasted, expected):
    """Under "…or paste the private key (PEM)" the error said "This file is not a private key (expected PEM, DER or a
    .p12/.pfx file)": there is no file. Said of pasted text, in Add Server and in Renew a server alike."""
    token = apple.state.issue_token("Paris MDM", identity.certificate_pem, devices=1)
    added = post_add_server(htmx, "Paris", token, None, pasted=pasted)
    assert added.status_code == 422
    assert field_error(added.get_data(as_text=True), "private_key_pem").startswith(expected)
    assert "file" not in field_error(added.get_data(as_text=True), "private_key_pem").split(",")[0]

    server = _add(htmx, apple, identity, "Lyon", "Lyon MDM", 1)
    renewed = post_renew(htmx, server.id, apple.state.issue_token("Lyon MDM", identity.certificate_pem),
                         private_key_pem=pasted)
    assert renewed.status_code == 422
    assert field_error(renewed.get_data(as_text=True), "private_key_pem").startswith(expected)


def test_the_activity_log_tells_a_renewal_on_the_same_day_from_no_change(htmx, apple, identity, run_jobs):
    """A new token downloaded the day the old one was: "token expiry 2027-12-04 → 2027-12-04" read as if
    nothing had changed. The times show when both expiries fall on the same day."""
    from datetime import datetime, timezone

    from portal.models import ActivityEntry
    from portal.servers.renewal import _expiry_change

    server = _add(htmx, apple, identity, "Paris", "Paris MDM", 1)
    run_jobs()
    old = server.token_expiry
    apple.state.advance_clock(60)  # the token downloaded again a minute later
    try:
        assert post_renew(htmx, server.id, apple.state.issue_token("Paris MDM", identity.certificate_pem)).status_code == 204
    finally:
        apple.state.advance_clock(-60)
    new = server_named("Paris").token_expiry
    summary = db.session.execute(select(ActivityEntry.summary).where(ActivityEntry.action == "server.renewed")).scalar_one()
    assert summary == f"Renewed Paris: token expiry {_expiry_change(old, new)}"
    if old.date() == new.date():
        assert summary == f"Renewed Paris: token expiry {old:%Y-%m-%d %H:%M} → {new:%H:%M} UTC"

    utc = timezone.utc
    assert _expiry_change(datetime(2026, 12, 4, 9, tzinfo=utc), datetime(2027, 12, 4, 17, 30, tzinfo=utc)) == \
        "2026-12-04 → 2027-12-04"
    assert _expiry_change(datetime(2027, 12, 4, 9, tzinfo=utc), datetime(2027, 12, 4, 17, 30, tzinfo=utc)) == \
        "2027-12-04 09:00 → 17:30 UTC"
    assert _expiry_change(datetime(2027, 12, 4, 9, tzinfo=utc), datetime(2027, 12, 4, 9, tzinfo=utc)) == \
        "unchanged (2027-12-04 09:00 UTC)"
