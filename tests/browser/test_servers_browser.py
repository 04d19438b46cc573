"""Managed servers in a real browser: Add Server in the pop-up, watch the first synchronization
finish, bad input kept in the pop-up, Delete with a typed confirmation."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.shots import shot
from tests.browser.test_keyboard_browser import settled
from tests.servers_helpers import Identity, post_add_server

pytestmark = pytest.mark.browser

@pytest.fixture
def identity():
    return Identity()


@pytest.fixture
def token_file(apple, identity, tmp_path) -> Path:
    """A token issued by the simulator for `identity`, saved as Apple Business Manager names it."""
    path = tmp_path / "Paris_Token_2026-11-26T10-00-00Z_smime.p7m"
    path.write_bytes(apple.state.issue_token("Paris MDM", identity.certificate_pem, devices=25))
    return path


@pytest.fixture
def key_file(identity, tmp_path) -> Path:
    path = tmp_path / "paris-key.pem"
    path.write_bytes(identity.key_pem)
    return path


def _open_add_server(page: Page):
    page.get_by_role("toolbar", name="Managed servers").get_by_role("link", name="Add Server").click()
    dialog = page.get_by_role("dialog", name="Add a Server")
    expect(dialog).to_be_visible()
    return dialog


def _server_row(page: Page, name: str):
    return page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))


def test_add_server_in_the_pop_up_and_watch_the_sync_finish(signed_in_page, run_jobs, token_file, key_file):
    page = signed_in_page
    dialog = _open_add_server(page)
    name = dialog.get_by_label("Name", exact=True)
    expect(name).to_be_focused()  # the keyboard user starts typing straight away
    shot(page, "add-server-dialog.png")

    page.keyboard.type("Paris")
    expect(name).to_have_value("Paris")
    dialog.get_by_label("Authentication token", exact=True).set_input_files(token_file)
    dialog.get_by_label("Private key file", exact=True).set_input_files(key_file)
    dialog.get_by_role("button", name="Add Server").click()

    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status")).to_contain_text("Managed server Paris added")
    row = _server_row(page, "Paris")
    expect(row).to_have_count(1)
    expect(row.get_by_text("Queued", exact=True)).to_be_visible()

    assert run_jobs() == []  # the account job and the first synchronization, in this process

    # The row polls every 2 s while its sync runs, then stops.
    expect(row.get_by_text("Succeeded", exact=True)).to_be_visible(timeout=10_000)
    expect(row.get_by_role("cell", name="25", exact=True)).to_be_visible()
    expect(row.get_by_role("cell", name=re.compile(r"^Paris MDM\b"))).to_be_visible()  # with its organization below
    expect(row.get_by_role("button", name="Synchronize")).to_be_enabled()
    assert page.locator("#server-table tr[hx-trigger]").count() == 0  # polling stopped
    shot(page, "servers-after-sync.png")

    row.get_by_role("link", name="Paris", exact=True).click()
    expect(page.get_by_role("heading", name="Paris", exact=True)).to_be_visible()
    account = page.locator("#account-panel")
    expect(account.get_by_role("heading", name="Apple account")).to_be_visible()
    expect(account.get_by_role("definition").first).to_have_text("Paris MDM", timeout=10_000)
    expect(account.get_by_text("Asking Apple…")).to_have_count(0)


def test_bad_token_is_reported_in_the_still_open_pop_up(signed_in_page, apple, tmp_path, key_file):
    page = signed_in_page
    other = Identity("someone-else")
    foreign = tmp_path / "Paris_Token_smime.p7m"
    foreign.write_bytes(apple.state.issue_token("Paris MDM", other.certificate_pem, devices=3))

    dialog = _open_add_server(page)
    dialog.get_by_label("Name", exact=True).fill("Paris")
    dialog.get_by_label("Authentication token", exact=True).set_input_files(foreign)
    dialog.get_by_label("Private key file", exact=True).set_input_files(key_file)
    dialog.get_by_role("button", name="Add Server").click()

    token_field = dialog.locator(".field").filter(has=page.get_by_label("Authentication token", exact=True))
    error = token_field.get_by_role("alert")
    expect(error).to_be_visible()
    expect(error).to_contain_text("someone-else")  # names the certificate the token was made for
    token_input = dialog.get_by_label("Authentication token", exact=True)
    expect(token_input).to_have_attribute("aria-invalid", "true")
    expect(token_input).to_be_focused()  # the keyboard is on the field to fix, not lost on <body>
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Name", exact=True)).to_have_value("Paris")
    expect(page.get_by_text("No managed servers yet")).to_be_visible()  # nothing was added

    page.once("dialog", lambda confirm: confirm.accept())  # "Close without saving?": what was typed goes
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#modal-content")).to_be_empty()


def test_delete_needs_the_name_typed(signed_in_page, htmx, run_jobs, apple, identity, token_file):
    assert post_add_server(htmx, "Paris", token_file.read_bytes(), identity.key_pem).status_code == 204
    assert run_jobs() == []
    page = signed_in_page
    page.reload()
    row = _server_row(page, "Paris")
    expect(row).to_have_count(1)

    row.get_by_role("link", name="Delete", exact=True).click()
    dialog = page.get_by_role("dialog", name="Delete Paris")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("25 devices")
    confirm = dialog.get_by_label("Type the server name to confirm")
    expect(confirm).to_be_focused()

    confirm.fill("paris")
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(dialog.get_by_role("alert")).to_have_text("Type Paris exactly to confirm.")
    expect(dialog.get_by_label("Type the server name to confirm")).to_be_focused()
    expect(dialog).to_be_visible()
    expect(row).to_have_count(1)

    dialog.get_by_label("Type the server name to confirm").fill("Paris")
    dialog.get_by_role("button", name="Delete", exact=True).click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status")).to_contain_text("Managed server Paris deleted.")
    expect(row).to_have_count(0)
    expect(page.get_by_role("heading", name="No managed servers yet")).to_be_visible()
    expect(page.get_by_role("status")).not_to_contain_text(re.compile("failed|cannot", re.I))


def test_the_server_page_history_shows_a_synchronization_once_it_ends(signed_in_page, htmx, run_jobs, token_file,
                                                                      key_file, apple, identity):
    page = signed_in_page
    assert post_add_server(htmx, "Paris", token_file.read_bytes(), identity.key_pem).status_code == 204
    assert run_jobs() == []
    server_id = int(re.search(r"/servers/(\d+)", htmx.get("/servers").get_data(as_text=True)).group(1))
    page.goto(f"/servers/{server_id}")
    history = page.locator("#server-history").get_by_role("row")
    expect(history).to_have_count(2)  # the header and the first synchronization
    expect(page.get_by_role("link", name="Managed Devices (25)")).to_be_visible()
    expect(page.locator("#server-summary")).to_contain_text("25 devices will fail to enroll automatically")
    apple.state.add_devices("Paris MDM", 3)  # assigned in Apple Business Manager meanwhile
    page.get_by_role("toolbar", name="Server actions").get_by_role("button", name="Synchronize").click()
    expect(page.locator("#sync-panel")).to_contain_text("Queued")
    assert run_jobs() == []
    expect(page.locator("#sync-panel")).to_contain_text("Succeeded", timeout=10_000)
    expect(history).to_have_count(3, timeout=10_000)  # without a reload
    expect(history.nth(1)).to_contain_text("Succeeded")
    expect(page.locator("#server-history").get_by_role("listitem").first).to_contain_text("Synchronized Paris")
    # The device count and the warning follow the synchronization too.
    expect(page.get_by_role("link", name="Managed Devices (28)")).to_be_visible()
    expect(page.locator("#server-summary")).to_contain_text("28 devices will fail to enroll automatically")


def _expire_token(server_id: int) -> None:
    from datetime import datetime, timedelta, timezone

    from portal.extensions import db
    from portal.models import ManagedServer

    server = db.session.get(ManagedServer, server_id)
    server.token_expiry = datetime.now(timezone.utc) - timedelta(days=1)
    db.session.commit()


def test_renew_a_server_from_its_page_shows_the_new_token(signed_in_page, htmx, run_jobs, apple, identity, token_file,
                                                           tmp_path):
    """The server page shows the renewed token at once: status, expiry and a Synchronize that works again."""
    page = signed_in_page
    assert post_add_server(htmx, "Paris", token_file.read_bytes(), identity.key_pem).status_code == 204
    assert run_jobs() == []
    server_id = int(re.search(r"/servers/(\d+)", htmx.get("/servers").get_data(as_text=True)).group(1))
    _expire_token(server_id)
    page.goto(f"/servers/{server_id}")
    toolbar = page.get_by_role("toolbar", name="Server actions")
    expect(page.locator("main header .badge")).to_have_text("Expired")
    expect(toolbar.get_by_role("button", name="Synchronize")).to_be_disabled()

    renewed = tmp_path / "Paris_Token_2026-11-27T10-00-00Z_smime.p7m"
    renewed.write_bytes(apple.state.issue_token("Paris MDM", identity.certificate_pem))
    toolbar.get_by_role("link", name="Renew a server").click()
    dialog = page.get_by_role("dialog", name="Renew a server: Paris")
    dialog.get_by_label("New authentication token").set_input_files(renewed)
    dialog.get_by_role("button", name="Renew").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status")).to_contain_text("Paris renewed")
    expect(page.locator("main header .badge")).to_have_text("Valid")
    expect(toolbar.get_by_role("button", name="Synchronize")).to_be_enabled()
    expect(page.locator("#token-card")).not_to_contain_text("ago")  # the expiry is in the future now
    expect(page.locator("#token-card")).not_to_contain_text("never")  # Renewed: now


def test_check_now_shows_what_apple_said_on_the_server_page(signed_in_page, htmx, run_jobs, apple, identity,
                                                           token_file):
    """Check now finding a problem (terms not accepted) updates the token status and the header, not only the
    account details."""
    page = signed_in_page
    assert post_add_server(htmx, "Paris", token_file.read_bytes(), identity.key_pem).status_code == 204
    assert run_jobs() == []
    server_id = int(re.search(r"/servers/(\d+)", htmx.get("/servers").get_data(as_text=True)).group(1))
    page.goto(f"/servers/{server_id}")
    expect(page.locator("main header .badge")).to_have_text("Valid")

    apple.state.set_fault("Paris MDM", "terms_not_signed", True)
    page.locator("#account-panel").get_by_role("button", name="Check now").click()
    expect(page.locator("#account-panel")).to_contain_text("Asking Apple")
    assert run_jobs() == []
    expect(page.locator("#account-panel")).not_to_contain_text("Asking Apple", timeout=10_000)
    expect(page.locator("main header .badge")).to_have_text("Terms Not Accepted")
    # Apple's answer takes the place of "Checking…" (both stood one above the other, until each timed out).
    check_toasts = page.locator(f"#toasts .toast[data-key='token-check-{server_id}']")
    expect(check_toasts).to_have_count(1)
    expect(check_toasts).to_contain_text("Apple answered the token check")
    expect(page.locator("#toasts")).not_to_contain_text("Checking the token")
    expect(page.locator("#token-card")).to_contain_text("accept them")
    expect(page.get_by_role("toolbar", name="Server actions").get_by_role("button", name="Synchronize")).to_be_disabled()
    # The Synchronization card too: no Full synchronization… nor next scheduled synchronization.
    expect(page.locator("#sync-panel")).to_contain_text("Not possible while the token status is Terms Not Accepted.")
    expect(page.locator("#sync-panel").get_by_role("button", name="Full synchronization…")).to_be_disabled()
    expect(page.locator("#sync-panel")).not_to_contain_text("Next scheduled synchronization")
    expect(page.locator("#server-history").get_by_role("listitem").first).to_contain_text("now Terms Not Accepted")
    toolbar = page.get_by_role("toolbar", name="Server actions")
    expect(toolbar.get_by_role("link", name="Accept the terms in Apple Business Manager")).to_have_attribute(
        "href", "https://business.apple.com/")
    shot(page, "server-terms-not-accepted.png")

    # Accepted at Apple: Check now from the header clears the status without a reload.
    apple.state.set_fault("Paris MDM", "terms_not_signed", None)
    toolbar.get_by_role("button", name="Check now").click()
    expect(page.locator("#account-panel")).to_contain_text("Asking Apple")
    assert run_jobs() == []
    expect(page.locator("main header .badge")).to_have_text("Valid", timeout=10_000)
    expect(toolbar.get_by_role("link", name="Accept the terms in Apple Business Manager")).to_have_count(0)
    expect(toolbar.get_by_role("button", name="Synchronize")).to_be_enabled()
    expect(page.locator("#sync-panel").get_by_role("link", name="Full synchronization…")).to_be_visible()
    expect(page.locator("#sync-panel")).not_to_contain_text("Not possible while")


def test_the_server_table_fits_a_1280_pixel_screen_with_every_action(signed_in_page, htmx, run_jobs, apple, identity,
                                                                      token_file):
    """A server with a server configuration has one more action (Unassign Server Configuration): the table still
    fits a 1280 × 800 screen, with no scrollbar and its right edge in view, whatever its token status."""
    from tests.test_profiles import assign_configuration, make_configuration

    page = signed_in_page
    assert post_add_server(htmx, "Paris", token_file.read_bytes(), identity.key_pem).status_code == 204
    assert run_jobs() == []
    server_id = int(re.search(r"/servers/(\d+)", htmx.get("/servers").get_data(as_text=True)).group(1))
    configuration_id, _ = make_configuration()
    assign_configuration(htmx, server_id, configuration_id)
    from portal.extensions import db
    from portal.models import ManagedServer

    db.session.get(ManagedServer, server_id).apple_state = "server_mismatch"  # the longest token status
    db.session.commit()
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/servers")
    row = _server_row(page, "Paris")
    expect(row.get_by_role("link", name="Unassign Server Configuration")).to_be_visible()
    expect(row.get_by_text("Different Apple Server")).to_be_visible()
    sizes = page.locator("#server-table .table-wrap").evaluate("w => [w.scrollWidth, w.clientWidth]")
    assert sizes[0] <= sizes[1], f"the table is {sizes[0]} px wide in {sizes[1]} px"
    expect(row).to_contain_text("expires")  # the token's expiry is still there, on two lines if need be


def test_a_pop_up_sent_after_the_session_ended_goes_to_the_sign_in_page_and_back(signed_in_page):
    """Signed out in another tab: the pop-up's form does not show the sign-in page inside the pop-up."""
    page = signed_in_page
    dialog = _open_add_server(page)
    page.keyboard.type("Paris")
    other_tab = page.context.new_page()
    other_tab.goto("/servers")
    other_tab.get_by_role("button", name="Sign out").click()
    other_tab.wait_for_url("**/login")
    other_tab.close()

    dialog.get_by_role("button", name="Add Server").click()
    page.wait_for_url("**/login?next=/servers")
    expect(page.get_by_role("status")).to_contain_text("Your session has ended")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/servers")


