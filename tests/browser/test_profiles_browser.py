"""Enrollment profiles in a real browser: Create Profile in the pop-up (a bad field keeps the pop-up open
with the message next to it), then Configure profile and watch the row go Configuring → Configured."""
from __future__ import annotations

import re


import pytest
from playwright.sync_api import Page, expect

from tests.browser.shots import shot
from tests.test_profiles import MDM_URL

pytestmark = pytest.mark.browser

@pytest.fixture
def server_id(configured_paris) -> int:
    return configured_paris


def _profile_row(page: Page, name: str):
    return page.get_by_role("row").filter(has=page.get_by_role("link", name=name, exact=True))


def test_create_then_configure_a_profile(signed_in_page, server_id, apple, run_jobs):
    page = signed_in_page
    page.goto(f"/servers/{server_id}/profiles")
    expect(page.get_by_role("heading", name="No enrollment profiles on Paris yet")).to_be_visible()

    page.get_by_role("toolbar", name="Enrollment profiles").get_by_role("link", name="Create Profile").click()
    dialog = page.get_by_role("dialog", name="Add an enrollment profile")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Profile name")).to_be_focused()
    expect(dialog.get_by_text(MDM_URL)).to_be_visible()  # the URL Apple will get, from the server configuration

    page.keyboard.type("Staff iPads")
    dialog.get_by_label("Organization").fill("Acme Corp")
    dialog.get_by_label("Support Email Address").fill("help desk")  # not an address
    dialog.get_by_text("Advanced", exact=True).click()
    dialog.get_by_label("Apple Account (Apple ID)").check()
    dialog.get_by_role("button", name="Create Profile").click()

    email = dialog.get_by_label("Support Email Address")
    field = dialog.locator(".field").filter(has=page.get_by_label("Support Email Address"))
    expect(field.get_by_role("alert")).to_contain_text("Enter an email address like support@example.com.")
    expect(email).to_be_focused()
    expect(dialog.get_by_label("Profile name")).to_have_value("Staff iPads")  # nothing typed is lost
    expect(dialog.get_by_label("Apple Account (Apple ID)")).to_be_checked()
    shot(page, "profile-create-error.png")

    email.fill("help@acme.example")
    dialog.get_by_role("button", name="Create Profile").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status")).to_contain_text("Profile Staff iPads created on Paris")
    row = _profile_row(page, "Staff iPads")
    expect(row.get_by_text("Not configured", exact=True)).to_be_visible()

    row.get_by_role("link", name="Configure profile").click()
    confirm = page.get_by_role("dialog", name="Configure profile Staff iPads")
    expect(confirm).to_contain_text(MDM_URL)
    shot(page, "profile-configure-confirm.png")
    confirm.get_by_role("button", name="Configure profile").click()
    expect(confirm).to_be_hidden()
    expect(row.get_by_text("Configuring", exact=True)).to_be_visible()
    expect(row.get_by_role("button", name="Configuring…")).to_be_disabled()

    assert run_jobs() == []  # the Configure profile job, in this process

    # The row polls every 2 s while Configuring, then stops with the result.
    expect(row.get_by_text("Configured", exact=True)).to_be_visible(timeout=10_000)
    uuid = apple.state.profiles("Paris MDM")[0]["profile_uuid"]
    expect(row.get_by_text(uuid)).to_be_visible()
    assert page.locator("#profile-table tr[hx-trigger]").count() == 0  # polling stopped
    shot(page, "profiles-configured.png")

    row.get_by_role("link", name="Staff iPads", exact=True).click()
    expect(page.get_by_role("heading", name="Staff iPads", exact=True)).to_be_visible()
    expect(page.locator("#profile-status")).to_contain_text(uuid)
    expect(page.locator("#profile-settings")).to_contain_text("Apple Account (Apple ID)")
    shot(page, "profile-page.png")


