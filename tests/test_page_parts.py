"""The URLs htmx fetches for a part of a page (a polled panel, a refreshed table or row): opened in the browser
itself they showed a bare, unstyled fragment (three of them with htmx's "stop polling" status, 286). They now go
to the page they are part of; htmx still gets the part."""
from __future__ import annotations

import pytest

from tests.devices_helpers import _batch_of, _profile, _queue, _seed, _server


@pytest.fixture
def objects(app):
    server = _server("Paris", configured=True)
    profile = _profile(server, "Staff")
    _seed(server, {"serial_number": "C02PARTS0001"})
    _queue(server, profile, "C02PARTS0001")
    return server.id, profile.id, _batch_of("C02PARTS0001")


def _parts(server_id: int, profile_id: int, batch_id: int) -> list[tuple[str, str]]:
    """(part, its page) for every such route."""
    return [("/servers/table", "/servers"), (f"/servers/{server_id}/row", f"/servers/{server_id}"),
            (f"/servers/{server_id}/account", f"/servers/{server_id}"),
            (f"/servers/{server_id}/sync-status", f"/servers/{server_id}"),
            ("/servers/keys/table", "/servers/keys"), ("/configurations/table", "/configurations"),
            (f"/profiles/{profile_id}/row", f"/profiles/{profile_id}"),
            (f"/profiles/{profile_id}/status", f"/profiles/{profile_id}"),
            (f"/profiles/{profile_id}/devices/requests", f"/profiles/{profile_id}"),
            (f"/assignments/{batch_id}/status", f"/assignments/{batch_id}"), ("/system/jobs/some-job", "/system/"),
            ("/settings/apple/test-notification/some-job", "/settings/apple"),
            ("/settings/apple/test-email/some-job", "/settings/apple")]


def test_a_part_of_a_page_opened_in_the_browser_goes_to_its_page(admin_client, objects):
    for part, page in _parts(*objects):
        response = admin_client.get(part)
        assert response.status_code == 302 and response.headers["Location"] == page, part
        assert admin_client.get(page).status_code == 200, page


def test_htmx_still_gets_the_part_alone(htmx, objects):
    for part, _ in _parts(*objects):
        response = htmx.get(part)
        assert response.status_code in (200, 286), part
        assert "<html" not in response.get_data(as_text=True), part


def test_an_object_deleted_meanwhile_is_named_in_the_not_found_answer(htmx, objects):
    """A pop-up left open on a server deleted in another tab said "There is nothing at this address"."""
    server_id, profile_id, batch_id = objects
    answer = htmx.post(f"/servers/{server_id + 100}/delete", data={"confirm_name": "Paris"})
    assert answer.status_code == 404
    assert "This managed server no longer exists: it was deleted, perhaps in another tab" in answer.get_data(as_text=True)
    assert "This enrollment profile no longer exists" in htmx.get(f"/profiles/{profile_id + 100}/edit").get_data(as_text=True)
    assert "There is nothing at this address" in htmx.get("/no/such/page").get_data(as_text=True)
