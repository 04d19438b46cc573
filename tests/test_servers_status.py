"""A server's token state on the pages: the states Apple reports (terms not accepted, revoked, access
denied) and Check now, the banner naming tokens that need an admin on every page, "expired" versus "expires",
device counts on every tab, why Synchronize is off, 404s and empty states."""
from __future__ import annotations

import json
import re

import pytest

from portal.extensions import db
from portal.models import ManagedServer
from tests.servers_helpers import post_add_server, server_named
from tests.servers_helpers import identity, token  # noqa: F401 - fixtures


def test_terms_not_signed_then_check_now_clears_it(htmx, apple, identity, token, run_jobs):
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    apple.state.set_fault("Paris MDM", "terms_not_signed", True)
    htmx.post(f"/servers/{server.id}/check")
    run_jobs()
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    assert "Terms Not Accepted" in page and "accept them" in page
    # The action to take leads the page: accept at Apple, then Check now (not Renew a server).
    header = page.split('id="server-header"', 1)[1].split("</header>", 1)[0]
    assert 'class="button primary" href="https://business.apple.com/"' in header
    assert f'hx-post="/servers/{server.id}/check"' in header and "Renew a server" in header
    assert header.index("business.apple.com") < header.index("Renew a server")
    sync = htmx.post(f"/servers/{server.id}/sync")
    assert "cannot be synchronized" in sync.headers["HX-Trigger"]
    apple.state.set_fault("Paris MDM", "terms_not_signed", False)
    htmx.post(f"/servers/{server.id}/check")
    run_jobs()
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    assert "Valid" in page and "business.apple.com" not in page
    assert server_named("Paris").apple_state is None


def test_token_replaced_by_a_newer_download_is_reported_as_revoked(htmx, apple, identity, token, run_jobs):
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    apple.state.issue_token("Paris MDM", identity.certificate_pem)  # downloaded again in ABM
    htmx.post(f"/servers/{server.id}/check")
    run_jobs()
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    assert "Token Revoked" in page and "Renew the server with the newest token" in page


def test_access_denied_state(htmx, apple, identity, token, run_jobs):
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    apple.state.set_fault("Paris MDM", "access_denied", True)
    htmx.post(f"/servers/{server_named('Paris').id}/check")
    run_jobs()
    assert server_named("Paris").apple_state == "access_denied"


def test_unknown_server_is_a_404(htmx):
    assert htmx.get("/servers/999").status_code == 404
    assert htmx.post("/servers/999/sync").status_code == 404


def test_empty_states(admin_client):
    assert b"No managed servers yet" in admin_client.get("/servers").data
    assert b"No devices yet" in admin_client.get("/devices").data


def _server_expiring(name: str, days: float, apple_state: str | None = None) -> ManagedServer:
    from datetime import datetime, timedelta, timezone

    from portal import vault

    server = ManagedServer(name=name, token_ciphertext=vault.encrypt("{}"), key_ciphertext=vault.encrypt("k"),
                           consumer_key=f"CK_{name}", apple_state=apple_state,
                           token_expiry=datetime.now(timezone.utc) + timedelta(days=days))
    db.session.add(server)
    db.session.commit()
    return server


def test_an_expired_token_is_said_to_have_expired_not_to_expire(admin_client):
    """Device Assignment and the server page say "expired" for a date already past, "expires" for one to come."""
    gone = _server_expiring("Lyon", -2)
    _server_expiring("Paris", 200)
    listing = admin_client.get("/servers").get_data(as_text=True)
    lyon = listing[listing.index(f'id="server-{gone.id}"'):]
    lyon = lyon[:lyon.index("</tr>")]
    assert f'expired <span class="nowrap">{gone.token_expiry:%Y-%m-%d}</span>' in lyon
    assert "expires" not in lyon
    assert re.search(r'>expires <span class="nowrap">\d{4}-\d{2}-\d{2}</span>', listing)  # Paris, still valid
    page = admin_client.get(f"/servers/{gone.id}").get_data(as_text=True)
    assert "<dt>Expired</dt>" in page and "<dt>Expires</dt>" not in page