def test_add_devices_follows_the_profile_status_on_its_page(signed_in_page, server_id, run_jobs):
    """Configure profile from the profile page: once Apple answers, Add Devices is available without a reload;
    an edit that makes the profile Changed — configure again takes it away again."""
    from portal.extensions import db
    from portal.models import EnrollmentProfile

    page = signed_in_page
    profile = EnrollmentProfile(server_id=server_id, name="Staff iPads", department="IT")
    db.session.add(profile)
    db.session.commit()
    page.goto(f"/profiles/{profile.id}")
    section = page.locator("#profile-devices")
    expect(section.get_by_role("button", name="Add Devices")).to_be_disabled()

    page.get_by_role("toolbar", name="Profile actions").get_by_role("link", name="Configure profile").click()
    confirm = page.get_by_role("dialog", name="Configure profile Staff iPads")
    confirm.get_by_role("button", name="Configure profile").click()
    expect(confirm).to_be_hidden()
    expect(page.locator("#profile-status")).to_contain_text("Configuring")
    assert run_jobs() == []
    expect(page.locator("#profile-status")).to_contain_text("Configured", timeout=10_000)
    expect(section.get_by_role("link", name="Add Devices", exact=True)).to_be_visible()
    expect(section).not_to_contain_text("use Configure profile first")

    page.get_by_role("toolbar", name="Profile actions").get_by_role("link", name="Edit").click()
    dialog = page.get_by_role("dialog", name="Edit Staff iPads")
    dialog.get_by_label("Department").fill("IT Support")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#profile-status")).to_contain_text("Changed — configure again")
    expect(section.get_by_role("button", name="Add Devices")).to_be_disabled()


def test_a_configured_profiles_actions_fit_a_desktop_screen(signed_in_page, server_id):
    """Apple's 32-character UUID beside a Changed reason pushed Configure profile / Delete out of a 1280 px screen."""
    from datetime import datetime, timezone

    from portal.extensions import db
    from portal.models import EnrollmentProfile

    db.session.add(EnrollmentProfile(
        server_id=server_id, name="Staff iPads", organization="ACME", status="changed",
        status_detail="its settings were edited after it was last configured",
        apple_profile_uuid="F4C3A4459567D6C1FBBD4ADAA6DBE559", configured_at=datetime.now(timezone.utc)))
    db.session.commit()
    page = signed_in_page
    page.set_viewport_size({"width": 1280, "height": 800})
    for url in (f"/servers/{server_id}/profiles", "/profiles"):
        page.goto(url)
        row = _profile_row(page, "Staff iPads")
        expect(row.get_by_text("Changed — configure again")).to_be_visible()
        shot(page, f"configured-profile{url.replace('/', '-')}.png")
        wrap = page.locator(".table-wrap").filter(has=row)
        widths = wrap.evaluate("w => [w.scrollWidth, w.clientWidth]")
        assert widths[0] <= widths[1], f"{url}: the profile table is {widths[0]} px wide in a {widths[1]} px box"


def _end_session_in_another_tab(page: Page) -> None:
    other_tab = page.context.new_page()
    other_tab.goto("/servers")
    other_tab.get_by_role("button", name="Sign out").click()
    other_tab.wait_for_url("**/login")
    other_tab.close()


def _sign_in_again(page: Page) -> None:
    from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD

    page.get_by_label("User name").fill(ADMIN_NAME)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_what_was_typed_in_a_pop_up_comes_back_after_the_session_ended_and_sign_in(signed_in_page, server_id):
    """The session ended while the pop-up was open: OK goes to the sign-in page, and after signing in the
    pop-up opens again on the same page with what was typed, to be checked and sent."""
    from portal.models import EnrollmentProfile
    from portal.extensions import db
    from sqlalchemy import select

    page = signed_in_page
    page.goto(f"/servers/{server_id}/profiles")
    page.get_by_role("toolbar", name="Enrollment profiles").get_by_role("link", name="Create Profile").click()
    dialog = page.get_by_role("dialog", name="Add an enrollment profile")
    dialog.get_by_label("Profile name").fill("Lab Macs")
    dialog.get_by_label("Organization").fill("Acme Corp")
    dialog.get_by_label("Support Email Address").fill("help@acme.example")
    dialog.get_by_text("Advanced", exact=True).click()
    dialog.get_by_label("Apple Account (Apple ID)").check()
    _end_session_in_another_tab(page)

    dialog.get_by_role("button", name="Create Profile").click()
    page.wait_for_url(f"**/login?next=/servers/{server_id}/profiles")
    assert db.session.execute(select(EnrollmentProfile)).first() is None  # nothing was created
    expect(page.get_by_text("What you entered before your session ended is kept in this tab")).to_be_visible()
    _sign_in_again(page)
    page.wait_for_url(f"**/servers/{server_id}/profiles")

    dialog = page.get_by_role("dialog", name="Add an enrollment profile")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("status")).to_contain_text("Your session ended before this was sent")
    expect(dialog.get_by_label("Profile name")).to_have_value("Lab Macs")
    expect(dialog.get_by_label("Organization")).to_have_value("Acme Corp")
    expect(dialog.get_by_label("Support Email Address")).to_have_value("help@acme.example")
    expect(dialog.get_by_label("Apple Account (Apple ID)")).to_be_checked()
    shot(page, "profile-create-after-session-end.png")

    dialog.get_by_role("button", name="Create Profile").click()  # the new session's CSRF token: accepted
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("status")).to_contain_text("Profile Lab Macs created on Paris")
    page.reload()
    expect(page.get_by_role("dialog", name="Add an enrollment profile")).to_be_hidden()  # restored once only


