"""Managed servers through the web UI against the Apple simulator: Add Server, key forms, bad
input, Generate key pair, renew, Apple-reported states, delete."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from portal.extensions import db
from portal.htmx import STOP_POLLING
from portal.models import ActivityEntry, Device, EnrollmentProfile, ManagedServer, PendingKeyPair, SyncRun
from tests.servers_helpers import Identity, TakenJob, field_error, post_add_server, post_renew, server_named

VECTOR = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "abm-token-2025"


@pytest.fixture
def identity():
    return Identity()


@pytest.fixture
def token(apple, identity):
    """A server token issued by the simulator for `identity`, for a server with 25 devices."""
    return apple.state.issue_token("Paris MDM", identity.certificate_pem, devices=25)


@pytest.mark.parametrize("form,password", [("pkcs1", None), ("pkcs8", None), ("pkcs8", "s3cret pass"),
                                           ("pkcs1", "s3cret pass"), ("der", None), ("p12", "s3cret pass"),
                                           ("p12", None)])
def test_add_server_with_each_key_form_then_account_and_sync(htmx, app, apple, identity, token, run_jobs, form, password):
    key = identity.key_as(form, password)
    response = post_add_server(htmx, "Paris", token, key, filename=f"key.{form}", password=password or "")
    assert response.status_code == 204, response.get_data(as_text=True)
    assert "closeModal" in response.headers["HX-Trigger"] and "serversChanged" in response.headers["HX-Trigger"]
    assert run_jobs() == []
    server = server_named("Paris")
    assert server.apple_server_name == "Paris MDM" and server.org_name
    assert db.session.execute(select(func.count()).select_from(Device)).scalar_one() == 25
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    assert "Paris MDM" in page and "Valid" in page and "Succeeded" in page


def test_account_details_stop_polling_when_their_worker_was_killed(htmx, apple, identity, token, run_jobs):
    post_add_server(htmx, "Paris", token, identity.key_pem)
    server = server_named("Paris")
    taken = TakenJob(server.account_job_id)  # taken by a worker...
    taken.alive()
    panel = htmx.get(f"/servers/{server.id}/account")
    assert panel.status_code == 200 and "Asking Apple" in panel.get_data(as_text=True)

    taken.killed()  # ...killed outright: its key has expired
    panel = htmx.get(f"/servers/{server.id}/account")
    assert panel.status_code == STOP_POLLING and "Asking Apple" not in panel.get_data(as_text=True)
    assert "Check now" in panel.get_data(as_text=True)  # offered again


def test_server_names_are_unique_whatever_their_case_in_any_script(htmx, apple, identity, run_jobs):
    first = apple.state.issue_token("Paris MDM", identity.certificate_pem, devices=1)
    assert post_add_server(htmx, "Évry", first, identity.key_pem).status_code == 204
    second = apple.state.issue_token("Lyon MDM", identity.certificate_pem, devices=1)
    response = post_add_server(htmx, "ÉVRY", second, identity.key_pem)
    assert response.status_code == 422 and "already exists" in field_error(response.get_data(as_text=True), "name")
    assert server_named("ÉVRY") is None


def test_server_names_are_normalised_and_clash_whatever_their_spacing(htmx, apple, identity, run_jobs):
    first = apple.state.issue_token("Paris MDM", identity.certificate_pem, devices=1)
    assert post_add_server(htmx, "  Demo \t MDM\u00a0", first, identity.key_pem).status_code == 204
    assert server_named("Demo MDM") is not None  # stored as it is shown
    second = apple.state.issue_token("Lyon MDM", identity.certificate_pem, devices=1)
    # Any Unicode space, any case (line breaks: see the profile and configuration tests; here the name is
    # also in the token's file name, where a line break would break the upload itself).
    for typed in (" Demo  MDM", "demo\u2003mdm", "Demo\tMDM", "DEMO\u00a0MDM "):
        response = post_add_server(htmx, typed, second, identity.key_pem)
        assert response.status_code == 422
        # The message names the server that holds the name, as stored, not what was typed.
        assert ("A managed server named “Demo MDM” already exists"
                in field_error(response.get_data(as_text=True), "name")), typed
    assert db.session.execute(select(func.count()).select_from(ManagedServer)).scalar_one() == 1


def test_a_name_stored_with_odd_spacing_still_clashes_and_is_deleted_by_its_shown_name(htmx, apple, identity, token,
                                                                                       run_jobs):
    assert post_add_server(htmx, "Paris", token, identity.key_pem).status_code == 204
    run_jobs()
    server_id = server_named("Paris").id
    # A row saved before names were normalised.
    db.session.execute(text("UPDATE managed_server SET name = ' Demo  MDM'"))
    db.session.commit()
    again = apple.state.issue_token("Lyon MDM", identity.certificate_pem, devices=1)
    response = post_add_server(htmx, "Demo MDM", again, identity.key_pem)
    assert response.status_code == 422
    assert "A managed server named “ Demo  MDM” already exists" in field_error(response.get_data(as_text=True), "name")

    wrong = htmx.post(f"/servers/{server_id}/delete", data={"confirm_name": "demo mdm"})  # the case still counts
    assert wrong.status_code == 422
    assert field_error(wrong.get_data(as_text=True), "confirm_name") == "Type Demo MDM exactly to confirm."
    ok = htmx.post(f"/servers/{server_id}/delete", data={"confirm_name": "Demo MDM"})  # what the dialog shows
    assert ok.status_code == 204
    assert db.session.execute(select(func.count()).select_from(ManagedServer)).scalar_one() == 0


@pytest.mark.parametrize("name", ["Paris\u202eSDM\u202c", "Par\u200bis", "\ufeffParis", "Paris \u2066MDM\u2069",
                                  "Paris\u200fMDM", "Paris\x07MDM", "Paris\u00adMDM"])
def test_names_with_invisible_control_characters_are_refused(htmx, apple, identity, token, name):
    response = post_add_server(htmx, name, token, identity.key_pem)
    assert response.status_code == 422
    assert "Remove the invisible control characters from the name." in field_error(response.get_data(as_text=True),
                                                                                   "name")
    assert db.session.execute(select(func.count()).select_from(ManagedServer)).scalar_one() == 0


def test_a_name_too_long_says_the_limit(htmx, apple, identity, token):
    response = post_add_server(htmx, "P" * 121, token, identity.key_pem)
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "name") == "The name can be at most 120 characters."
    assert post_add_server(htmx, " " + "P" * 120 + " ", token, identity.key_pem).status_code == 204
    assert server_named("P" * 120) is not None


def test_an_apple_server_already_connected_is_refused_with_where_it_is(htmx, apple, identity, token, run_jobs):
    assert post_add_server(htmx, "Paris", token, identity.key_pem).status_code == 204
    again = apple.state.issue_token("Paris MDM", identity.certificate_pem)  # a new download, same Apple server
    response = post_add_server(htmx, "Paris again", again, identity.key_pem)
    assert response.status_code == 422
    assert "already connected as “Paris”" in field_error(response.get_data(as_text=True), "token")
    assert server_named("Paris again") is None


def test_pasted_pem_key(htmx, apple, identity, token, run_jobs):
    response = post_add_server(htmx, "Pasted", token, None, pasted=identity.key_pem.decode())
    assert response.status_code == 204


@pytest.mark.parametrize("how", ["pasted_on_one_line", "file_in_utf16", "file_with_certificate_and_cr_line_ends"])
def test_a_key_re_saved_or_pasted_otherwise_is_read(htmx, apple, identity, token, run_jobs, how):
    pem = identity.key_pem
    if how == "pasted_on_one_line":  # as a web page or chat gives it back
        response = post_add_server(htmx, "Paris", token, None, pasted=" ".join(pem.decode().split("\n")))
    else:
        key = (pem.decode().encode("utf-16") if how == "file_in_utf16"
               else (identity.certificate_pem + pem).replace(b"\n", b"\r"))
        response = post_add_server(htmx, "Paris", token, key)
    assert response.status_code == 204, response.get_data(as_text=True)
    assert server_named("Paris") is not None


def test_secrets_are_encrypted_at_rest_and_never_shown(htmx, app, apple, identity, token, run_jobs):
    post_add_server(htmx, "Paris", token, identity.key_pem)
    creds = apple.state.credentials("Paris MDM")
    run_jobs()
    raw = db.session.execute(text("SELECT token_ciphertext, key_ciphertext FROM managed_server")).one()
    for secret in (creds["consumer_secret"], creds["access_secret"], creds["access_token"]):
        assert secret.encode() not in raw[0]
    assert b"PRIVATE KEY" not in raw[1]
    server = server_named("Paris")
    for url in ("/servers", f"/servers/{server.id}", "/activity/"):
        html = htmx.get(url).get_data(as_text=True)
        for secret in (creds["consumer_secret"], creds["access_secret"], creds["access_token"]):
            assert secret not in html
    from portal.queue import get_queue
    from rq.registry import FinishedJobRegistry

    for job_id in FinishedJobRegistry(queue=get_queue()).get_job_ids():
        job = get_queue().fetch_job(job_id)
        assert all(isinstance(arg, int) for arg in job.args), job.args  # only ids in job arguments


@pytest.mark.parametrize("case", ["no_token", "not_a_token", "wrong_key", "no_key", "wrong_password",
                                  "missing_password", "certificate_as_key", "duplicate_name", "empty_name"])
def test_bad_input_is_reported_next_to_the_field_and_nothing_is_saved(htmx, apple, identity, token, case):
    other = Identity("someone-else")
    encrypted = identity.key_as("pkcs8", "right password")
    name, tok, key, password, field = "Paris", token, identity.key_pem, "", None
    if case == "no_token":
        tok, field = None, "token"
    elif case == "not_a_token":
        tok, field = b"hello, I am a text file", "token"
    elif case == "wrong_key":
        key, field = other.key_pem, "token"
    elif case == "no_key":
        key, field = None, "private_key"
    elif case == "wrong_password":
        key, password, field = encrypted, "wrong password", "password"
    elif case == "missing_password":
        key, field = encrypted, "password"
    elif case == "certificate_as_key":
        key, field = identity.certificate_pem, "private_key"
    elif case == "empty_name":
        name, field = "", "name"
    elif case == "duplicate_name":
        assert post_add_server(htmx, "Paris", token, identity.key_pem).status_code == 204
        field = "name"
    before = db.session.execute(select(func.count()).select_from(ManagedServer)).scalar_one()
    response = post_add_server(htmx, name, tok, key, password=password)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    message = field_error(html, field)
    assert message, html
    if case == "wrong_key":
        assert "someone-else" not in message and "portal-test" in message  # names the token's certificate
    assert db.session.execute(select(func.count()).select_from(ManagedServer)).scalar_one() == before
    assert 'value="Paris"' in html or case == "empty_name"  # what the admin typed is kept


def test_an_empty_add_server_form_names_every_missing_part_at_once(htmx):
    response = post_add_server(htmx, "", None, None)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert field_error(html, "name") and "server token file" in field_error(html, "token")
    assert "Provide the private key" in field_error(html, "private_key")
    assert db.session.execute(select(func.count()).select_from(ManagedServer)).scalar_one() == 0


def test_an_empty_token_file_is_called_empty_not_missing(htmx, apple, identity, token, run_jobs):
    """A 0-byte file (a download cut short, a sync client's placeholder) was chosen: "choose the file" would mislead."""
    response = post_add_server(htmx, "Paris", b"", identity.key_pem)
    assert response.status_code == 422
    message = field_error(response.get_data(as_text=True), "token")
    assert "Paris_Token_2026-11-26T10-00-00Z_smime.p7m is empty" in message and "Choose the server token" not in message
    assert server_named("Paris") is None

    assert post_add_server(htmx, "Paris", token, identity.key_pem).status_code == 204
    run_jobs()
    server = server_named("Paris")
    response = post_renew(htmx, server.id, b"")
    assert response.status_code == 422
    assert "renew_smime.p7m is empty" in field_error(response.get_data(as_text=True), "token")


def test_the_same_name_added_by_two_admins_at_once_is_refused_next_to_the_field(htmx, apple, identity, token,
                                                                                 run_jobs, monkeypatch):
    """Both requests pass the name check before either saves: the database's unique name decides."""
    from portal.servers import services

    assert post_add_server(htmx, "Paris", token, identity.key_pem).status_code == 204
    monkeypatch.setattr(services, "taken_name", lambda *args: None)  # the other admin has not saved yet
    other = apple.state.issue_token("Lyon MDM", identity.certificate_pem, devices=1)
    response = post_add_server(htmx, "Paris", other, identity.key_pem)
    assert response.status_code == 422
    assert "was added a moment ago" in field_error(response.get_data(as_text=True), "name")
    assert db.session.execute(select(func.count()).select_from(ManagedServer)).scalar_one() == 1


def test_add_server_without_javascript_is_a_plain_page(admin_client, apple, identity, token, run_jobs):
    page = admin_client.get("/servers/add")
    assert page.status_code == 200 and b"<html" in page.data and b"Add a Server" in page.data
    response = post_add_server(admin_client, "Plain", token, identity.key_pem)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/servers/")


def test_real_apple_token_is_decrypted_and_refused_as_expired(htmx, apple, run_jobs):
    """A real token from Apple Business Manager, expired on 2026-01-17: decrypted (its date is read from it),
    then refused on its field, since a server with it could never synchronize."""
    if not VECTOR.exists():
        pytest.skip(f"the shared Apple token vector is not at {VECTOR}")
    token = (VECTOR / "server-token.p7m").read_bytes()
    key = (VECTOR / "private-key.pem").read_bytes()
    response = post_add_server(htmx, "Real ABM", token, key)
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "token") == (
        "This token expired on 2026-01-17: download a new one for this MDM server in Apple Business Manager.")
    assert server_named("Real ABM") is None
    assert db.session.execute(select(SyncRun)).first() is None


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
    assert "Generated here: Lyon key" not in htmx.get("/servers/add").get_data(as_text=True)

    # A second tab still offering the key pair just used: said next to the field, nothing saved.
    again = post_add_server(htmx, "Lyon 2", token, None, pending_key=pending.id)
    assert again.status_code == 422
    assert "no longer available" in field_error(again.get_data(as_text=True), "pending_key")
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
    assert f'href="/servers/keys/{pending.id}/certificate.pem">Lyon key</a>' in html
    assert "Generated key pairs" in html  # the Object filter offers them


