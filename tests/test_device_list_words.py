"""A managed server's Managed Devices tab as an admin reads it once its devices are gone, and the words of the
list's Sort by next to the column headers it sorts by."""
from __future__ import annotations

from tests.servers_helpers import add_simulated_server
from tests.test_release import release

SIM = "Paris MDM"


def _page(client, url: str) -> str:
    return " ".join(client.get(url).get_data(as_text=True).split())


def test_sort_by_names_the_column_it_sorts_as_its_header_does(admin_client):
    html = _page(admin_client, "/devices")
    assert '<option value="assigned" >Assigned to server</option>' in html and "Assigned date" not in html


def test_a_server_whose_devices_were_all_released_says_where_they_are_and_offers_no_release(htmx, apple, run_jobs):
    """It said "No devices yet" (they had been there) and still offered Release Devices for no device at all."""
    paris = add_simulated_server(htmx, apple, 1, run_jobs=run_jobs, apple_server=SIM)
    assert "Release Devices…" in _page(htmx, f"/servers/{paris.id}/devices")
    serial = apple.state.devices(SIM, limit=1)[0]["serial"]
    assert release(htmx, paris.id, [serial]).status_code == 204
    assert run_jobs() == []

    html = _page(htmx, f"/servers/{paris.id}/devices")
    assert "No current devices" in html and "No devices yet" not in html
    assert f'listed under <a href="/servers/{paris.id}/devices?removed=removed">Removed devices</a>' in html
    assert "Release Devices…" not in html
    assert serial in _page(htmx, f"/servers/{paris.id}/devices?removed=removed")


def test_the_list_of_every_server_still_says_no_devices_yet_before_any_server(admin_client):
    html = _page(admin_client, "/devices")
    assert "No devices yet" in html and "Removed devices</a>" not in html


def test_the_enrolls_automatically_filter_names_the_outdated_badge_of_the_table(admin_client):
    """The table's badge says "Outdated profile"; its filter said "With a profile not as set up here"."""
    html = _page(admin_client, "/devices")
    assert '<option value="outdated" >Outdated profile (not as set up here)</option>' in html