def test_a_pasted_private_key_is_not_kept_in_the_tab_when_the_session_ended(signed_in_page, identity):
    """What was typed is kept in sessionStorage for after signing in again, but never a secret: a private key
    pasted into Add Server stays out of the browser's storage (like a password), the server's name comes back."""
    page = signed_in_page
    dialog = _open_add_server(page)
    dialog.get_by_label("Name", exact=True).fill("Paris")
    dialog.get_by_label("…or paste the private key (PEM)").fill(identity.key_pem.decode())
    other_tab = page.context.new_page()
    other_tab.goto("/servers")
    other_tab.get_by_role("button", name="Sign out").click()
    other_tab.wait_for_url("**/login")
    other_tab.close()

    dialog.get_by_role("button", name="Add Server").click()
    page.wait_for_url("**/login?next=/servers")
    kept = page.evaluate("() => JSON.stringify(Object.assign({}, sessionStorage))")
    assert "Paris" in kept  # the draft is there…
    assert "PRIVATE KEY" not in kept  # …without the key
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/servers")
    dialog = page.get_by_role("dialog", name="Add a Server")
    expect(dialog.get_by_label("Name", exact=True)).to_have_value("Paris")
    expect(dialog.get_by_label("…or paste the private key (PEM)")).to_have_value("")


