"""A NUL (or another control character) typed or pasted into any field: a message next to that field that
names the character, what was typed kept, nothing saved; never a bare 400 page or a 500. In searches (GET)
it matches nothing and the list says why."""
from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import ActivityEntry, EnrollmentProfile, ManagedServer, PendingKeyPair, ServerConfiguration
from tests.servers_helpers import field_error
from tests.devices_helpers import _profile, _seed, _server

NUL = "\x00"


@pytest.fixture
def shop(app):
    """A server with a server configuration, a configured profile and two devices."""
    server = _server("Paris", configured=True)
    profile = _profile(server, "Staff")
    profile.apple_profile_uuid = "UUID-STAFF"
    db.session.commit()
    _seed(server, {"serial_number": "C02AAA1"}, {"serial_number": "F17XYZ9"})
    return {"server_id": server.id, "profile_id": profile.id, "configuration_id": server.configuration_id}


def _rows() -> dict:
    db.session.expire_all()
    return {model.__name__: db.session.execute(select(func.count()).select_from(model)).scalar_one()
            for model in (ManagedServer, EnrollmentProfile, ServerConfiguration, PendingKeyPair)}


def _says_which(message: str, code: str = "U+0000") -> bool:
    return code in message and "not allowed" in message


PROFILE = {"name": "Teachers", "organization": "Example School", "department": "IT", "support_email": "it@example.com",
           "support_phone": "+44 20 7946 0000", "language": "en", "region": "GB",
           "configuration_web_url": "https://mdm.example.com/web", "is_mdm_removable": "y"}


@pytest.mark.parametrize("url, data, field", [
    ("/configurations/new", {"name": "Production MDM", "url": f"https://mdm.example.com/{NUL}enroll"}, "url"),
    ("/configurations/new", {"name": "Production MDM", "url": "https://mdm.example.com/enroll",
                             "certificates_pem": f"-----BEGIN CERTIFICATE-----\n{NUL}\n"}, "certificates_pem"),
    ("/servers/{server_id}/profiles/new", {**PROFILE, "organization": f"Example{NUL} School"}, "organization"),
    ("/servers/{server_id}/profiles/new", {**PROFILE, "department": f"IT{NUL}"}, "department"),
    ("/servers/{server_id}/profiles/new", {**PROFILE, "support_email": f"it{NUL}@example.com"}, "support_email"),
    ("/servers/{server_id}/profiles/new", {**PROFILE, "support_phone": f"+44{NUL}20"}, "support_phone"),
    ("/servers/{server_id}/profiles/new", {**PROFILE, "language": f"en{NUL}"}, "language"),
    ("/servers/{server_id}/profiles/new", {**PROFILE, "configuration_web_url": f"https://x.example.com/{NUL}"},
     "configuration_web_url"),
    ("/profiles/{profile_id}/edit", {**PROFILE, "name": "Staff", "region": f"G{NUL}B"}, "region"),
    ("/servers/add", {"name": "Lyon", "private_key_pem": f"-----BEGIN PRIVATE KEY-----{NUL}", "password": "",
                      "pending_key": "0"}, "private_key_pem"),
    ("/servers/add", {"name": "Lyon", "private_key_pem": "", "password": f"pass{NUL}word", "pending_key": "0"},
     "password"),
    ("/servers/{server_id}/delete", {"confirm_name": f"Paris{NUL}"}, "confirm_name"),
    ("/settings/apple", {"sync_interval": "3600", "warning_days": "30",
                         "webhook_url": f"https://hooks.example.com/{NUL}"}, "webhook_url"),
], ids=["configuration_url", "configuration_pasted_pem", "profile_organization", "profile_department",
        "profile_email", "profile_phone", "profile_language", "profile_web_url", "profile_edit_region",
        "server_pasted_key", "server_key_password", "delete_confirmation", "settings_webhook"])
def test_a_nul_gets_a_message_next_to_its_field_and_changes_nothing(htmx, shop, url, data, field):
    before = _rows()
    response = htmx.post(url.format(**shop), data=data)
    assert response.status_code == 422, response.get_data(as_text=True)[:500]
    page = response.get_data(as_text=True)
    assert _says_which(html.unescape(field_error(page, field))), page
    assert _rows() == before
    kept = next(value for name, value in data.items() if name not in (field, "password", "pending_key")
                and value not in ("", "y")) if len(data) > 1 else None
    assert kept is None or html.escape(kept, quote=True) in page or kept in html.unescape(page)


