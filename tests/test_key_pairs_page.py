"""The Key pairs page: every key pair generated here with the servers using it and its certificate, an empty
state, and Delete (said what it changes first; servers using the key keep their copy and go on working)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from portal.extensions import db
from portal.models import ActivityEntry, PendingKeyPair
from tests.servers_helpers import identity  # noqa: F401 - a fixture
from tests.servers_helpers import post_add_server, post_renew, server_named
from tests.test_servers_shared_key_pairs import generated, key_options


def row(html: str, pending_id: int) -> str:
    start = html.index(f'id="key-pair-{pending_id}"')
    return html[start:html.index("</tr>", start)]


def test_no_key_pair_yet_is_an_empty_state_offering_generate_key_pair(htmx):
    html = htmx.get("/servers/keys").get_data(as_text=True)
    assert "No key pairs generated yet" in html and 'href="/servers/keys/new"' in html
    assert 'href="/servers/keys"' in htmx.get("/servers").get_data(as_text=True)  # Device Assignment links here


def test_the_page_lists_key_pairs_with_their_servers_and_expiry(htmx, apple, run_jobs):
    branch, spare, old = generated(htmx, "Branch key"), generated(htmx, "Spare key"), generated(htmx, "Old key")
    old.not_after = datetime.now(timezone.utc) - timedelta(days=1)
    db.session.commit()
    token = apple.state.issue_token("Paris MDM", branch.certificate_pem.encode(), devices=1)
    assert post_add_server(htmx, "Paris", token, None, pending_key=branch.id).status_code == 204

    html = htmx.get("/servers/keys").get_data(as_text=True)
    assert html.index("Old key") < html.index("Spare key") < html.index("Branch key")  # newest first
    assert "Paris" in row(html, branch.id) and "No server" in row(html, spare.id)
    assert f'href="/servers/keys/{spare.id}/certificate.pem"' in row(html, spare.id)
    expired = row(html, old.id)
    assert "Expired" in expired and "No longer offered" in expired and "certificate.pem" not in expired
    assert "Expired" not in row(html, spare.id)


def test_generate_key_pair_refreshes_the_list_and_names_the_page(htmx):
    response = htmx.post("/servers/keys/new", data={"common_name": "Lyon key", "days": "400"})
    assert json.loads(response.headers["HX-Trigger"]) == {"keyPairsChanged": True}
    assert 'href="/servers/keys"' in response.get_data(as_text=True)
    assert "Lyon key" in htmx.get("/servers/keys/table").get_data(as_text=True)


def test_deleting_an_unused_key_pair_says_what_it_changes_then_forgets_it(htmx):
    spare = generated(htmx, "Spare key")
    spare_id = spare.id
    form = htmx.get(f"/servers/keys/{spare_id}/delete").get_data(as_text=True)
    assert "no longer offered in <strong>Add Server</strong>" in form and "cannot be undone" in form
    assert "goes on working" not in form

    response = htmx.post(f"/servers/keys/{spare_id}/delete")
    assert response.status_code == 204
    events = json.loads(response.headers["HX-Trigger"])
    assert events["closeModal"] and events["keyPairsChanged"] and "deleted" in events["toast"]["message"]
    db.session.expire_all()
    assert db.session.get(PendingKeyPair, spare_id) is None
    assert str(spare_id) not in key_options(htmx.get("/servers/add").get_data(as_text=True))
    assert htmx.get(f"/servers/keys/{spare_id}/certificate.pem").status_code == 404
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "keypair.deleted")).scalar_one()
    assert entry.summary == "Deleted key pair “Spare key”" and entry.object_label == "Spare key"
    log = htmx.get("/activity/?kind=pending_key_pair").get_data(as_text=True)
    assert f'href="/servers/keys/{spare_id}"' not in log  # gone: its entries are no longer links
    assert htmx.post(f"/servers/keys/{spare_id}/delete").status_code == 404


def test_deleting_a_key_pair_a_server_uses_leaves_the_server_working(htmx, apple, run_jobs):
    branch = generated(htmx)
    cert, branch_id = branch.certificate_pem.encode(), branch.id
    assert post_add_server(htmx, "Paris", apple.state.issue_token("Paris MDM", cert, devices=2), None,
                           pending_key=branch_id).status_code == 204
    run_jobs()
    form = htmx.get(f"/servers/keys/{branch_id}/delete").get_data(as_text=True)
    assert "is the key of Paris" in form and "goes on working" in form

    assert htmx.post(f"/servers/keys/{branch_id}/delete").status_code == 204
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "keypair.deleted")).scalar_one()
    assert entry.summary == "Deleted key pair “Branch key”; still used by Paris, which keeps its copy of the key"
    paris = server_named("Paris")
    assert paris.key_ciphertext
    # Renew a server without a key keeps Paris's copy: the new token (for the same certificate) opens.
    assert post_renew(htmx, paris.id, apple.state.issue_token("Paris MDM", cert, devices=2)).status_code == 204
    assert htmx.post(f"/servers/{paris.id}/sync").status_code in (200, 204)
    assert run_jobs() == []


def test_a_key_pair_link_leads_to_its_row_and_plain_delete_goes_back_to_the_page(admin_client, htmx):
    spare = generated(htmx, "Spare key")
    htmx.environ_base.pop("HTTP_HX_REQUEST")
    link = admin_client.get(f"/servers/keys/{spare.id}")
    assert link.status_code == 302 and link.headers["Location"].endswith(f"/servers/keys#key-pair-{spare.id}")
    assert admin_client.get("/servers/keys/999999").status_code == 404
    page = admin_client.get(f"/servers/keys/{spare.id}/delete").get_data(as_text=True)
    assert "Delete key pair Spare key" in page
    response = admin_client.post(f"/servers/keys/{spare.id}/delete")
    assert response.status_code == 302 and response.headers["Location"].endswith("/servers/keys")
    assert "Key pair “Spare key” deleted." in admin_client.get("/servers/keys").get_data(as_text=True)


def test_a_servers_token_card_names_its_generated_key_pair_and_its_certificates_expiry(htmx, apple, identity,
                                                                                      run_jobs):
    branch = generated(htmx)
    assert post_add_server(htmx, "Paris", apple.state.issue_token("Paris MDM", branch.certificate_pem.encode()),
                           None, pending_key=branch.id).status_code == 204
    assert post_add_server(htmx, "Nice", apple.state.issue_token("Nice MDM", identity.certificate_pem),
                           identity.key_pem).status_code == 204
    paris = htmx.get(f"/servers/{server_named('Paris').id}").get_data(as_text=True)
    card = paris[paris.index('id="token-card"'):paris.index("</section>", paris.index('id="token-card"'))]
    assert f'<a href="/servers/keys/{branch.id}">Branch key</a> (generated here)' in card
    assert f"certificate valid until {branch.not_after:%Y-%m-%d}" in " ".join(card.split())
    nice = htmx.get(f"/servers/{server_named('Nice').id}").get_data(as_text=True)
    assert "(generated here)" not in nice  # a key of the admin's own: no key pair, no certificate here


def test_a_token_for_a_key_pair_generated_here_names_it_when_another_key_is_given(htmx, apple, identity, run_jobs):
    """The error named the certificate's issuer and serial number, while "Generated here: Branch key" sat in the
    list right above it."""
    from tests.servers_helpers import field_error

    branch = generated(htmx)
    token = apple.state.issue_token("Paris MDM", branch.certificate_pem.encode(), devices=1)
    response = post_add_server(htmx, "Paris", token, identity.key_pem)
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "token") == (
        "This server token was encrypted for the certificate of the key pair “Branch key”, generated here, not for "
        "the key given: choose “Generated here: Branch key” as the private key (and no key file or pasted key).")
    assert server_named("Paris") is None

    # Renew a server with no key given (the server's own is tried) or with another key pair chosen: the same.
    assert post_add_server(htmx, "Nice", apple.state.issue_token("Nice MDM", identity.certificate_pem),
                           identity.key_pem).status_code == 204
    nice = server_named("Nice")
    renewed = apple.state.issue_token("Nice MDM", branch.certificate_pem.encode())
    response = post_renew(htmx, nice.id, renewed)
    html = response.get_data(as_text=True)
    assert field_error(html, "token") == (  # no key was given: none is blamed, and the key choice is in view
        "This server token was encrypted for the certificate of the key pair “Branch key”, generated here, not for "
        "the private key this managed server already has: choose “Generated here: Branch key” under “Use a new "
        "private key”.")
    assert "<details open>" in " ".join(html.split()).replace("<details open >", "<details open>")
    spare = generated(htmx, "Spare key")
    response = post_renew(htmx, nice.id, renewed, pending_key=str(spare.id))
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "choose “Generated here: Branch key”" in field_error(html, "token")
    assert "<details open>" in " ".join(html.split()).replace("<details open >", "<details open>")  # choice in view
    assert post_renew(htmx, nice.id, renewed, pending_key=str(branch.id)).status_code == 204