def test_an_unsent_pop_up_whose_object_was_deleted_meanwhile_is_said_not_dropped_silently(signed_in_page, server_id):
    from portal.models import EnrollmentProfile
    from portal.extensions import db

    profile = EnrollmentProfile(server_id=server_id, name="Lab Macs", organization="ACME", status="not_configured")
    db.session.add(profile)
    db.session.commit()
    page = signed_in_page
    page.goto(f"/servers/{server_id}/profiles")
    _profile_row(page, "Lab Macs").get_by_role("link", name="Edit").click()
    dialog = page.get_by_role("dialog", name=re.compile("Lab Macs"))
    dialog.get_by_label("Organization").fill("Acme Corp")
    _end_session_in_another_tab(page)
    dialog.get_by_role("button", name="Save").click()
    page.wait_for_url(f"**/login?next=/servers/{server_id}/profiles")
    db.session.delete(db.session.get(EnrollmentProfile, profile.id))  # another admin deleted it meanwhile
    db.session.commit()
    _sign_in_again(page)
    page.wait_for_url(f"**/servers/{server_id}/profiles")
    expect(page.locator("#toasts")).to_contain_text("What you entered before your session ended could not be put back")
    expect(page.locator("dialog[open]")).to_have_count(0)


def test_an_unsent_pop_up_is_not_shown_to_another_admin_signing_in_in_the_same_tab(signed_in_page, server_id, auth):
    auth.create_admin("bob", "another long passphrase")
    page = signed_in_page
    page.goto(f"/servers/{server_id}/profiles")
    page.get_by_role("toolbar", name="Enrollment profiles").get_by_role("link", name="Create Profile").click()
    dialog = page.get_by_role("dialog", name="Add an enrollment profile")
    dialog.get_by_label("Profile name").fill("Secret plans")
    _end_session_in_another_tab(page)
    dialog.get_by_role("button", name="Create Profile").click()
    page.wait_for_url(f"**/login?next=/servers/{server_id}/profiles")
    page.get_by_label("User name").fill("bob")
    page.get_by_label("Password").fill("another long passphrase")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/servers/{server_id}/profiles")
    expect(page.get_by_role("heading", name="No enrollment profiles on Paris yet")).to_be_visible()
    expect(page.get_by_role("dialog", name="Add an enrollment profile")).to_be_hidden()


def test_a_default_profile_for_some_device_families(signed_in_page, server_id):
    page = signed_in_page
    page.goto(f"/servers/{server_id}/profiles")
    page.get_by_role("toolbar", name="Enrollment profiles").get_by_role("link", name="Create Profile").click()
    dialog = page.get_by_role("dialog", name="Add an enrollment profile")
    dialog.get_by_label("Profile name").fill("Phones")
    families = dialog.get_by_role("group", name="Only for new devices of these families")
    families.get_by_label("iPhone").check()
    families.get_by_label("Apple TV").check()
    dialog.get_by_role("button", name="Create Profile").click()
    error = families.get_by_role("alert")
    expect(error).to_contain_text("Tick “Default profile for new devices of this server” too")
    expect(families.get_by_label("iPhone")).to_be_checked()  # nothing ticked is lost
    dialog.get_by_label("Default profile for new devices of this server").check()
    families.scroll_into_view_if_needed()
    shot(page, "profile-default-families.png")
    dialog.get_by_role("button", name="Create Profile").click()
    expect(dialog).to_be_hidden()
    row = _profile_row(page, "Phones")
    expect(row).to_contain_text("iPhone, Apple TV")
    row.get_by_role("link", name="Phones", exact=True).click()
    # The badge under the heading (the Activity card below says it too, in the Create Profile entry).
    expect(page.locator("#profile-title").get_by_text("Default for new iPhone and Apple TV devices")).to_be_visible()


