"""Generate key pair through the web UI: the form and its names (normalised, unique, at most 64 bytes), the
certificate to upload to Apple, Add Server with the key pair, a key pair and a key of one's own refused
together, the activity log's link."""
from __future__ import annotations

import io

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import ActivityEntry, PendingKeyPair
from tests.servers_helpers import field_error, post_add_server, post_renew, server_named
from tests.servers_helpers import identity  # noqa: F401 - a fixture


def test_generate_key_pair_then_add_server_with_it(htmx, apple, run_jobs):
    response = htmx.post("/servers/keys/new", data={"common_name": "Lyon key", "days": "400"})
    assert response.status_code == 200 and b"Download the public certificate" in response.data
    assert b"voids the token in use" in response.data
    pending = db.session.execute(select(PendingKeyPair)).scalar_one()
    assert b"PRIVATE" not in pending.key_ciphertext
    cert = htmx.get(f"/servers/keys/{pending.id}/certificate.pem")
    assert cert.data.startswith(b"-----BEGIN CERTIFICATE-----") and b"PRIVATE" not in cert.data
    token = apple.state.issue_token("Lyon MDM", cert.data, devices=3)
    form = htmx.get("/servers/add").get_data(as_text=True)
    assert "Generated here: Lyon key" in form
    assert post_add_server(htmx, "Lyon", token, None, pending_key=pending.id).status_code == 204
    run_jobs()
    db.session.expire_all()
    assert db.session.get(PendingKeyPair, pending.id).used_by_server_id == server_named("Lyon").id
    # Still offered (one certificate may serve several MDM servers), named with the server that uses it.
    assert "Generated here: Lyon key (used by Lyon)" in htmx.get("/servers/add").get_data(as_text=True)

    # The same token again (a second tab): its Apple MDM server is Lyon's, said next to the token, nothing saved.
    again = post_add_server(htmx, "Lyon 2", token, None, pending_key=pending.id)
    assert again.status_code == 422
    assert "already connected as “Lyon”" in field_error(again.get_data(as_text=True), "token")
    assert server_named("Lyon 2") is None
    for garbage in ("99999999999999999999", "x"):  # not a key pair: the key is then expected below
        odd = post_add_server(htmx, "Lyon 3", token, None, pending_key=garbage)
        assert odd.status_code == 422 and field_error(odd.get_data(as_text=True), "private_key")


def test_a_generated_key_pair_and_a_key_of_ones_own_together_are_refused(htmx, apple, identity, run_jobs):
    """Both chosen was silently decided for the generated one: the admin is asked to pick, nothing is saved."""
    htmx.post("/servers/keys/new", data={"common_name": "Lyon key", "days": "400"})
    pending = db.session.execute(select(PendingKeyPair)).scalar_one()
    token = apple.state.issue_token("Lyon MDM", pending.certificate_pem.encode(), devices=3)
    for key, pasted in ((identity.key_pem, ""), (None, identity.key_pem.decode())):
        response = post_add_server(htmx, "Lyon", token, key, pasted=pasted, pending_key=pending.id)
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert "not both" in field_error(page, "pending_key")
        assert 'value="Lyon"' in page
        assert server_named("Lyon") is None
    assert post_add_server(htmx, "Lyon", token, None, pending_key=pending.id).status_code == 204
    server = server_named("Lyon")
    htmx.post("/servers/keys/new", data={"common_name": "Lyon key 2", "days": "400"})
    second = db.session.execute(select(PendingKeyPair).where(PendingKeyPair.used_by_server_id.is_(None))).scalar_one()
    renewed = apple.state.issue_token("Lyon MDM", second.certificate_pem.encode())
    response = post_renew(htmx, server.id, renewed, pending_key=str(second.id),
                          private_key=(io.BytesIO(identity.key_pem), "key.pem"))
    assert response.status_code == 422 and "not both" in field_error(response.get_data(as_text=True), "pending_key")


def test_key_pair_form_says_how_many_days_it_takes_before_a_refusal(htmx):
    html = htmx.get("/servers/keys/new").get_data(as_text=True)
    assert "How long the certificate is valid, from 30 to 3,650 days (10 years)" in html


def test_key_pair_form_validates(htmx):
    response = htmx.post("/servers/keys/new", data={"common_name": "", "days": "5"})
    assert response.status_code == 422
    assert b"Give the certificate a name." in response.data and b"Enter a number of days from 30 to 3650." in response.data