def _renew(client, server_id, token, **extra):
    import io

    data = {"token": (io.BytesIO(token), "renew_smime.p7m"), "pending_key": "0", "password": "",
            "private_key_pem": "", **extra}
    return client.post(f"/servers/{server_id}/renew", data=data, content_type="multipart/form-data")


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
    from tests.test_assignments import configured_profile

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


def test_terms_not_signed_then_check_now_clears_it(htmx, apple, identity, token, run_jobs):
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    apple.state.set_fault("Paris MDM", "terms_not_signed", True)
    htmx.post(f"/servers/{server.id}/check")
    run_jobs()
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    assert "Terms Not Accepted" in page and "accept them" in page
    # The action to take leads the page: accept at Apple, then Check now (not Renew a server).
    header = page.split('id="server-header"', 1)[1].split("</header>", 1)[0]
    assert 'class="button primary" href="https://business.apple.com/"' in header
    assert f'hx-post="/servers/{server.id}/check"' in header and "Renew a server" in header
    assert header.index("business.apple.com") < header.index("Renew a server")
    sync = htmx.post(f"/servers/{server.id}/sync")
    assert "cannot be synchronized" in sync.headers["HX-Trigger"]
    apple.state.set_fault("Paris MDM", "terms_not_signed", False)
    htmx.post(f"/servers/{server.id}/check")
    run_jobs()
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    assert "Valid" in page and "business.apple.com" not in page
    assert server_named("Paris").apple_state is None


