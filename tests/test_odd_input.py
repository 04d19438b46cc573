"""Odd input from hand-edited URLs and forms: Unicode "digits", the last Unicode character, ids too large
for the database. Each must give an ordinary page (200, 404 or 422), never a 500."""
from __future__ import annotations

import csv
import html
import io
import re

import pytest
from sqlalchemy import select

from portal.devices.search import serial_prefix_condition
from portal.extensions import db
from portal.models import Device, ManagedServer
from tests.devices_helpers import _profile, _seed, _server

SUPERSCRIPT_TWO = "%C2%B2"          # '²': str.isdigit() says yes, int() says no
LAST_CHARACTER = "%F4%8F%BF%BF"     # U+10FFFF: there is no character after it
BEFORE_SURROGATES = "%ED%9F%BF"     # U+D7FF: the next code point is a surrogate, which cannot be stored
# Above an id column's range on PostgreSQL (INTEGER: 2**31 - 1), and above 2**63 - 1, the largest
# integer SQLite can bind.
TOO_LARGE = (2**31, 99999999999999999999)


@pytest.fixture
def shop(app):
    """A server with a server configuration, a configured profile and two devices (one associated)."""
    server = _server("Paris", configured=True)
    profile = _profile(server, "Staff")
    profile.apple_profile_uuid = "UUID-STAFF"
    db.session.commit()
    _seed(server, {"serial_number": "C02AAA1", "profile_id": profile.id}, {"serial_number": "F17XYZ9"})
    return {"server_id": server.id, "profile_id": profile.id, "configuration_id": server.configuration_id}


def _text(response) -> str:
    return response.get_data(as_text=True)


# ----- Unicode "digits" are garbage: the filter or page number is ignored --------------------------

@pytest.mark.parametrize("url", ["/devices?page={two}", "/devices?server={two}", "/devices?profile={two}",
                                 "/servers/{server}/devices?page={two}", "/servers/{server}/devices?profile={two}"])
def test_unicode_digits_in_list_arguments_are_ignored(admin_client, shop, url):
    response = admin_client.get(url.format(two=SUPERSCRIPT_TWO, server=shop["server_id"]))
    assert response.status_code == 200
    assert "C02AAA1" in _text(response) and "F17XYZ9" in _text(response)


@pytest.mark.parametrize("argument", ["server", "profile"])
def test_unicode_digits_in_csv_export_arguments_are_ignored(admin_client, shop, argument):
    response = admin_client.get(f"/devices.csv?{argument}={SUPERSCRIPT_TWO}")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(_text(response))))
    assert rows[0][0] == "serial_number" and sorted(r[0] for r in rows[1:]) == ["C02AAA1", "F17XYZ9"]


def test_unicode_digits_in_the_pop_up_filter_are_ignored(admin_client, shop):
    response = admin_client.get(f"/profiles/{shop['profile_id']}/devices/add?profile={SUPERSCRIPT_TWO}")
    assert response.status_code == 200
    assert "Select the Managed Devices" in _text(response) and "F17XYZ9" in _text(response)


# ----- search text at the top of the Unicode range ---------------------------------------------

@pytest.mark.parametrize("q", [LAST_CHARACTER, "C02" + LAST_CHARACTER, BEFORE_SURROGATES])
def test_search_for_the_highest_characters_finds_nothing(admin_client, shop, q):
    response = admin_client.get(f"/devices?q={q}")
    assert response.status_code == 200
    assert "C02AAA1" not in _text(response) and "F17XYZ9" not in _text(response)


def test_search_ending_in_the_last_character_keeps_prefix_matching(admin_client, shop):
    _seed(db.session.get(ManagedServer, shop["server_id"]), {"serial_number": "C02\U0010FFFFZ"},
          {"serial_number": "C03"})
    found = db.session.execute(select(Device.serial_number).where(
        serial_prefix_condition("C02\U0010FFFF"))).scalars().all()
    assert found == ["C02\U0010FFFFZ"]
    response = admin_client.get(f"/devices?q=C02{LAST_CHARACTER}")
    assert response.status_code == 200 and "C02\U0010FFFFZ" in _text(response) and "C02AAA1" not in _text(response)