def test_every_tab_of_a_server_shows_its_device_count(admin_client):
    """Overview, Enrollment Profiles and Managed Devices: the tab says "Managed Devices (N)" on all three."""
    server = _server_expiring("Paris", 200)
    server.device_count = 1234
    db.session.commit()
    for url in (f"/servers/{server.id}", f"/servers/{server.id}/profiles", f"/servers/{server.id}/devices"):
        page = admin_client.get(url).get_data(as_text=True)
        assert ">Managed Devices (1,234)</a>" in page, url


def test_tokens_that_need_an_admin_are_named_on_every_page(admin_client):
    from datetime import datetime, timedelta, timezone

    _server_expiring("Healthy", 200)
    assert "token-banner" not in admin_client.get("/devices").get_data(as_text=True)

    soon = _server_expiring("Paris", 6.5)
    page = admin_client.get("/devices").get_data(as_text=True)
    expiry = (datetime.now(timezone.utc) + timedelta(days=6.5)).strftime("%Y-%m-%d")
    assert '<div class="token-banner" role="status">\n      \n      \n      <p class="alert alert-warning">' in page
    assert (f'The token of <a href="/servers/{soon.id}">Paris</a> is About to Expire: it expires on {expiry}\n'
            "        (in 6 days).") in page
    assert f'<a href="/servers/{soon.id}/renew">Renew a server</a>' in page
    assert ">Healthy</a>" not in page
    for url in ("/profiles", "/activity/", "/settings/apple", f"/servers/{soon.id}/devices"):
        assert "token-banner" in admin_client.get(url).get_data(as_text=True), url
    # Not on Device Assignment, where every badge is, nor on the server's own page.
    assert "token-banner" not in admin_client.get("/servers").get_data(as_text=True)
    assert "token-banner" not in admin_client.get(f"/servers/{soon.id}").get_data(as_text=True)
    # Not in pop-ups and partial updates either (htmx), which have no page around them.
    assert "token-banner" not in admin_client.get("/servers/table", headers={"HX-Request": "true"}).get_data(
        as_text=True)

    # Errors come first; past three servers, a link to the rest.
    gone = _server_expiring("Lyon", -1)
    nice = _server_expiring("Nice", 20, apple_state="token_rejected")
    _server_expiring("Brest", 25)
    page = admin_client.get("/devices").get_data(as_text=True)
    lines = re.findall(r'<p class="alert alert-(\w+)">.*?>(\w+)</a>', page.split('class="token-banner"', 1)[1], re.S)
    assert lines[:3] == [("error", "Lyon"), ("error", "Nice"), ("warning", "Paris")]  # each line its own colour
    assert (page.index(">Lyon</a> has Expired") < page.index(">Nice</a> needs attention: Token Revoked.")
            < page.index(">Paris</a> is"))
    assert f'<a href="/servers/{gone.id}/renew">Renew a server</a>' in page
    assert f'<a href="/servers/{nice.id}/renew">Renew a server</a>' in page
    assert ">Brest</a>" not in page and '<a href="/servers">1 more managed server needs attention</a>' in page
    assert "token-banner" in admin_client.get(f"/servers/{soon.id}").get_data(as_text=True)  # the others' alerts


@pytest.mark.parametrize("state,label,action", [
    ("token_rejected", "Token Revoked", "renew"), ("access_denied", "Access Denied", "renew"),
    ("server_mismatch", "Different Apple Server", "renew"), ("server_taken", "Already Connected", "renew"),
    ("terms_not_signed", "Terms Not Accepted", "page")])
def test_each_token_apple_refused_is_named_as_the_others_with_its_action(admin_client, state, label, action):
    server = _server_expiring("Nice", 200, apple_state=state)
    page = admin_client.get("/devices").get_data(as_text=True)
    line = page.split('token-banner" role="status">', 1)[1].split("</p>", 1)[0]
    assert '<p class="alert alert-error">' in line  # each refused token is an error, red
    assert f'The token of <a href="/servers/{server.id}">Nice</a> needs attention: {label}.' in line
    if action == "renew":
        assert line.rstrip().endswith(f'<a href="/servers/{server.id}/renew">Renew a server</a>.')
    else:  # accepting the terms happens at Apple; the server page leads with that link and Check now
        assert "accept them; then use Check now" in line and "Accept the terms, then Check now" not in line  # once
        assert '<a href="https://business.apple.com/" target="_blank"' in line
        assert line.rstrip().endswith(f'Check now is on <a href="/servers/{server.id}">Nice\'s page</a>.')


