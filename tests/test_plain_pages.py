"""Pop-up forms opened as plain pages (no JavaScript, a bookmark, a new tab): their Cancel / Close is a link back
to the page the pop-up is opened from; in the pop-up (htmx) it stays a button that closes the dialog."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from portal import vault
from portal.extensions import db
from portal.models import AssignmentBatch, EnrollmentProfile, ManagedServer, ServerConfiguration
from portal.models.profile import CONFIGURED, NOT_CONFIGURED

NOW = datetime.now(timezone.utc).replace(microsecond=0)


@pytest.fixture
def things(app) -> dict:
    """A server, a configured and a not configured profile, a request (batch) and a configuration: ids only."""
    server = ManagedServer(name="Paris", token_ciphertext=vault.encrypt("{}"), key_ciphertext=vault.encrypt("k"),
                           consumer_key="CK_Paris", token_expiry=NOW + timedelta(days=365))
    configuration = ServerConfiguration(name="Production MDM", url="https://mdm.example.com/enroll")
    db.session.add_all([server, configuration])
    db.session.flush()
    configured = EnrollmentProfile(server_id=server.id, name="Sales", status=CONFIGURED, apple_profile_uuid="U-1")
    draft = EnrollmentProfile(server_id=server.id, name="Draft", status=NOT_CONFIGURED)
    db.session.add_all([configured, draft])
    db.session.flush()
    batch = AssignmentBatch(server_id=server.id, profile_id=configured.id, action="assign", actor="alice", total=1)
    db.session.add(batch)
    db.session.commit()
    return {"server": server.id, "profile": configured.id, "draft": draft.id, "batch": batch.id,
            "configuration": configuration.id}


# (form URL, label of the control, where the plain page goes back to) for the ids of `things`.
FORMS = [
    ("/servers/add", "Cancel", "/servers"),
    ("/servers/{server}/renew", "Cancel", "/servers/{server}"),
    ("/servers/{server}/delete", "Cancel", "/servers/{server}"),
    ("/servers/keys/new", "Cancel", "/servers"),
    ("/profiles/{profile}/devices/add", "Cancel", "/profiles/{profile}"),
    ("/profiles/{draft}/devices/add", "Close", "/profiles/{draft}"),
    ("/profiles/{profile}/devices/remove", "Cancel", "/profiles/{profile}"),
    ("/assignments/{batch}/retry", "Cancel", "/assignments/{batch}"),
    ("/assignments/retries/retry", "Cancel", "/assignments/retries"),
    ("/configurations/new", "Cancel", "/configurations"),
    ("/configurations/{configuration}/edit", "Cancel", "/configurations/{configuration}"),
    ("/configurations/{configuration}/delete", "Cancel", "/configurations/{configuration}"),
    ("/servers/{server}/configuration", "Cancel", "/servers/{server}"),
    ("/servers/{server}/configuration/unassign", "Close", "/servers/{server}"),
    ("/servers/{server}/profiles/new", "Cancel", "/servers/{server}/profiles"),
    ("/profiles/new", "Cancel", "/profiles"),
    ("/profiles/{draft}/edit", "Cancel", "/profiles/{draft}"),
    ("/profiles/{draft}/delete", "Cancel", "/profiles/{draft}"),
    ("/profiles/{profile}/configure", "Cancel", "/profiles/{profile}"),
]


def _page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code in (200, 422), (url, response.status_code)
    return response.get_data(as_text=True)


def _close_controls(html: str) -> list[str]:
    """Every element marked to close the pop-up."""
    return re.findall(r"<[^>]*data-close-modal[^>]*>", html)


@pytest.mark.parametrize("url, label, back", FORMS)
def test_cancel_on_the_plain_page_is_a_link_back(admin_client, things, url, label, back):
    html = _page(admin_client, url.format(**things))
    assert "<html" in html
    assert f'<a class="button" href="{back.format(**things)}">{label}</a>' in html
    # Marked data-close-modal, portal.js would swallow the click: the link must not be.
    assert _close_controls(html) == []


@pytest.mark.parametrize("url, label, back", FORMS)
def test_cancel_in_the_pop_up_still_closes_it(htmx, things, url, label, back):
    html = _page(htmx, url.format(**things))
    assert "<html" not in html
    assert f'<button type="button" data-close-modal>{label}</button>' in html
    assert f'href="{back.format(**things)}">{label}</a>' not in html


def test_generated_key_pair_page_closes_back_to_the_servers(admin_client):
    html = admin_client.post("/servers/keys/new", data={"common_name": "Lyon key", "days": "400"}).get_data(
        as_text=True)
    assert "Download the public certificate" in html and "<html" in html
    assert '<a class="button" href="/servers">Close</a>' in html and _close_controls(html) == []


def test_a_pop_up_form_sent_back_with_errors_keeps_the_closing_button(htmx):
    # portal.js marks what the pop-up sends (X-Pop-Up).
    response = htmx.post("/servers/keys/new", data={"common_name": "", "days": "5"}, headers={"X-Pop-Up": "true"})
    assert response.status_code == 422
    assert '<button type="button" data-close-modal>Cancel</button>' in response.get_data(as_text=True)


def test_a_plain_page_form_sent_back_with_errors_keeps_its_link_back(htmx):
    """The same form on a page of its own, sent by htmx and refused: its Cancel became the pop-up's button, which
    portal.js swallows outside a pop-up (Cancel did nothing)."""
    response = htmx.post("/servers/keys/new", data={"common_name": "", "days": "5"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert '<a class="button" href="/servers">Cancel</a>' in html and _close_controls(html) == []


@pytest.mark.parametrize("url, data, lands_on", [
    ("/servers/{server}/profiles/new", {"name": "Kiosks"}, "/profiles/"),  # the new profile's page
    ("/configurations/new", {"name": "Lab MDM", "url": "https://lab.example.com/enroll"}, "/configurations/"),
    ("/profiles/{draft}/edit", {"name": "Draft 2"}, "/profiles/{draft}"),
])
def test_a_pop_up_form_opened_in_a_tab_of_its_own_goes_on_after_saving(htmx, things, url, data, lands_on):
    """The plain page still posts with htmx: it answered with a toast alone (204), leaving the filled form on
    screen to be sent twice. It goes where the form leads, with the message."""
    from tests.test_profiles import profile_form

    url = url.format(**things)
    form = {**profile_form(), **data} if "profile" in url else data
    response = htmx.post(url, data=form, headers={"HX-Current-URL": f"http://localhost{url}"})
    assert response.status_code == 204, response.get_data(as_text=True)[:2000]
    assert response.headers.get("HX-Redirect", "").startswith(lands_on.format(**things))
    page = htmx.get(response.headers["HX-Redirect"]).get_data(as_text=True)
    assert "created" in page or "saved" in page or "updated" in page  # the message comes along