@pytest.mark.parametrize("url, data, field", [
    ("/configurations/new", {"name": f"Production{NUL}MDM", "url": "https://mdm.example.com/enroll"}, "name"),
    ("/servers/{server_id}/profiles/new", {**PROFILE, "name": f"Teach{NUL}ers"}, "name"),
    ("/servers/add", {"name": f"Ly{NUL}on", "private_key_pem": "", "password": "", "pending_key": "0"}, "name"),
    ("/servers/keys/new", {"common_name": f"ADE{NUL}Portal", "days": "365"}, "common_name"),
], ids=["configuration", "profile", "server", "key_pair"])
def test_a_nul_in_a_name_is_refused_next_to_the_name(htmx, shop, url, data, field):
    before = _rows()
    response = htmx.post(url.format(**shop), data=data)
    assert response.status_code == 422
    assert "U+0000" in field_error(response.get_data(as_text=True), field)
    assert _rows() == before


@pytest.mark.parametrize("char, code", [("\x1b", "U+001B (escape)"), ("\x07", "U+0007 (BEL)"),
                                        ("\x08", "U+0008 (backspace)"), ("\x85", "U+0085"), ("\x7f", "U+007F (DEL)")])
def test_other_control_characters_are_named(htmx, shop, char, code):
    response = htmx.post(f"/servers/{shop['server_id']}/profiles/new", data={**PROFILE, "department": f"I{char}T"})
    assert response.status_code == 422
    assert code in field_error(response.get_data(as_text=True), "department")


def test_tabs_and_line_breaks_are_not_control_characters_here(htmx, shop):
    response = htmx.post("/configurations/new", data={"name": "Production MDM", "url": "https://mdm.example.com/x",
                                                      "certificates_pem": "\r\n\t\r\n"})
    assert response.status_code in (204, 302), response.get_data(as_text=True)


@pytest.mark.parametrize("field", ["username", "password"])
def test_a_nul_in_the_sign_in_form_is_a_message_not_a_400(auth, field):
    from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD

    typed = {"username": ADMIN_NAME, "password": ADMIN_PASSWORD, field: f"{NUL}{ADMIN_PASSWORD}"}
    response = auth.login(**typed)
    assert response.status_code in (200, 422)
    assert _says_which(html.unescape(field_error(response.get_data(as_text=True), field)))
    if field == "password":
        assert f'value="{ADMIN_NAME}"' in response.get_data(as_text=True)  # the user name is kept


@pytest.mark.parametrize("path", ["add", "remove"])
def test_a_nul_in_pasted_serial_numbers_is_named_next_to_the_list(htmx, shop, path):
    before = db.session.execute(select(func.count()).select_from(ActivityEntry)).scalar_one()
    response = htmx.post(f"/profiles/{shop['profile_id']}/devices/{path}", data={"serials": f"C02AAA1\nF17{NUL}XYZ9"})
    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    assert re.search(r'<p class="error"[^>]*>The list contains control characters, which are not allowed: U\+0000', page)
    assert "C02AAA1" in page  # the pasted list is kept
    assert db.session.execute(select(func.count()).select_from(ActivityEntry)).scalar_one() == before


@pytest.mark.parametrize("url", ["/devices?q=C02%00", "/devices?q=%00", "/servers/{server_id}/devices?q=C02%1B",
                                 "/devices.csv?q=C02%00", "/profiles/{profile_id}/devices/add?q=C02%00",
                                 "/activity/?q=Paris%00"])
def test_a_control_character_in_a_search_matches_nothing_and_says_why(admin_client, shop, url):
    db.session.add(ActivityEntry(actor="alice", action="server.sync_requested", summary="Paris synchronized",
                                 level="info"))
    db.session.commit()
    response = admin_client.get(url.format(**shop))
    assert response.status_code == 200
    page = html.unescape(response.get_data(as_text=True))
    assert "C02AAA1" not in page and "F17XYZ9" not in page and "Paris synchronized" not in page
    if not url.startswith("/devices.csv"):
        assert "The search contains control characters, which are not allowed: U+00" in page
    else:
        assert page.splitlines() == [page.splitlines()[0]]  # the header row only


def test_the_same_search_without_the_control_character_finds_the_device(admin_client, shop):
    page = admin_client.get("/devices?q=C02").get_data(as_text=True)
    assert "C02AAA1" in page and "not allowed" not in page