def test_token_replaced_by_a_newer_download_is_reported_as_revoked(htmx, apple, identity, token, run_jobs):
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    apple.state.issue_token("Paris MDM", identity.certificate_pem)  # downloaded again in ABM
    htmx.post(f"/servers/{server.id}/check")
    run_jobs()
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    assert "Token Revoked" in page and "Renew the server with the newest token" in page


def test_access_denied_state(htmx, apple, identity, token, run_jobs):
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    apple.state.set_fault("Paris MDM", "access_denied", True)
    htmx.post(f"/servers/{server_named('Paris').id}/check")
    run_jobs()
    assert server_named("Paris").apple_state == "access_denied"


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
    from tests.test_assignments import configured_profile, devices_of, pick

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


def test_unknown_server_is_a_404(htmx):
    assert htmx.get("/servers/999").status_code == 404
    assert htmx.post("/servers/999/sync").status_code == 404


def test_empty_states(admin_client):
    assert b"No managed servers yet" in admin_client.get("/servers").data
    assert b"No devices yet" in admin_client.get("/devices").data


@pytest.mark.parametrize("name", ["Équipe 👩\u200d💻", "فرم\u200cها", "क्\u200dष"])
def test_joiners_that_emoji_and_scripts_need_are_accepted(htmx, apple, identity, token, name):
    assert post_add_server(htmx, name, token, identity.key_pem).status_code == 204
    assert server_named(name) is not None  # stored as typed, joiner included