def test_key_pair_names_are_normalised_and_bad_input_gets_one_plain_message_per_field(htmx):
    response = htmx.post("/servers/keys/new", data={"common_name": "k" * 65, "days": "abc"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(html, "common_name") == "The certificate name can be at most 64 characters."
    assert field_error(html, "days") == "Enter a number of days from 30 to 3650."  # once, not "Not a valid integer"
    assert 'value="abc"' in html  # what was typed stays
    response = htmx.post("/servers/keys/new", data={"common_name": "Lyon\u202eyek", "days": "400"})
    assert response.status_code == 422
    assert "Remove the invisible control characters" in field_error(response.get_data(as_text=True), "common_name")
    assert db.session.execute(select(PendingKeyPair)).first() is None
    response = htmx.post("/servers/keys/new", data={"common_name": "  Lyon \t\u3000 key ", "days": "400"})
    assert response.status_code == 200
    assert db.session.execute(select(PendingKeyPair.label)).scalar_one() == "Lyon key"


def test_a_key_pair_name_of_64_characters_that_take_more_than_64_bytes_is_a_field_error(htmx):
    """A certificate's name is limited to 64 bytes of UTF-8 (what cryptography checks), not 64 characters: 64
    accented letters were a 500."""
    for name in ("é" * 64, "東" * 22, "\U0001F600" * 17):
        response = htmx.post("/servers/keys/new", data={"common_name": name, "days": "400"})
        assert response.status_code == 422
        assert field_error(response.get_data(as_text=True), "common_name") == (
            "The certificate name can be at most 64 bytes: accented letters and other non-ASCII characters count as "
            "2 to 4 bytes each.")
    assert db.session.execute(select(PendingKeyPair)).first() is None
    response = htmx.post("/servers/keys/new", data={"common_name": "é" * 32, "days": "400"})
    assert response.status_code == 200
    assert db.session.execute(select(PendingKeyPair.label)).scalar_one() == "é" * 32


def test_key_pair_names_are_unique_whatever_their_case_and_spacing(htmx, apple, run_jobs):
    assert htmx.post("/servers/keys/new", data={"common_name": "K", "days": "400"}).status_code == 200
    response = htmx.post("/servers/keys/new", data={"common_name": " k ", "days": "400"})
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "common_name") == (
        "A key pair named “K” was already generated here. Choose another name.")
    assert db.session.execute(select(func.count()).select_from(PendingKeyPair)).scalar_one() == 1
    assert htmx.get("/servers/add").get_data(as_text=True).count("Generated here: ") == 1

    # Used by a server, it still counts (deleting the server offers it again), and the message says where it is.
    pending = db.session.execute(select(PendingKeyPair)).scalar_one()
    cert = htmx.get(f"/servers/keys/{pending.id}/certificate.pem").data
    token = apple.state.issue_token("Lyon MDM", cert, devices=1)
    assert post_add_server(htmx, "Lyon", token, None, pending_key=pending.id).status_code == 204
    response = htmx.post("/servers/keys/new", data={"common_name": "K", "days": "400"})
    assert field_error(response.get_data(as_text=True), "common_name") == (
        "A key pair named “K” was already generated here (used by Lyon). Choose another name.")


def test_the_key_pair_form_suggests_a_name_no_key_pair_has(htmx):
    assert 'value="ADE Portal"' in htmx.get("/servers/keys/new").get_data(as_text=True)
    assert htmx.post("/servers/keys/new", data={"common_name": "ADE Portal", "days": "400"}).status_code == 200
    assert 'value="ADE Portal 2"' in htmx.get("/servers/keys/new").get_data(as_text=True)


def test_a_generated_key_pair_is_linked_from_the_activity_log(htmx):
    htmx.post("/servers/keys/new", data={"common_name": "Lyon key", "days": "400"})
    pending = db.session.execute(select(PendingKeyPair)).scalar_one()
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "keypair.generated")).scalar_one()
    assert (entry.object_type, entry.object_id, entry.object_label) == ("pending_key_pair", pending.id, "Lyon key")
    html = htmx.get("/activity/?kind=pending_key_pair").get_data(as_text=True)
    assert f'href="/servers/keys/{pending.id}">Lyon key</a>' in html  # its row of the Key pairs page
    assert "Generated key pairs" in html  # the Object filter offers them