def _edit_staff_ipads(page, server_id):
    """A profile "Staff iPads" (set up directly), its page open and its Edit pop-up: (the profile, the pop-up)."""
    from portal.extensions import db
    from portal.models import EnrollmentProfile

    profile = EnrollmentProfile(server_id=server_id, name="Staff iPads", department="IT")
    db.session.add(profile)
    db.session.commit()
    page.goto(f"/profiles/{profile.id}")
    page.get_by_role("toolbar", name="Profile actions").get_by_role("link", name="Edit").click()
    return profile, page.get_by_role("dialog", name="Edit Staff iPads")


def test_an_edit_on_the_profile_page_renames_its_heading_and_breadcrumbs(signed_in_page, server_id):
    """Edit on a profile's page: the new name (and a new default) shows in the heading and the breadcrumbs,
    not only in Settings, without a reload."""
    page = signed_in_page
    _, dialog = _edit_staff_ipads(page, server_id)
    dialog.get_by_label("Profile name").fill("Teacher iPads")
    dialog.get_by_label("Default profile for new devices of this server").check()
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#profile-settings")).to_contain_text("Teacher iPads")
    expect(page.get_by_role("heading", level=1)).to_have_text("Teacher iPads")
    expect(page.get_by_role("navigation", name="Breadcrumb")).to_contain_text("Enrollment Profiles › Teacher iPads")
    expect(page.get_by_role("navigation", name="Breadcrumb")).not_to_contain_text("Staff iPads")
    expect(page.locator("#profile-title")).to_contain_text("not applied until configured")
    expect(page).to_have_title(re.compile("^Teacher iPads"))


def test_an_error_answer_to_a_pop_up_is_said_in_the_pop_up(signed_in_page, server_id):
    """The profile deleted in another tab, then Save in its Edit pop-up: the only word of it was a toast behind the
    modal dialog, dimmed and never read out."""
    from portal.extensions import db
    from portal.models import EnrollmentProfile

    page = signed_in_page
    profile, dialog = _edit_staff_ipads(page, server_id)
    dialog.get_by_label("Department").fill("Field service")
    db.session.delete(db.session.get(EnrollmentProfile, profile.id))  # another admin, another tab
    db.session.commit()
    dialog.get_by_role("button", name="Save").click()
    alert = dialog.get_by_role("alert")
    expect(alert).to_contain_text("This enrollment profile no longer exists: it was deleted, perhaps in another tab")
    expect(dialog.get_by_label("Department")).to_have_value("Field service")  # what was typed stays
    expect(dialog.get_by_role("button", name="Save")).to_be_disabled()  # nothing left to save it to
    expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    expect(page.locator("#toasts .toast")).to_have_count(0)


def test_create_profile_from_the_global_list_shows_the_defaults_of_the_server_chosen(signed_in_page, server_id, htmx,
                                                                                     apple, run_jobs):
    from tests.servers_helpers import Identity, add_simulated_server
    from tests.test_profiles import create

    add_simulated_server(htmx, apple, 0, identity=Identity("lyon"), name="Lyon", apple_server="Lyon MDM")
    assert create(htmx, server_id, name="Staff", is_default="y").status_code == 204
    page = signed_in_page
    page.goto("/profiles")
    page.get_by_role("toolbar", name="Enrollment profiles").get_by_role("link", name="Create Profile").click()
    dialog = page.get_by_role("dialog", name="Add an enrollment profile")
    dialog.get_by_label("Profile name").fill("Kiosks")
    dialog.get_by_label("Managed server").select_option(label="Paris")
    note = dialog.locator("#current-defaults")
    expect(note).to_contain_text("Default profiles of Paris now: “Staff”")
    dialog.get_by_label("Managed server").select_option(label="Lyon")
    expect(note).to_contain_text("Lyon has no default profile now")
    expect(dialog.get_by_label("Profile name")).to_have_value("Kiosks")  # nothing typed is lost
