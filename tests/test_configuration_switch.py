"""Assign Server Configuration on a server with configured profiles, through the web UI against the Apple
simulator: another configuration makes them Changed, the one Apple has makes them Configured again (an edit
is never forgotten), and the pop-up and its confirmation say which profiles need Configure profile again."""
from __future__ import annotations

import json

from portal.extensions import db
from portal.models import ManagedServer
from tests.test_profiles import (MDM_URL, add_server, assign_configuration, configure, create, identity,  # noqa: F401
                                    make_configuration, profile_form, profile_named)

SECOND_URL = "https://second.example.com/mdm"


def _configured(htmx, apple, run_jobs, identity, names=("Sales",)) -> tuple[int, int, int]:  # noqa: F811
    """A server with "Main MDM" assigned and these profiles configured at Apple, and "Second MDM" to switch to:
    (server id, Main MDM's id, Second MDM's id)."""
    server_id = add_server(htmx, apple, identity, run_jobs)
    main_id, _ = make_configuration("Main MDM")
    second_id, _ = make_configuration("Second MDM", url=SECOND_URL)
    assign_configuration(htmx, server_id, main_id)
    for name in names:
        assert create(htmx, server_id, name=name).status_code == 204
        configure(htmx, profile_named(name).id)
    assert run_jobs() == []
    assert all(profile_named(name).status == "configured" for name in names)
    return server_id, main_id, second_id


def _state(name: str) -> tuple[str, str | None]:
    profile = profile_named(name)
    return profile.status, profile.status_detail


def test_switching_back_to_the_configuration_apple_has_makes_the_profile_configured_again(htmx, apple, run_jobs,
                                                                                         identity):  # noqa: F811
    server_id, main_id, second_id = _configured(htmx, apple, run_jobs, identity)
    assign_configuration(htmx, server_id, second_id)
    status, detail = _state("Sales")
    assert status == "changed" and SECOND_URL in detail

    assign_configuration(htmx, server_id, main_id)
    assert _state("Sales") == ("configured", None)
    page = htmx.get(f"/profiles/{profile_named('Sales').id}").get_data(as_text=True)
    status_card = page.split('id="profile-status"')[1].split("</section>")[0]
    assert "Changed because" not in page and SECOND_URL not in status_card
    assert "is Configured again" in page  # the Activity card says why


def test_an_edit_is_kept_when_the_configuration_is_switched_away_and_back(htmx, apple, run_jobs,
                                                                          identity):  # noqa: F811
    server_id, main_id, second_id = _configured(htmx, apple, run_jobs, identity)
    profile_id = profile_named("Sales").id
    assert htmx.post(f"/profiles/{profile_id}/edit",
                     data=profile_form(name="Sales", department="Field service")).status_code == 204
    edited = "its settings were edited after it was last configured"
    assert _state("Sales") == ("changed", edited)

    assign_configuration(htmx, server_id, second_id)
    status, detail = _state("Sales")
    assert status == "changed" and detail.startswith(edited) and SECOND_URL in detail  # both reasons, both true

    assign_configuration(htmx, server_id, main_id)
    assert _state("Sales") == ("changed", edited)
    assert f"Changed because {edited}" in htmx.get(f"/profiles/{profile_id}").get_data(as_text=True)


def test_an_edit_made_while_changed_for_the_configuration_keeps_it_changed_after_switching_back(htmx, apple, run_jobs,
                                                                                                identity):  # noqa: F811
    server_id, main_id, second_id = _configured(htmx, apple, run_jobs, identity)
    assign_configuration(htmx, server_id, second_id)
    profile_id = profile_named("Sales").id
    assert htmx.post(f"/profiles/{profile_id}/edit",
                     data=profile_form(name="Sales", department="Field service")).status_code == 204
    status, detail = _state("Sales")
    assert status == "changed" and "settings were edited" in detail and SECOND_URL in detail

    assign_configuration(htmx, server_id, main_id)  # Apple has Main MDM's URL, but not the new department
    assert _state("Sales") == ("changed", "its settings were edited after it was last configured")


