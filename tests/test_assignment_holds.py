"""Devices held for the retry time Apple asked for (services._keep_apple_waits), until the server's token works
again or until their profile is configured (runner._hold) are marked by AssignmentTask.held_for_apple_wait /
held_for_token / held_for_profile, not recognised by the words of their reason: rewording the reason keeps the
hold, and a reason that happens to start with the same words is no hold."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from portal.assignments import timing
from portal.assignments.retries import TOKEN_HOLD
from portal.assignments.services import APPLE_WAIT_HOLD
from portal.extensions import db
from portal.models import AssignmentTask
from tests.assignments_helpers import clock, paris  # noqa: F401 - fixtures
from tests.assignments_helpers import SIM, CallLog, devices_of, latest_batch, pick, sim_serials, tasks_of


@pytest.fixture
def still_clock(monkeypatch):
    """The portal's clock stopped at the test's start: a whole-call error holds the devices for a minute, and on a
    machine busy enough (CI beside other work) a minute of real time could pass before the test looks at the hold,
    which would then be over. What is tested is the hold's kind, not the wall clock."""
    stopped = timing.now()
    monkeypatch.setattr(timing, "now", lambda: stopped)


def _reword(task_id: int, detail: str) -> None:
    db.session.execute(update(AssignmentTask).where(AssignmentTask.id == task_id).values(detail=detail))
    db.session.commit()


def test_a_hold_for_apples_wait_is_kept_by_a_newer_request_whatever_its_reason_says(htmx, apple, paris,  # noqa: F811
                                                                                     run_jobs):
    server, profile = paris(devices=4)
    failing = sim_serials(apple)[0]
    device_id = devices_of(server.id)[failing].id
    apple.state.set_fault(SIM, "assign_failed", [failing])
    pick(htmx, profile, [device_id])
    assert run_jobs() == []
    apple.state.set_fault(SIM, "assign_failed", None)
    log = CallLog(apple.app)

    pick(htmx, profile, [device_id])  # held for Apple's 24 hours; the answered FAILED task is superseded
    assert run_jobs() == []
    held = tasks_of(latest_batch().id)[failing]
    assert held.state == "queued" and held.held_for_apple_wait and held.detail.startswith(APPLE_WAIT_HOLD)
    _reword(held.id, "Waiting for the retry time Apple gave this device.")  # words shown, nothing more

    pick(htmx, profile, [device_id])  # the hold is the only trace of Apple's wait left: still kept
    assert run_jobs() == []
    assert log.calls == []
    again = tasks_of(latest_batch().id)[failing]
    assert again.state == "queued" and again.held_for_apple_wait
    assert again.retry_at - timing.now() > timedelta(hours=23)
    assert tasks_of(held.batch_id)[failing].state == "superseded"
    assert not tasks_of(held.batch_id)[failing].held_for_apple_wait

    # Retry now sends it (after the warning) and Apple's answer ends the hold.
    assert htmx.post(f"/assignments/{again.batch_id}/retry").status_code == 204
    assert run_jobs() == []
    done = tasks_of(again.batch_id)[failing]
    assert log.calls == [("POST", 1)] and done.state == "done" and not done.held_for_apple_wait


def test_a_reason_starting_with_the_same_words_is_no_hold_for_apples_wait(htmx, apple, paris,  # noqa: F811
                                                                          run_jobs, still_clock):
    server, profile = paris(devices=4)
    serial = sim_serials(apple)[0]
    device_id = devices_of(server.id)[serial].id
    apple.state.set_fault(SIM, "server_error", 50)  # the call fails as a whole: queued for a minute or so
    pick(htmx, profile, [device_id])
    assert run_jobs() == []
    first = tasks_of(latest_batch().id)[serial]
    assert first.state == "queued" and first.retry_at > timing.now() and not first.held_for_apple_wait
    _reword(first.id, f"{APPLE_WAIT_HOLD}? No: the call failed as a whole, sent again in a minute.")
    apple.state.set_fault(SIM, "server_error", None)

    pick(htmx, profile, [device_id])  # Apple never asked this device to wait: sent at once
    assert run_jobs() == []
    task = tasks_of(latest_batch().id)[serial]
    assert task.state == "done" and not task.held_for_apple_wait
    assert tasks_of(first.batch_id)[serial].state == "superseded"


def test_a_hold_for_the_token_is_released_by_a_token_check_whatever_its_reason_says(htmx, apple, paris,  # noqa: F811
                                                                                     run_jobs):
    server, profile = paris(devices=4)
    serial = sim_serials(apple)[0]
    apple.state.set_fault(SIM, "terms_not_signed", True)
    pick(htmx, profile, [devices_of(server.id)[serial].id])
    assert run_jobs() == []
    held = tasks_of(latest_batch().id)[serial]
    assert held.state == "queued" and held.held_for_token and held.retry_at - timing.now() > timedelta(minutes=10)
    _reword(held.id, "Apple wants the terms accepted first.")  # words shown, nothing more
    apple.state.set_fault(SIM, "terms_not_signed", None)
    log = CallLog(apple.app)

    htmx.post(f"/servers/{server.id}/check")  # the token works again: sent now, not in 15 minutes
    assert run_jobs() == []
    done = tasks_of(held.batch_id)[serial]
    assert log.calls == [("POST", 1)] and done.state == "done" and not done.held_for_token