@pytest.mark.parametrize("name", ["Pa\u200dris", "Paris\u200c", "\u200dParis", "👩\u200d 💻", "👩\u200d\u200d💻"])
def test_joiners_that_join_nothing_visible_are_refused(htmx, apple, identity, token, name):
    response = post_add_server(htmx, name, token, identity.key_pem)
    assert response.status_code == 422
    assert "invisible control characters" in field_error(response.get_data(as_text=True), "name")


def test_a_name_with_a_joiner_still_clashes_with_the_same_name_without_it(htmx, apple, identity, token):
    from portal.names import taken_name

    assert post_add_server(htmx, "فرمها", token, identity.key_pem).status_code == 204
    assert taken_name(ManagedServer.name, "فرم\u200cها") == "فرمها"


# ----- tokens that need an admin, on every page -------------------------------------------------

def _server_expiring(name: str, days: float, apple_state: str | None = None) -> ManagedServer:
    from datetime import datetime, timedelta, timezone

    from portal import vault

    server = ManagedServer(name=name, token_ciphertext=vault.encrypt("{}"), key_ciphertext=vault.encrypt("k"),
                           consumer_key=f"CK_{name}", apple_state=apple_state,
                           token_expiry=datetime.now(timezone.utc) + timedelta(days=days))
    db.session.add(server)
    db.session.commit()
    return server


