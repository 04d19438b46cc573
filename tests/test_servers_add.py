"""Add Server through the web UI against the Apple simulator: each key form, the account check and the first
synchronization, server names (unique, normalised, no invisible characters), bad input reported next to its
field, secrets encrypted at rest, a real Apple token."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from portal.extensions import db
from portal.htmx import STOP_POLLING
from portal.models import Device, ManagedServer, SyncRun
from tests.servers_helpers import Identity, TakenJob, field_error, post_add_server, post_renew, server_named
from tests.servers_helpers import identity, token  # noqa: F401 - fixtures


VECTOR = Path(__file__).resolve().parents[1].parent / "shared" / "vectors" / "abm-token-2025"


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


def test_a_bad_name_a_bad_token_file_and_a_bad_key_are_all_named_in_one_round(htmx, identity, token):
    """Only the name's error was said: files are not kept after an error, so the admin fixed the name, chose both
    files again, and only then heard that the token file was not a token, then again for the key."""
    response = post_add_server(htmx, "", b"hello, I am a text file", identity.certificate_pem)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert field_error(html, "name")
    assert "not an Apple server token" in field_error(html, "token")
    assert field_error(html, "private_key")
    encrypted = identity.key_as("pkcs8", "right password")
    html = post_add_server(htmx, "", token, encrypted, password="wrong password").get_data(as_text=True)
    assert field_error(html, "name") and field_error(html, "password")
    with pytest.raises(AssertionError, match="no error next to token"):  # a token: nothing said of it
        field_error(html, "token")
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