def test_a_key_pair_just_generated_leads_to_add_server_with_it_chosen(signed_in_page, apple, tmp_path, key_file,
                                                                     identity):
    """Generate key pair ends on an Add Server button (Enter or Space), which opens Add Server with that key pair
    chosen as the private key. Add Server opened otherwise chooses none, and a key file or pasted key the admin gives
    wins over the suggestion (sent together, both would be refused)."""
    from sqlalchemy import select

    from portal.extensions import db
    from portal.models import PendingKeyPair

    page = signed_in_page
    generate = page.get_by_role("toolbar", name="Managed servers").get_by_role("link", name="Generate key pair")

    def generated(name: str):
        generate.click()
        dialog = page.get_by_role("dialog", name="Generate key pair")
        dialog.get_by_label("Certificate name").fill(name)
        dialog.get_by_role("button", name="Generate").click()
        expect(dialog).to_contain_text(f"Key pair “{name}” generated")
        settled(page)  # Enter sooner would follow the new Add Server link as a plain link, before htmx takes it
        db.session.expire_all()
        pending = db.session.execute(select(PendingKeyPair).where(PendingKeyPair.label == name)).scalar_one()
        return dialog.get_by_role("link", name="Add Server", exact=True), pending

    add, lyon = generated("Lyon key")
    add.focus()
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Add a Server")
    expect(dialog.get_by_label("Name", exact=True)).to_be_focused()
    chosen = dialog.get_by_label("Private key", exact=True)
    expect(chosen).to_have_value(str(lyon.id))
    token = tmp_path / "Lyon_Token_smime.p7m"
    token.write_bytes(apple.state.issue_token("Lyon MDM", lyon.certificate_pem.encode(), devices=3))
    page.keyboard.type("Lyon")
    dialog.get_by_label("Authentication token", exact=True).set_input_files(token)
    dialog.get_by_role("button", name="Add Server").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#toasts")).to_contain_text("Managed server Lyon added")
    db.session.expire_all()
    assert db.session.get(PendingKeyPair, lyon.id).used_by_server_id is not None

    add, paris = generated("Paris key")
    add.focus()
    page.keyboard.press(" ")
    expect(chosen).to_have_value(str(paris.id))
    dialog.get_by_label("Private key file", exact=True).set_input_files(key_file)
    expect(chosen).to_have_value("0")  # "Upload or paste the private key below": the admin's own file
    page.once("dialog", lambda confirm: confirm.accept())  # "Close without saving?"
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    page.get_by_role("toolbar", name="Managed servers").get_by_role("link", name="Add Server").click()
    expect(chosen).to_be_visible()
    expect(chosen).to_have_value("0")  # not opened from the key pair: nothing chosen for the admin
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()

    # The button as a plain page (no pop-up): the same suggestion, which gives way to a pasted key too.
    page.goto(f"/servers/add?key={paris.id}")
    chosen = page.get_by_label("Private key", exact=True)
    expect(chosen).to_have_value(str(paris.id))
    page.get_by_label("…or paste the private key (PEM)").fill(identity.key_pem.decode())
    expect(chosen).to_have_value("0")
    chosen.select_option(str(paris.id))  # chosen by the admin afterwards: it stands, and both are refused
    page.get_by_label("…or paste the private key (PEM)").fill(identity.key_pem.decode() + "\n")
    expect(chosen).to_have_value(str(paris.id))