def test_an_expired_token_is_said_to_have_expired_not_to_expire(admin_client):
    """Device Assignment and the server page say "expired" for a date already past, "expires" for one to come."""
    gone = _server_expiring("Lyon", -2)
    _server_expiring("Paris", 200)
    listing = admin_client.get("/servers").get_data(as_text=True)
    lyon = listing[listing.index(f'id="server-{gone.id}"'):]
    lyon = lyon[:lyon.index("</tr>")]
    assert f'expired <span class="nowrap">{gone.token_expiry:%Y-%m-%d}</span>' in lyon
    assert "expires" not in lyon
    assert re.search(r'>expires <span class="nowrap">\d{4}-\d{2}-\d{2}</span>', listing)  # Paris, still valid
    page = admin_client.get(f"/servers/{gone.id}").get_data(as_text=True)
    assert "<dt>Expired</dt>" in page and "<dt>Expires</dt>" not in page


def test_every_tab_of_a_server_shows_its_device_count(admin_client):
    """Overview, Enrollment Profiles and Managed Devices: the tab says "Managed Devices (N)" on all three."""
    server = _server_expiring("Paris", 200)
    server.device_count = 1234
    db.session.commit()
    for url in (f"/servers/{server.id}", f"/servers/{server.id}/profiles", f"/servers/{server.id}/devices"):
        page = admin_client.get(url).get_data(as_text=True)
        assert ">Managed Devices (1,234)</a>" in page, url


