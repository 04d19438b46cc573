"""A form sent twice from one render (a double click with JavaScript off, Back and send again) does its work once:
the second POST is sent to the first one's result, with its message and a note (portal/form_once.py)."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal import form_once
from portal.extensions import db
from portal.models import AssignmentBatch, ManagedServer, SyncRun
from portal.queue import get_redis
from tests.servers_helpers import Identity, add_server_form, add_simulated_server, server_named
from tests.assignments_helpers import SIM, configured_profile, devices_of
from tests.test_profiles import profile_count, profile_form

TOKEN = re.compile(r'name="form_once" value="([^"]+)"')
REPEATED = "This form had already been sent"


def without_js(htmx):
    """The signed-in client, once the fixtures are set up, sending plain form posts (no HX-Request), as a browser
    with JavaScript off does."""
    htmx.environ_base.pop("HTTP_HX_REQUEST")
    return htmx


def token_of(client, url: str, index: int = 0) -> str:
    """The one-time token of the form drawn at `url` (the `index`-th form carrying one)."""
    tokens = TOKEN.findall(client.get(url).get_data(as_text=True))
    assert len(tokens) > index, f"no form_once field on {url}"
    return tokens[index]


def count(model) -> int:
    db.session.expire_all()
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def sent_twice(client, url: str, data: dict, **kwargs):
    first = client.post(url, data=dict(data), **kwargs)
    second = client.post(url, data=dict(data), **kwargs)
    return first, second


@pytest.fixture
def profile(htmx, apple, run_jobs):
    return configured_profile(add_simulated_server(htmx, apple, 6, run_jobs=run_jobs, apple_server=SIM))


def test_add_devices_ok_clicked_twice_assigns_once_and_shows_the_first_result(htmx, profile):
    client = without_js(htmx)
    url = f"/profiles/{profile.id}/devices/add"
    ids = [str(d.id) for d in devices_of(profile.server_id).values()][:2]
    first, second = sent_twice(client, url, {"device": ids, form_once.FIELD: token_of(client, url)})

    assert first.status_code == 302 and second.status_code == 302
    assert second.headers["Location"] == first.headers["Location"]  # the first request's page
    assert count(AssignmentBatch) == 1
    page = client.get(second.headers["Location"]).get_data(as_text=True)
    assert REPEATED in page
    assert "Assigning 2 devices to Sales" in page  # what the first one said, lost with its aborted answer


def test_release_devices_sent_twice_releases_once(htmx, profile):
    client = without_js(htmx)
    url = f"/servers/{profile.server_id}/devices/release"
    serials = "\n".join(sorted(devices_of(profile.server_id))[:2])
    first, second = sent_twice(client, url, {"serials": serials, "confirmation": "RELEASE",
                                             form_once.FIELD: token_of(client, url)})
    assert first.status_code == 302 and second.headers["Location"] == first.headers["Location"]
    assert count(AssignmentBatch) == 1


def test_synchronize_sent_twice_synchronizes_once_even_after_the_first_has_finished(htmx, profile,
                                                                                  run_jobs):
    client = without_js(htmx)
    url = f"/servers/{profile.server_id}/sync"
    data = {form_once.FIELD: token_of(client, "/servers")}
    runs = count(SyncRun)
    assert client.post(url, data=dict(data)).status_code == 302
    assert run_jobs() == []  # the first synchronization ended: a second one could start
    second = client.post(url, data=dict(data))
    assert second.status_code == 302
    assert count(SyncRun) == runs + 1
    assert REPEATED in client.get(second.headers["Location"]).get_data(as_text=True)


def test_add_server_sent_twice_adds_it_once_and_goes_to_its_page(htmx, apple):
    client = without_js(htmx)
    identity = Identity()
    token = apple.state.issue_token(SIM, identity.certificate_pem, devices=2)
    once = token_of(client, "/servers/add")
    answers = [client.post("/servers/add", data={**add_server_form("Lyon", token, identity.key_pem),
                                                 form_once.FIELD: once}, content_type="multipart/form-data")
               for _ in range(2)]
    server = server_named("Lyon")
    assert [a.status_code for a in answers] == [302, 302]  # not "a server named Lyon exists" for the second
    assert answers[1].headers["Location"].endswith(f"/servers/{server.id}")
    assert count(ManagedServer) == 1


def test_a_form_sent_back_with_errors_can_be_sent_again_with_the_same_token(htmx, profile):
    client = without_js(htmx)
    url = f"/servers/{profile.server_id}/profiles/new"
    once = token_of(client, url)
    refused = client.post(url, data={**profile_form(support_email="help desk"), form_once.FIELD: once})
    assert refused.status_code == 422 and profile_count() == 1  # the fixture's own profile
    fixed = client.post(url, data={**profile_form(), form_once.FIELD: once})
    assert fixed.status_code == 302 and profile_count() == 2
    again = client.post(url, data={**profile_form(), form_once.FIELD: once})
    assert again.headers["Location"] == fixed.headers["Location"]


def test_each_render_of_a_form_sends_once(htmx, profile):
    """Two renders are two requests the admin meant: Add Devices opened twice assigns twice."""
    client = without_js(htmx)
    url = f"/profiles/{profile.id}/devices/add"
    ids = [str(d.id) for d in devices_of(profile.server_id).values()][:1]
    for _ in range(2):
        assert client.post(url, data={"device": ids, form_once.FIELD: token_of(client, url)}).status_code == 302
    assert count(AssignmentBatch) == 2


def test_a_repeated_htmx_post_goes_to_the_first_result(htmx, profile):
    url = f"/profiles/{profile.id}/devices/add"
    ids = [str(d.id) for d in devices_of(profile.server_id).values()][:1]
    once = token_of(htmx, url)
    first, second = sent_twice(htmx, url, {"device": ids, form_once.FIELD: once})
    assert first.status_code == 204 and second.status_code == 204
    assert "closeModal" in second.headers["HX-Trigger"]
    assert REPEATED in second.headers["HX-Trigger"]  # a toast: the first answer had no page to go to
    assert count(AssignmentBatch) == 1


def test_a_second_click_while_the_first_is_still_running_sends_nothing(htmx, profile, monkeypatch):
    """The first POST has claimed the token and not answered yet (it is still asking Apple, say)."""
    client = without_js(htmx)
    url = f"/profiles/{profile.id}/devices/add"
    once = token_of(client, url)
    from portal.models import Admin

    admin_id = db.session.execute(select(Admin.id)).scalar_one()
    get_redis().set(f"portal:form-once:{admin_id}:{once}", form_once.PENDING)
    monkeypatch.setattr(form_once, "WAIT_FOR_FIRST_S", 0.3)
    ids = [str(d.id) for d in devices_of(profile.server_id).values()][:1]
    second = client.post(url, data={"device": ids, form_once.FIELD: once}, headers={"Referer": f"/profiles/{profile.id}"})
    assert second.status_code == 302 and second.headers["Location"] == f"/profiles/{profile.id}"
    assert count(AssignmentBatch) == 0
    assert "still being sent from an earlier click" in client.get(second.headers["Location"]).get_data(as_text=True)