def test_a_pop_up_whose_form_was_sent_closes_without_asking(signed_in_page):
    """Typing in a pop-up makes closing it ask "Close without saving?". Once the form is sent and the pop-up shows its
    result (Generate key pair), nothing is left unsaved: closing must not ask. A form sent back with errors (422) still
    holds what was typed, so closing that one asks."""
    page = signed_in_page
    asked = []

    def answer(confirm):
        asked.append(confirm.message)
        confirm.accept()

    page.on("dialog", answer)
    page.get_by_role("toolbar", name="Managed servers").get_by_role("link", name="Generate key pair").click()
    dialog = page.get_by_role("dialog", name="Generate key pair")
    dialog.get_by_label("Valid for (days)").fill("5")  # refused: 30 to 3650
    dialog.get_by_role("button", name="Generate").click()
    expect(dialog).to_contain_text("Enter a number of days from 30 to 3650.")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert len(asked) == 1 and "Close without saving?" in asked[0]

    page.get_by_role("toolbar", name="Managed servers").get_by_role("link", name="Generate key pair").click()
    dialog.get_by_label("Certificate name").fill("Nantes key")
    dialog.get_by_role("button", name="Generate").click()
    expect(dialog).to_contain_text("Key pair “Nantes key” generated")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert len(asked) == 1  # nothing asked this time