def test_tokens_that_need_an_admin_are_named_on_every_page(admin_client):
    from datetime import datetime, timedelta, timezone

    _server_expiring("Healthy", 200)
    assert "token-banner" not in admin_client.get("/devices").get_data(as_text=True)

    soon = _server_expiring("Paris", 6.5)
    page = admin_client.get("/devices").get_data(as_text=True)
    expiry = (datetime.now(timezone.utc) + timedelta(days=6.5)).strftime("%Y-%m-%d")
    assert 'class="alert alert-warning token-banner"' in page
    assert (f'The token of <a href="/servers/{soon.id}">Paris</a> is About to Expire: it expires on {expiry}\n'
            "        (in 6 days).") in page
    assert f'<a href="/servers/{soon.id}/renew">Renew a server</a>' in page
    assert ">Healthy</a>" not in page
    for url in ("/profiles", "/activity/", "/settings/apple", f"/servers/{soon.id}/devices"):
        assert "token-banner" in admin_client.get(url).get_data(as_text=True), url
    # Not on Device Assignment, where every badge is, nor on the server's own page.
    assert "token-banner" not in admin_client.get("/servers").get_data(as_text=True)
    assert "token-banner" not in admin_client.get(f"/servers/{soon.id}").get_data(as_text=True)
    # Not in pop-ups and partial updates either (htmx), which have no page around them.
    assert "token-banner" not in admin_client.get("/servers/table", headers={"HX-Request": "true"}).get_data(
        as_text=True)

    # Errors come first; past three servers, a link to the rest.
    gone = _server_expiring("Lyon", -1)
    nice = _server_expiring("Nice", 20, apple_state="token_rejected")
    _server_expiring("Brest", 25)
    page = admin_client.get("/devices").get_data(as_text=True)
    assert 'class="alert alert-error token-banner"' in page
    assert (page.index(">Lyon</a> has Expired") < page.index(">Nice</a> needs attention: Token Revoked.")
            < page.index(">Paris</a> is"))
    assert f'<a href="/servers/{gone.id}/renew">Renew a server</a>' in page
    assert f'<a href="/servers/{nice.id}/renew">Renew a server</a>' in page
    assert ">Brest</a>" not in page and '<a href="/servers">1 more managed server needs attention</a>' in page
    assert "token-banner" in admin_client.get(f"/servers/{soon.id}").get_data(as_text=True)  # the others' alerts


@pytest.mark.parametrize("state,label,action", [
    ("token_rejected", "Token Revoked", "renew"), ("access_denied", "Access Denied", "renew"),
    ("server_mismatch", "Different Apple Server", "renew"), ("server_taken", "Already Connected", "renew"),
    ("terms_not_signed", "Terms Not Accepted", "page")])
def test_each_token_apple_refused_is_named_as_the_others_with_its_action(admin_client, state, label, action):
    server = _server_expiring("Nice", 200, apple_state=state)
    page = admin_client.get("/devices").get_data(as_text=True)
    line = page.split('token-banner" role="status">', 1)[1].split("</p>", 1)[0]
    assert f'The token of <a href="/servers/{server.id}">Nice</a> needs attention: {label}.' in line
    if action == "renew":
        assert line.rstrip().endswith(f'<a href="/servers/{server.id}/renew">Renew a server</a>.')
    else:  # accepting the terms happens at Apple; the server page leads with that link and Check now
        assert line.rstrip().endswith(f'<a href="/servers/{server.id}">Accept the terms, then Check now</a>.')


