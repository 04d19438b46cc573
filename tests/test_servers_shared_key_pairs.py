"""A generated key pair for several servers: Apple Business Manager takes one certificate for several MDM servers,
so Add Server and Renew a server keep offering a key pair generated here once a server uses it (naming the servers
that do), until its certificate expires. Deleting one server leaves the others and the key pair as they were."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from portal import vault
from portal.extensions import db
from portal.models import ManagedServer, PendingKeyPair
from tests.servers_helpers import Identity, field_error, post_add_server, post_renew, server_named


def generated(htmx, name: str = "Branch key") -> PendingKeyPair:
    response = htmx.post("/servers/keys/new", data={"common_name": name, "days": "400"})
    assert response.status_code == 200
    return db.session.execute(select(PendingKeyPair).where(PendingKeyPair.label == name)).scalar_one()


def key_options(html: str) -> dict[str, str]:
    """The Private key list of an Add Server or Renew form: value -> label."""
    found = re.search(r'<select[^>]*id="pending_key".*?</select>', html, re.S)
    if found is None:
        return {}
    return dict(re.findall(r'<option[^>]*value="(\d+)"[^>]*>([^<]*)</option>', found.group(0)))


def test_a_generated_key_pair_adds_a_second_server_and_stays_offered_with_its_servers(htmx, apple, run_jobs):
    branch = generated(htmx)
    cert = htmx.get(f"/servers/keys/{branch.id}/certificate.pem").data
    assert "You can upload the same certificate to several MDM servers" in htmx.post(
        "/servers/keys/new", data={"common_name": "Spare key", "days": "400"}).get_data(as_text=True)
    paris_token = apple.state.issue_token("Paris MDM", cert, devices=2)
    lyon_token = apple.state.issue_token("Lyon MDM", cert, devices=3)

    assert post_add_server(htmx, "Paris", paris_token, None, pending_key=branch.id).status_code == 204
    form = htmx.get("/servers/add").get_data(as_text=True)
    assert key_options(form)[str(branch.id)] == "Generated here: Branch key (used by Paris)"
    assert "PRIVATE KEY" not in form

    response = post_add_server(htmx, "Lyon", lyon_token, None, pending_key=branch.id)
    assert response.status_code == 204, response.get_data(as_text=True)
    assert run_jobs() == []
    paris, lyon = server_named("Paris"), server_named("Lyon")
    assert paris.device_count == 2 and lyon.device_count == 3
    key_pem = vault.decrypt(branch.key_ciphertext)
    assert vault.decrypt(paris.key_ciphertext) == vault.decrypt(lyon.key_ciphertext) == key_pem
    assert db.session.execute(select(func.count()).select_from(PendingKeyPair)).scalar_one() == 2  # no copies
    options = key_options(htmx.get("/servers/add").get_data(as_text=True))
    assert options[str(branch.id)] == "Generated here: Branch key (used by Lyon, Paris)"
    assert re.fullmatch(r"Generated here: Spare key \(\d{4}-\d\d-\d\d \d\d:\d\d\)", [
        label for label in options.values() if "Spare key" in label][0])
    # Its result's Add Server still opens with it chosen.
    assert re.search(rf'<option selected value="{branch.id}"', htmx.get(f"/servers/add?key={branch.id}")
                     .get_data(as_text=True))
    # The same token again (a second tab): the token's Apple MDM server is taken, said next to the token.
    again = post_add_server(htmx, "Lyon 2", lyon_token, None, pending_key=branch.id)
    assert again.status_code == 422
    assert "already connected as “Lyon”" in field_error(again.get_data(as_text=True), "token")
    assert server_named("Lyon 2") is None

    # Deleting Paris leaves Lyon (it renews with the key it has) and the key pair, now used by Lyon alone.
    assert htmx.post(f"/servers/{paris.id}/delete", data={"confirm_name": "Paris"}).status_code in (204, 302)
    assert server_named("Paris") is None
    assert db.session.get(PendingKeyPair, branch.id) is not None
    renewed = apple.state.issue_token("Lyon MDM", cert, devices=3)
    assert post_renew(htmx, lyon.id, renewed).status_code == 204
    options = key_options(htmx.get(f"/servers/{lyon.id}/renew").get_data(as_text=True))
    assert options[str(branch.id)] == "Generated here: Branch key (used by Lyon)"


def test_renew_a_server_with_a_key_pair_another_server_uses(htmx, apple, run_jobs):
    branch = generated(htmx)
    cert = branch.certificate_pem.encode()
    assert post_add_server(htmx, "Lyon", apple.state.issue_token("Lyon MDM", cert), None,
                           pending_key=branch.id).status_code == 204
    own = Identity()
    assert post_add_server(htmx, "Nice", apple.state.issue_token("Nice MDM", own.certificate_pem), own.key_pem
                           ).status_code == 204
    nice = server_named("Nice")
    renew_form = htmx.get(f"/servers/{nice.id}/renew").get_data(as_text=True)
    assert key_options(renew_form)[str(branch.id)] == "Generated here: Branch key (used by Lyon)"

    # The certificate now uploaded for Nice MDM too: Renew with the key pair.
    response = post_renew(htmx, nice.id, apple.state.issue_token("Nice MDM", cert), pending_key=str(branch.id))
    assert response.status_code == 204, response.get_data(as_text=True)
    assert vault.decrypt(server_named("Nice").key_ciphertext) == vault.decrypt(branch.key_ciphertext)
    options = key_options(htmx.get("/servers/add").get_data(as_text=True))
    assert options[str(branch.id)] == "Generated here: Branch key (used by Lyon, Nice)"

    # Lyon renewed with a key of its own: no longer named.
    lyon = server_named("Lyon")
    response = post_renew(htmx, lyon.id, apple.state.issue_token("Lyon MDM", own.certificate_pem),
                          private_key_pem=own.key_pem.decode())
    assert response.status_code == 204, response.get_data(as_text=True)
    options = key_options(htmx.get("/servers/add").get_data(as_text=True))
    assert options[str(branch.id)] == "Generated here: Branch key (used by Nice)"
    assert run_jobs() == []


def test_a_key_pair_whose_certificate_expired_is_no_longer_offered(htmx, apple):
    branch = generated(htmx)
    token = apple.state.issue_token("Paris MDM", branch.certificate_pem.encode(), devices=1)
    branch.not_after = datetime.now(timezone.utc) - timedelta(minutes=1)
    db.session.commit()
    assert str(branch.id) not in key_options(htmx.get("/servers/add").get_data(as_text=True))
    assert 'data-suggested' not in htmx.get(f"/servers/add?key={branch.id}").get_data(as_text=True)

    # Sent from a form opened before it expired: said next to the field, nothing saved.
    response = post_add_server(htmx, "Paris", token, None, pending_key=branch.id)
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "pending_key") == (
        f"The certificate of key pair “Branch key” expired on {branch.not_after:%Y-%m-%d}: use Generate key pair for "
        "a new one, upload its certificate to the MDM server in Apple Business Manager and download a new token.")
    assert db.session.execute(select(func.count()).select_from(ManagedServer)).scalar_one() == 0