def test_search_for_the_last_character_in_csv_and_pop_up(admin_client, shop):
    export = admin_client.get(f"/devices.csv?q={LAST_CHARACTER}")
    assert export.status_code == 200 and _text(export).startswith("serial_number,")
    assert "C02AAA1" not in _text(export)
    popup = admin_client.get(f"/profiles/{shop['profile_id']}/devices/add?q={LAST_CHARACTER}")
    assert popup.status_code == 200 and "Select the Managed Devices" in _text(popup)
    assert "F17XYZ9" not in _text(popup)


# ----- ids too large for the database ----------------------------------------------------------

@pytest.mark.parametrize("huge", TOO_LARGE)
@pytest.mark.parametrize("url", ["/servers/{id}", "/servers/{id}/devices", "/servers/{id}/devices.csv",
                                 "/servers/{id}/configuration", "/devices/{id}", "/profiles/{id}",
                                 "/profiles/{id}/devices/add", "/profiles/{id}/devices/remove",
                                 "/configurations/{id}", "/assignments/{id}"])
def test_huge_ids_in_paths_are_404_pages(admin_client, url, huge):
    response = admin_client.get(url.format(id=huge))
    assert response.status_code == 404 and "Page not found" in _text(response)


@pytest.mark.parametrize("huge", TOO_LARGE)
@pytest.mark.parametrize("url", ["/assignments/retries?profile={id}", "/profiles?server={id}", "/activity/?page={id}",
                                 "/devices?server={id}", "/devices?profile={id}"])
def test_huge_ids_in_query_arguments_are_unknown_ids(admin_client, shop, url, huge):
    response = admin_client.get(url.format(id=huge))
    assert response.status_code == 200 and "<h1>" in _text(response)