def test_leaving_a_form_page_after_typing_asks_first(signed_in_page):
    """/servers/add opened as a page: its Cancel is a link, which dropped the typed name without a word (the
    same form in the pop-up asks "Close without saving?")."""
    page = signed_in_page
    page.goto("/servers/add")
    questions = []

    def answer(dialog):
        questions.append(dialog.type)
        dialog.dismiss()  # stay

    page.on("dialog", answer)
    page.get_by_role("link", name="Cancel").click()  # nothing typed: leaves without a question
    expect(page).to_have_url(re.compile(r"/servers$"))
    assert questions == []

    page.goto("/servers/add")
    page.get_by_label("Name").fill("Lyon")
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_label("Name")).to_have_value("Lyon")
    assert questions == ["beforeunload"]
    page.get_by_role("button", name="Add Server").click()  # sent (refused: no token): no question
    expect(page.locator("[aria-invalid=true]").first).to_be_visible()
    page.get_by_role("link", name="Cancel").click()  # refused: still unsaved, asks again (and is still a link)
    expect(page.get_by_label("Name")).to_have_value("Lyon")
    assert questions == ["beforeunload", "beforeunload"]


def test_a_pop_up_refused_form_still_closes_with_cancel(signed_in_page):
    page = signed_in_page
    page.goto("/servers")
    page.get_by_role("link", name="Add Server").first.click()
    dialog = page.get_by_role("dialog", name="Add a Server")
    dialog.get_by_label("Name").fill("Lyon")
    dialog.get_by_role("button", name="Add Server").click()  # refused: no token
    expect(dialog.locator("[aria-invalid=true]").first).to_be_visible()
    page.once("dialog", lambda question: question.accept())  # "Close without saving?"
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
