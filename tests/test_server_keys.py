"""Generate key pair leads to Add Server: its result's Add Server opens the form with that key pair chosen
(?key=), only then, and only while its certificate is valid; what the admin sends is what counts."""
from __future__ import annotations

import io
import re

from sqlalchemy import select

from portal.extensions import db
from portal.models import PendingKeyPair
from tests.servers_helpers import Identity, post_add_server, server_named


def generated(htmx, name: str) -> PendingKeyPair:
    """A key pair made with Generate key pair; its result offers Add Server with it."""
    response = htmx.post("/servers/keys/new", data={"common_name": name, "days": "400"})
    assert response.status_code == 200
    pending = db.session.execute(select(PendingKeyPair).where(PendingKeyPair.label == name)).scalar_one()
    page = response.get_data(as_text=True)
    assert re.search(rf'<a class="button" href="/servers/add\?key={pending.id}" hx-get="/servers/add\?key={pending.id}"'
                     r' hx-target="#modal-content">Add Server</a>', page), page
    return pending


def chosen_key(client, query: str = "", plain: bool = False) -> str | None:
    """The value of the Private key option Add Server opens with, when one is chosen for the admin."""
    response = client.get(f"/servers/add{query}", headers={"HX-Request": "false"} if plain else {})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert ("<main" in html) == plain  # a whole page, or the pop-up's content
    select_html = re.search(r'<select[^>]*id="pending_key".*?</select>', html, re.S).group(0)
    found = re.search(r'<option selected value="(\d+)"', select_html)
    if found and found.group(1) != "0":
        assert 'data-suggested="%s"' % found.group(1) in select_html  # and the page lets the admin's own key win
        return found.group(1)
    assert "data-suggested" not in select_html
    return None


def test_add_server_from_a_generated_key_pair_has_it_chosen(htmx, apple, run_jobs):
    lyon, paris = generated(htmx, "Lyon key"), generated(htmx, "Paris key")
    assert chosen_key(htmx, f"?key={lyon.id}") == str(lyon.id)
    assert chosen_key(htmx, f"?key={paris.id}") == str(paris.id)
    assert chosen_key(htmx, f"?key={lyon.id}", plain=True) == str(lyon.id)  # the plain page, too
    assert chosen_key(htmx) is None  # opened from the toolbar: the admin chooses
    for odd in ("x", "0", "-1", "99999999999999999999", "٣", str(paris.id + 100)):
        assert chosen_key(htmx, f"?key={odd}") is None, odd

    # Sent with a key of the admin's own (the suggestion given up in the page): that key counts, whatever the URL.
    identity = Identity()
    token = apple.state.issue_token("Lyon MDM", identity.certificate_pem, devices=2)
    response = htmx.post(f"/servers/add?key={lyon.id}", data={
        "name": "Lyon", "pending_key": "0", "password": "", "private_key_pem": identity.key_pem.decode(),
        "token": (io.BytesIO(token), "Lyon_smime.p7m")}, content_type="multipart/form-data")
    assert response.status_code == 204, response.get_data(as_text=True)
    assert server_named("Lyon") is not None
    db.session.expire_all()
    assert db.session.get(PendingKeyPair, lyon.id).used_by_server_id is None  # not taken for the admin's key
    assert run_jobs() == []

    # A key pair used since (another tab, another admin): still offered for another MDM server, so still chosen.
    token = apple.state.issue_token("Paris MDM", paris.certificate_pem.encode(), devices=2)
    assert post_add_server(htmx, "Paris", token, None, pending_key=paris.id).status_code == 204
    assert chosen_key(htmx, f"?key={paris.id}") == str(paris.id)