@pytest.mark.parametrize("huge", TOO_LARGE)
def test_huge_ids_in_the_csv_filter_are_unknown_ids(admin_client, shop, huge):
    response = admin_client.get(f"/devices.csv?server={huge}&profile={huge}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert len(list(csv.reader(io.StringIO(_text(response))))) == 3  # the header and both devices: no filter


@pytest.mark.parametrize("huge", TOO_LARGE)
def test_remove_devices_with_a_huge_device_id_selects_nothing(admin_client, shop, huge):
    url = f"/profiles/{shop['profile_id']}/devices/remove"
    response = admin_client.get(f"{url}?device={huge}")
    assert response.status_code == 422 and "Select the devices to remove first" in _text(response)
    response = admin_client.post(url, data={"device": str(huge)})
    assert response.status_code == 422 and "Select the devices to remove first" in _text(response)


@pytest.mark.parametrize("huge", TOO_LARGE)
def test_add_devices_with_a_huge_device_id_selects_nothing(admin_client, shop, huge):
    response = admin_client.post(f"/profiles/{shop['profile_id']}/devices/add", data={"device": str(huge)})
    assert response.status_code == 422 and "No device was selected" in _text(response)


@pytest.mark.parametrize("huge", TOO_LARGE)
def test_assigning_a_huge_configuration_id_is_a_field_error(admin_client, shop, huge):
    response = admin_client.post(f"/servers/{shop['server_id']}/configuration", data={"configuration": str(huge)})
    assert response.status_code == 422 and "no longer exists" in _text(response)
    db.session.expire_all()
    assert db.session.get(ManagedServer, shop["server_id"]).configuration_id == shop["configuration_id"]


@pytest.mark.parametrize("server_id", [*TOO_LARGE, 999, -1])
def test_create_profile_for_a_server_id_that_is_not_offered_is_a_field_error(admin_client, shop, server_id):
    from tests.servers_helpers import field_error

    response = admin_client.post("/profiles/new", data={"server_id": str(server_id), "name": "Staff",
                                                        "is_mdm_removable": "y"})
    assert response.status_code == 422
    assert field_error(_text(response), "server_id") == "That managed server no longer exists: choose another."


# ----- headers the browser (or anyone) sends --------------------------------------------------

MALFORMED_URLS = ("http://[bad", "http://[::1/configurations")  # urlsplit() refuses both: "Invalid IPv6 URL"


@pytest.mark.parametrize("current", MALFORMED_URLS)
def test_a_malformed_hx_current_url_counts_as_an_unknown_page(htmx, shop, current):
    from portal.models import ServerConfiguration

    headers = {"HX-Current-URL": current}
    created = htmx.post("/configurations/new", data={"name": "Lyon MDM", "url": "https://mdm.example.com/lyon"},
                        headers=headers)
    assert created.status_code == 204 and "closeModal" in created.headers["HX-Trigger"]
    configuration_id = db.session.execute(select(ServerConfiguration.id).where(
        ServerConfiguration.name == "Lyon MDM")).scalar_one()
    edited = htmx.post(f"/configurations/{configuration_id}/edit",
                       data={"name": "Lyon MDM 2", "url": "https://mdm.example.com/lyon"}, headers=headers)
    assert edited.status_code == 204 and "closeModal" in edited.headers["HX-Trigger"]
    unassigned = htmx.post(f"/servers/{shop['server_id']}/configuration/unassign", headers=headers)
    assert unassigned.status_code == 204 and "closeModal" in unassigned.headers["HX-Trigger"]
    db.session.expire_all()
    assert db.session.get(ManagedServer, shop["server_id"]).configuration_id is None


# ----- query arguments named like url_for()'s own options -------------------------------------

URL_FOR_NAMES = ("endpoint=x", "_method=DELETE", "_scheme=javascript", "_external=1", "_anchor=x")


def _activity(count: int) -> None:
    from sqlalchemy import insert

    from portal.models import ActivityEntry

    db.session.execute(insert(ActivityEntry), [{"action": "test", "summary": f"Entry {n}", "level": "info"}
                                               for n in range(count)])
    db.session.commit()


@pytest.mark.parametrize("odd", URL_FOR_NAMES)
@pytest.mark.parametrize("page", ["1", "2", "99999"])
def test_pager_links_keep_odd_query_arguments_as_query_arguments(admin_client, odd, page):
    _activity(60)  # two pages of 50: Next, Previous or "go to the last one"
    response = admin_client.get(f"/activity/?page={page}&{odd}")
    assert response.status_code == 200
    # The pager's links, and the empty state's past the last page (each entry's own links are not pagers).
    pagers = "".join(re.findall(r'<nav class="pager".*?</nav>|<section class="empty-state">.*?</section>', _text(response),
                                re.DOTALL))
    links = re.findall(r'href="(/activity/\?[^"]*)"', pagers)
    assert links and all(html.unescape(link).startswith("/activity/?") for link in links)
    assert all(odd.split("=")[0] in html.unescape(link) for link in links)


@pytest.mark.parametrize("referer,back", [(MALFORMED_URLS[0] + "/servers", None), ("javascript:alert(1)//servers", None),
                                          ("http://localhost/servers?page=2", "/servers?page=2"),
                                          ("http://localhost/servers/{id}", "/servers/{id}")])
def test_server_actions_return_to_a_servers_page_only(admin_client, shop, referer, back):
    """Check now / Synchronize without htmx go back to the servers page they were sent from, which
    the browser's Referer names: a header that is not a URL is no page to return to."""
    server_id = shop["server_id"]
    response = admin_client.post(f"/servers/{server_id}/check", headers={"Referer": referer.format(id=server_id)})
    assert response.status_code == 302
    assert response.headers["Location"] == (back or "/servers/{id}").format(id=server_id)