def test_a_reason_starting_with_the_same_words_is_no_hold_for_the_token(htmx, apple, paris,  # noqa: F811
                                                                        run_jobs, still_clock):
    server, profile = paris(devices=4)
    serial = sim_serials(apple)[0]
    apple.state.set_fault(SIM, "server_error", 50)  # the call fails as a whole: queued for a minute or so
    pick(htmx, profile, [devices_of(server.id)[serial].id])
    assert run_jobs() == []
    first = tasks_of(latest_batch().id)[serial]
    assert first.state == "queued" and first.retry_at > timing.now() and not first.held_for_token
    _reword(first.id, f"{TOKEN_HOLD}? No: the call failed as a whole, sent again in a minute.")
    apple.state.set_fault(SIM, "server_error", None)
    log = CallLog(apple.app)

    htmx.post(f"/servers/{server.id}/check")  # a token check has nothing to release
    assert run_jobs() == []
    task = tasks_of(first.batch_id)[serial]
    assert log.calls == [] and task.state == "queued" and task.retry_at > timing.now()


def test_a_request_held_for_a_revoked_token_has_not_finished_and_offers_renew_a_server(htmx, apple, paris,  # noqa: F811
                                                                                     run_jobs):
    """The held request's page read "Waiting to retry … Finished <time>", called its devices "Waiting to be sent"
    beside tabs saying "Queued", and told the admin to upload a new token with no way to do it from there."""
    import re

    server, profile = paris(devices=4)
    serials = sim_serials(apple)
    apple.state.set_fault(SIM, "token_revoked", True)
    pick(htmx, profile, [devices_of(server.id)[s].id for s in serials[:2]])
    assert run_jobs() == []
    batch = latest_batch()
    page = " ".join(htmx.get(f"/assignments/{batch.id}").get_data(as_text=True).split())
    renew = f'href="/servers/{server.id}/renew"'
    toolbar = page.split('id="batch-actions"', 1)[1].split("</div>", 1)[0]
    assert renew in toolbar and ">Renew a server</a>" in toolbar
    assert "<dt>Finished</dt><dd>—</dd>" in page
    assert re.search(r"<dt>Queued</dt><dd>2 <span", page) and "Waiting to be sent" not in page
    retry = htmx.get(f"/assignments/{batch.id}/retry").get_data(as_text=True)
    assert renew in retry and "Renew a server</a>" in retry

    apple.state.set_fault(SIM, "token_revoked", None)  # a token that works: no Renew a server pushed at the admin
    htmx.post(f"/servers/{server.id}/check")
    assert run_jobs() == []
    page = " ".join(htmx.get(f"/assignments/{batch.id}").get_data(as_text=True).split())
    assert renew not in page.split('id="batch-actions"', 1)[1].split("</div>", 1)[0]
    assert "<dt>Finished</dt><dd>—</dd>" not in page


def _configure_with_a_configuration(htmx, server, profile) -> None:
    """Assign Server Configuration, then Configure profile (its job runs with the others)."""
    from tests.test_profiles import assign_configuration, configure, make_configuration

    configuration_id, _ = make_configuration()
    assign_configuration(htmx, server.id, configuration_id)
    configure(htmx, profile.id)


def test_devices_held_for_a_profile_being_configured_again_are_sent_once_it_is(htmx, apple, paris,  # noqa: F811
                                                                             run_jobs, clock):
    """Not after the rest of their five minutes, with "Waiting for the profile … to be configured" meanwhile; a device
    waiting for Apple's own retry time (FAILED: 24 hours) keeps that wait."""
    from tests.test_profiles import profile_form, profile_named

    server, sales = paris(devices=4)
    failing, serial = sim_serials(apple)[:2]
    devices = devices_of(server.id)
    apple.state.set_fault(SIM, "assign_failed", [failing])
    pick(htmx, sales, [devices[failing].id])
    assert run_jobs() == []
    apple.state.set_fault(SIM, "assign_failed", None)

    pick(htmx, sales, [devices[failing].id, devices[serial].id])
    # Edited before the request's job ran: Changed, so the job holds the devices until it is configured again.
    assert htmx.post(f"/profiles/{sales.id}/edit", data=profile_form(name="Sales")).status_code == 204
    assert profile_named("Sales").status == "changed"
    assert run_jobs() == []
    batch = latest_batch()
    held = tasks_of(batch.id)
    assert held[serial].state == "queued" and held[serial].held_for_profile
    assert held[serial].detail == "Waiting for the profile “Sales” to be configured at Apple."
    assert held[failing].held_for_apple_wait and not held[failing].held_for_profile
    log = CallLog(apple.app)

    _configure_with_a_configuration(htmx, server, sales)
    assert run_jobs() == []
    assert profile_named("Sales").status == "configured"
    sent = tasks_of(batch.id)
    assert log.calls == [("POST", 1)] and sent[serial].state == "done" and not sent[serial].held_for_profile
    assert sent[failing].state == "queued" and sent[failing].retry_at - timing.now() > timedelta(hours=23)
    page = htmx.get(f"/assignments/{batch.id}").get_data(as_text=True)
    assert "to be configured at Apple" not in page


def test_devices_held_after_apple_answered_profile_not_found_are_sent_once_configured(htmx, apple, paris,  # noqa: F811
                                                                                      run_jobs, clock):
    server, profile = paris(devices=2)
    profile.apple_profile_uuid = "0D0C0B0A09080706050403020100FFEE"  # deleted at Apple, say
    db.session.commit()
    serial = sim_serials(apple)[0]
    pick(htmx, profile, [devices_of(server.id)[serial].id])
    assert run_jobs() == []
    batch = latest_batch()
    held = tasks_of(batch.id)[serial]
    assert held.state == "queued" and held.held_for_profile and "does not know the profile" in held.detail
    assert "does not know the profile" in latest_batch().error_message
    log = CallLog(apple.app)

    _configure_with_a_configuration(htmx, server, profile)
    assert run_jobs() == []
    assert log.calls == [("POST", 1)] and tasks_of(batch.id)[serial].state == "done"
    assert latest_batch().error_message is None