def test_the_banner_and_the_server_page_count_the_days_left_alike(admin_client):
    """A few seconds short of 20 days: "(in 20 days)" on the server page, so in the banner too."""
    from datetime import datetime, timedelta, timezone

    from portal.templating import days_until, relative_time

    now = datetime(2026, 12, 2, 12, tzinfo=timezone.utc)
    for left in (timedelta(days=20, seconds=-5), timedelta(days=19.9), timedelta(days=1, seconds=-1),
                 timedelta(seconds=20), timedelta(days=3)):
        days = days_until(now + left, now)
        assert relative_time(now + left, now).startswith(f"in {days} day") or days == 0, left
    server = _server_expiring("Paris", 20 - 5 / 86400)
    other = _server_expiring("Lyon", 200)
    assert "(in 20 days)" in admin_client.get(f"/servers/{server.id}").get_data(as_text=True)
    assert "(in 20 days)." in admin_client.get(f"/servers/{other.id}").get_data(as_text=True)  # Paris in the banner


def test_the_token_banner_is_not_shown_before_sign_in(client):
    _server_expiring("Paris", 3)
    assert "token-banner" not in client.get("/login").get_data(as_text=True)


@pytest.mark.parametrize("apple_state, words", [
    (None, "Synchronize is off until the server is renewed."),  # expired
    ("terms_not_signed", "Synchronize is off until Apple's new terms are accepted (then Check now)."),
])
def test_why_synchronize_is_disabled_is_said_in_words_on_the_list_and_the_server_page(
        admin_client, apple, identity, token, run_jobs, apple_state, words):
    """Not only in the disabled button's tooltip, which neither the keyboard nor a touch screen reaches."""
    from datetime import datetime, timedelta, timezone

    post_add_server(admin_client, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    for page in ("/servers", f"/servers/{server.id}"):
        assert "Synchronize is off" not in admin_client.get(page).get_data(as_text=True)
    if apple_state:
        server.apple_state = apple_state
    else:
        server.token_expiry = datetime.now(timezone.utc) - timedelta(days=2)
    db.session.commit()
    for page, described_by in (("/servers", f"sync-off-{server.id}"), (f"/servers/{server.id}", "sync-off")):
        html = admin_client.get(page).get_data(as_text=True)
        assert f'<span class="muted{" sync-off" if described_by == "sync-off" else ""}" id="{described_by}">{words}</span>' \
            in html.replace("&#39;", "'")
        button = re.search(r'<button type="submit"[^>]*>Synchronize</button>', html).group(0)
        assert "disabled" in button and f'aria-describedby="{described_by}"' in button


def _sync_card(html: str) -> str:
    return html.split('id="sync-panel"', 1)[1].split("</section>", 1)[0]


def test_check_now_refreshes_the_synchronization_card_with_the_new_token_status(htmx, apple, identity, token,
                                                                               run_jobs):
    """The Synchronization card (Full synchronization…, the next scheduled synchronization) depends on the token
    status: the answer to Check now (accountChecked) reads it again from the server page, as the header."""
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    listener = re.search(r'<div hidden hx-get="([^"]+)" hx-trigger="accountChecked from:body"\s+'
                         r'hx-select="#sync-panel" hx-target="#sync-panel" hx-swap="outerHTML"></div>', page)
    assert listener, "no listener refreshes the Synchronization card after Check now"
    refresh_url = listener.group(1)
    assert "Reads every device again" in _sync_card(page)

    apple.state.set_fault("Paris MDM", "terms_not_signed", True)
    htmx.post(f"/servers/{server.id}/check", headers={"HX-Target": "account-panel"})
    run_jobs()
    answer = htmx.get(f"/servers/{server.id}/account")
    events = json.loads(answer.headers["HX-Trigger"])
    assert events["accountChecked"] is True
    assert events["toast"]["message"].startswith(  # what Apple answered, said where Check now was pressed
        "Apple answered the token check: Paris's token status is Terms Not Accepted.")
    assert events["toast"]["category"] == "error"
    card = _sync_card(htmx.get(refresh_url).get_data(as_text=True))
    assert "Not possible while the token status is Terms Not Accepted." in card
    assert "Reads every device again" not in card and "Next scheduled synchronization" not in card

    apple.state.set_fault("Paris MDM", "terms_not_signed", False)
    htmx.post(f"/servers/{server.id}/check", headers={"HX-Target": "account-panel"})
    run_jobs()
    events = json.loads(htmx.get(f"/servers/{server.id}/account").headers["HX-Trigger"])
    assert events["accountChecked"] is True and events["toast"] == {
        "message": "Apple answered the token check: Paris's token status is Valid.", "category": "success",
        "key": f"token-check-{server.id}"}  # in the place of "Checking…"
    card = _sync_card(htmx.get(refresh_url).get_data(as_text=True))
    assert "Reads every device again" in card and "Not possible while" not in card


def test_check_now_is_on_the_row_of_a_server_whose_terms_are_not_accepted(htmx, apple, identity, token, run_jobs):
    """The row said "Synchronize is off until Apple's new terms are accepted (then Check now)" with no Check now."""
    post_add_server(htmx, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    assert ">Check now</button>" not in htmx.get("/servers").get_data(as_text=True)  # Valid: nothing to check
    apple.state.set_fault("Paris MDM", "terms_not_signed", True)
    htmx.post(f"/servers/{server.id}/check", headers={"HX-Target": "account-panel"})
    run_jobs()
    row = htmx.get("/servers").get_data(as_text=True)
    assert "(then Check now)" in row and ">Check now</button>" in row

    apple.state.set_fault("Paris MDM", "terms_not_signed", False)  # accepted at Apple
    pressed = htmx.post(f"/servers/{server.id}/check", headers={"HX-Target": f"server-{server.id}"})
    html = pressed.get_data(as_text=True)
    assert f'hx-get="/servers/{server.id}/row?checking=1" hx-trigger="every 2s"' in html and "Checking…" in html
    polled = htmx.get(f"/servers/{server.id}/row?checking=1")
    assert polled.status_code == 200  # Apple not asked yet: still polling
    run_jobs()
    answered = htmx.get(f"/servers/{server.id}/row?checking=1")
    assert answered.status_code == 286 and ">Check now</button>" not in answered.get_data(as_text=True)
    assert json.loads(answered.headers["HX-Trigger"])["toast"]["message"] == (
        "Apple answered the token check: Paris's token status is Valid.")
    assert "HX-Trigger" not in htmx.get(f"/servers/{server.id}/row").headers  # an ordinary poll says nothing


def test_the_full_page_renew_a_server_leads_back_and_its_banner_does_not_link_to_itself(admin_client):
    """Opened from the banner's link: the banner said "…then Renew a server" linking to the same page, and the page
    had no breadcrumbs."""
    gone = _server_expiring("Lyon", -1)
    page = admin_client.get(f"/servers/{gone.id}/renew").get_data(as_text=True)
    assert "<strong>Renew a server</strong> below" in page
    assert f'<a href="/servers/{gone.id}/renew">Renew a server</a>' not in page
    assert (f'<nav class="breadcrumbs" aria-label="Breadcrumb"><a href="/servers">Device Assignment</a> › '
            f'<a href="/servers/{gone.id}">Lyon</a> › Renew a server: Lyon</nav>') in page
    assert f'<a href="/servers/{gone.id}/renew">Renew a server</a>' in admin_client.get("/devices").get_data(as_text=True)


def test_check_now_pressed_again_while_a_check_waits_queues_no_second_one(admin_client, apple, identity, token,
                                                                           run_jobs):
    """Without JavaScript the pending check's button stays live: pressed again, it says one is under way."""
    from sqlalchemy import func, select

    from portal.models import ActivityEntry
    from portal.queue import get_queue

    post_add_server(admin_client, "Paris", token, identity.key_pem)
    run_jobs()
    server = server_named("Paris")
    assert admin_client.post(f"/servers/{server.id}/check").status_code == 302
    first_job = server_named("Paris").account_job_id
    again = admin_client.post(f"/servers/{server.id}/check", follow_redirects=True)
    assert "A check of Paris&#39;s token is already under way" in again.get_data(as_text=True)
    assert server_named("Paris").account_job_id == first_job
    assert get_queue().get_job_ids().count(first_job) == 1 and len(get_queue().get_job_ids()) == 1
    assert db.session.execute(select(func.count()).select_from(ActivityEntry).where(
        ActivityEntry.action == "server.check_requested")).scalar_one() == 1
    assert run_jobs() == []
    assert admin_client.post(f"/servers/{server.id}/check").status_code == 302  # answered: a new check is possible
    assert server_named("Paris").account_job_id != first_job