def test_unassigning_then_assigning_back_keeps_an_edit_and_clears_the_rest(htmx, apple, run_jobs,
                                                                           identity):  # noqa: F811
    server_id, main_id, second_id = _configured(htmx, apple, run_jobs, identity, names=("Sales", "Kiosks"))
    assign_configuration(htmx, server_id, second_id)
    assert htmx.post(f"/profiles/{profile_named('Kiosks').id}/edit",
                     data=profile_form(name="Kiosks", department="Lobby")).status_code == 204
    assert htmx.post(f"/servers/{server_id}/configuration/unassign").status_code == 204
    assert _state("Sales")[1].startswith("its server has no server configuration any more")
    status, detail = _state("Kiosks")
    assert status == "changed" and detail.startswith("its settings were edited after it was last configured, and "
                                                     "its server has no server configuration any more")

    assign_configuration(htmx, server_id, main_id)
    assert _state("Sales") == ("configured", None)
    assert _state("Kiosks") == ("changed", "its settings were edited after it was last configured")
    assert db.session.get(ManagedServer, server_id).configuration.url == MDM_URL


def test_the_assign_pop_up_names_the_configured_profiles_another_configuration_would_change(htmx, apple, run_jobs,
                                                                                            identity):  # noqa: F811
    server_id, main_id, second_id = _configured(htmx, apple, run_jobs, identity, names=("Sales", "Kiosks"))
    assert create(htmx, server_id, name="Draft").status_code == 204  # never sent to Apple: nothing to redo
    popup = " ".join(htmx.get(f"/servers/{server_id}/configuration").get_data(as_text=True).split())
    assert ("Configured profiles of this server (Kiosks, Sales) will need <strong>Configure profile</strong> again "
            "unless the configuration you choose is the one they were configured with") in popup
    assert "Draft" not in popup


def _toast(htmx, server_id: int, configuration_id: int) -> dict:
    """Assign Server Configuration from the server list: the confirmation it shows (message, category)."""
    response = htmx.post(f"/servers/{server_id}/configuration", data={"configuration": configuration_id})
    assert response.status_code == 204
    return json.loads(response.headers["HX-Trigger"])["toast"]


def test_assigning_says_how_many_profiles_became_changed_or_that_none_did(htmx, apple, run_jobs,
                                                                          identity):  # noqa: F811
    server_id, main_id, second_id = _configured(htmx, apple, run_jobs, identity, names=("Sales", "Kiosks"))
    toast = _toast(htmx, server_id, second_id)
    assert toast["category"] == "warning" and toast["message"] == ("Server configuration Second MDM assigned to Paris. 2 enrollment profiles (Kiosks, Sales) are now "
            "Changed: Apple has them with another MDM server URL or other certificates than Second MDM, and keeps "
            "sending their devices there until you use Configure profile again for each of them.")

    toast = _toast(htmx, server_id, main_id)
    # None of them was Configured before (both were Changed): "No enrollment profile became Changed" would be noise.
    assert toast["category"] == "success" and toast["message"] == ("Server configuration Main MDM assigned to Paris. 2 enrollment "
            "profiles (Kiosks, Sales) are Configured again: Apple has them with this configuration's URL and "
            "certificates.")

    toast = _toast(htmx, server_id, second_id)  # Configured ones again, so saying none became Changed tells something
    assert "2 enrollment profiles (Kiosks, Sales) are now Changed" in toast["message"]
    _toast(htmx, server_id, main_id)  # both Configured again
    assert htmx.post(f"/profiles/{profile_named('Kiosks').id}/edit",
                     data=profile_form(name="Kiosks", department="Lobby")).status_code == 204
    assert _state("Kiosks")[0] == "changed" and _state("Sales") == ("configured", None)
    toast = _toast(htmx, server_id, second_id)
    assert toast["message"] == ("Server configuration Second MDM assigned to Paris. 1 enrollment profile (Sales) is now "
            "Changed: Apple has it with another MDM server URL or other certificates than Second MDM, and keeps "
            "sending its devices there until you use Configure profile again for it. 1 enrollment profile (Kiosks) "
            "was already Changed and still needs Configure profile: Apple has it with another MDM server URL or "
            "other certificates than Second MDM.")


def test_assigning_to_a_server_without_configured_profiles_says_nothing_of_profiles(htmx, apple, run_jobs,
                                                                                  identity):  # noqa: F811
    server_id = add_server(htmx, apple, identity, run_jobs)
    main_id, _ = make_configuration("Main MDM")
    second_id, _ = make_configuration("Second MDM", url=SECOND_URL)
    assert _toast(htmx, server_id, main_id) == {"category": "success",
                                                "message": "Server configuration Main MDM assigned to Paris."}
    assert create(htmx, server_id, name="Draft").status_code == 204  # never sent to Apple: nothing at stake
    assert _toast(htmx, server_id, second_id)["message"] == "Server configuration Second MDM assigned to Paris."
    assert _toast(htmx, server_id, main_id)["message"] == "Server configuration Main MDM assigned to Paris."
