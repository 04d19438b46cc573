"""The history a list leaves behind: search-as-you-type and a filter applied twice add no entry Back must walk
through (Managed Devices, Enrollment Profiles). htmx pushes the URL; the server answers HX-Replace-Url instead."""
from __future__ import annotations

from tests.assignments_helpers import devices_of, latest_batch, paris, pick, sim_serials  # noqa: F401 - paris
from tests.devices_helpers import many  # noqa: F401 - a fixture


def _list_answer(client, url: str, current: str, trigger_name: str | None = None, target: str = "device-table"):
    """The list `target` as htmx asks for it from the page at `current` (by typing in the box `trigger_name`)."""
    headers = {"HX-Request": "true", "HX-Target": target, "HX-Current-URL": f"http://localhost{current}"}
    if trigger_name:
        headers["HX-Trigger-Name"] = headers["HX-Trigger"] = trigger_name
    response = client.get(url, headers=headers)
    assert response.status_code == 200
    return response


def test_a_search_typed_with_pauses_leaves_one_history_entry(admin_client, many):
    """Each pause in the search box pushed a URL: Back went through ?q=DNP, ?q=DN, ?q=D. The first keystroke pushes
    (Back goes to the list before the search); the next ones replace that entry."""
    first = _list_answer(admin_client, "/devices?q=S", "/devices?family=Mac", trigger_name="q")
    assert "HX-Replace-Url" not in first.headers
    more = _list_answer(admin_client, "/devices?family=Mac&q=S0", "/devices?family=Mac&q=S", trigger_name="q")
    assert more.headers["HX-Replace-Url"] == "/devices?family=Mac&q=S0"
    devices = f"/servers/{many.id}/devices"  # (ids are not reused: not 1 on PostgreSQL after other tests)
    on_server = _list_answer(admin_client, f"{devices}?q=S0", f"{devices}?q=S", trigger_name="q")
    assert on_server.headers["HX-Replace-Url"] == f"{devices}?q=S0"


def test_a_list_asked_for_again_at_the_same_url_does_not_push_it_twice(admin_client, many):
    """A filter applies on change; Apply then asked for the same list and pushed a second identical entry."""
    again = _list_answer(admin_client, "/devices?family=Mac&q=S0", "/devices?q=S0&family=Mac")
    assert again.headers["HX-Replace-Url"] == "/devices?family=Mac&q=S0"
    other = _list_answer(admin_client, "/devices?family=Mac&q=S0", "/devices?q=S0")  # a new filter: its own entry
    assert "HX-Replace-Url" not in other.headers
    enter = _list_answer(admin_client, "/devices?q=S01", "/devices?q=S0")  # Enter in the box: the form, not typing
    assert "HX-Replace-Url" not in enter.headers
    assert "HX-Replace-Url" not in admin_client.get("/devices?q=S0", headers={"HX-Current-URL": "/devices?q=S0"}).headers


def test_a_profile_filter_chosen_then_sent_with_its_button_leaves_one_entry(admin_client):
    again = _list_answer(admin_client, "/profiles?status=changed", "/profiles?status=changed", target="profile-table")
    assert again.headers["HX-Replace-Url"] == "/profiles?status=changed"
    assert "HX-Replace-Url" not in _list_answer(admin_client, "/profiles?status=changed", "/profiles",
                                                target="profile-table").headers


def test_a_requests_result_tab_clicked_again_leaves_one_entry(htmx, apple, paris):  # noqa: F811
    """A request's tabs and pages push their URL; the tab already shown, clicked again, pushed it a second time."""
    server, profile = paris(devices=3)
    devices = devices_of(server.id)
    pick(htmx, profile, [devices[s].id for s in sim_serials(apple)[:2]])
    requested = f"/assignments/{latest_batch().id}"
    again = _list_answer(htmx, f"{requested}?state=queued", f"{requested}?state=queued", target="batch-tasks")
    assert again.headers["HX-Replace-Url"] == f"{requested}?state=queued"
    other = _list_answer(htmx, f"{requested}?state=failed", f"{requested}?state=queued", target="batch-tasks")
    assert "HX-Replace-Url" not in other.headers