def test_the_banner_and_the_server_page_count_the_days_left_alike(admin_client):
    """A few seconds short of 20 days: "(in 20 days)" on the server page, so in the banner too."""
    from datetime import datetime, timedelta, timezone

    from portal.templating import days_until, relative_time

    now = datetime(2026, 12, 2, 12, tzinfo=timezone.utc)
    for left in (timedelta(days=20, seconds=-5), timedelta(days=19.9), timedelta(days=1, seconds=-1),
                 timedelta(seconds=20), timedelta(days=3)):
        days = days_until(now + left, now)
        assert relative_time(now + left, now).startswith(f"in {days} day") or days == 0, left
    server = _server_expiring("Paris", 20 - 5 / 86400)
    other = _server_expiring("Lyon", 200)
    assert "(in 20 days)" in admin_client.get(f"/servers/{server.id}").get_data(as_text=True)
    assert "(in 20 days)." in admin_client.get(f"/servers/{other.id}").get_data(as_text=True)  # Paris in the banner


def test_the_token_banner_is_not_shown_before_sign_in(client):
    _server_expiring("Paris", 3)
    assert "token-banner" not in client.get("/login").get_data(as_text=True)


def test_the_first_synchronization_waits_for_the_account_check(htmx, apple, identity, token, run_jobs):
    """With many workers the sync could otherwise run before the check that may find the token refused (or
    its Apple server connected elsewhere): it is deferred in RQ until the check ends, whatever its outcome."""
    from portal.queue import fetch_job

    post_add_server(htmx, "Paris", token, identity.key_pem)
    server = server_named("Paris")
    run = db.session.execute(select(SyncRun).where(SyncRun.server_id == server.id)).scalar_one()
    assert fetch_job(run.job_id).get_status(refresh=True) == "deferred"
    assert fetch_job(server.account_job_id).get_status(refresh=True) == "queued"
    apple.state.set_fault("Paris MDM", "terms_not_signed", True)  # what the check finds
    assert run_jobs() == []
    db.session.expire_all()
    run = db.session.get(SyncRun, run.id)
    assert run.status == "failed" and "Terms Not Accepted" in run.error_message  # never sent to Apple


@pytest.mark.parametrize("apple_state, words", [
    (None, "Synchronize is off until the server is renewed."),  # expired
    ("terms_not_signed", "Synchronize is off until Apple's new terms are accepted (then Check now)."),
])
def test_why_synchronize_is_disabled_is_said_in_words_on_the_list_and_the_server_page(
        admin_client, apple, identity, token, run_jobs, apple_state, words):
    """Not only in the disabled button's tooltip, which neither the keyboard nor a touch screen reaches."""
    from datetime import datetime, timedelta, timezone

    post_add_server(admin_client, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    for page in ("/servers", f"/servers/{server.id}"):
        assert "Synchronize is off" not in admin_client.get(page).get_data(as_text=True)
    if apple_state:
        server.apple_state = apple_state
    else:
        server.token_expiry = datetime.now(timezone.utc) - timedelta(days=2)
    db.session.commit()
    for page, described_by in (("/servers", f"sync-off-{server.id}"), (f"/servers/{server.id}", "sync-off")):
        html = admin_client.get(page).get_data(as_text=True)
        assert f'<span class="muted{" sync-off" if described_by == "sync-off" else ""}" id="{described_by}">{words}</span>' \
            in html.replace("&#39;", "'")
        button = re.search(r'<button type="submit"[^>]*>Synchronize</button>', html).group(0)
        assert "disabled" in button and f'aria-describedby="{described_by}"' in button
