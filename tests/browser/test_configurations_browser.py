"""MDM Server Configurations in a real browser: Create Configuration in the pop-up with a certificate
file (a bad URL keeps the pop-up open with the message next to it), then Assign Server Configuration
on a server's page and see its card show the URL and certificate."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.shots import shot
from tests.test_configurations import _server_row, make_cert, pem

pytestmark = pytest.mark.browser


def test_create_a_configuration_then_assign_it_to_a_server(signed_in_page: Page, app, tmp_path):
    page = signed_in_page
    server = _server_row("Paris")
    certificate = tmp_path / "mdm-ca.pem"
    certificate.write_bytes(pem(make_cert("MDM Test CA")[0]))

    page.goto("/configurations")
    page.get_by_role("toolbar", name="MDM server configurations").get_by_role("link", name="Create Configuration").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Name").fill("Production MDM")
    dialog.get_by_label("URL").fill("http://mdm.example.com/enroll")  # not https
    dialog.locator("input[type=file]").set_input_files(str(certificate))
    dialog.get_by_role("button", name="Create Configuration").click()
    field = dialog.locator(".field").filter(has=page.get_by_label("URL"))
    expect(field.get_by_role("alert")).to_contain_text("https")
    expect(dialog.get_by_label("Name")).to_have_value("Production MDM")  # nothing typed is lost

    dialog.get_by_label("URL").fill("https://mdm.example.com/enroll")
    dialog.locator("input[type=file]").set_input_files(str(certificate))  # files are chosen again after an error
    dialog.get_by_role("button", name="Create Configuration").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("link", name="Production MDM")).to_be_visible()

    page.goto(f"/servers/{server.id}")
    page.get_by_role("link", name="Assign Server Configuration").first.click()
    chooser = page.get_by_role("dialog")
    expect(chooser).to_contain_text("Server configuration for Paris")
    chooser.get_by_label("Production MDM").check()
    chooser.get_by_role("button", name="OK").click()
    expect(chooser).to_be_hidden()
    expect(page.get_by_text("https://mdm.example.com/enroll").first).to_be_visible()
    expect(page.get_by_text("CN=MDM Test CA").first).to_be_visible()
    expect(page.get_by_role("link", name="Unassign Server Configuration").first).to_be_visible()


def test_the_pem_download_link_of_a_certificate_stays_on_one_line(signed_in_page: Page, configured_paris):
    """On the server page at desktop width the last column was squeezed by the fingerprint: "PEM" broke as "PE/M"."""
    page = signed_in_page
    page.set_viewport_size({"width": 1280, "height": 900})
    configuration_id = _assigned_configuration(configured_paris)
    for url in (f"/servers/{configured_paris}", f"/configurations/{configuration_id}"):
        page.goto(url)
        links = page.locator("table.certificates").get_by_role("link", name="(PEM)")
        expect(links.first).to_be_visible()
        shot(page, f"certificates{url.replace('/', '-')}.png")
        for i in range(links.count()):
            lines = links.nth(i).evaluate("a => a.getClientRects().length")
            assert lines == 1, f"the PEM link {i} of {url} is broken over {lines} lines"


def _assigned_configuration(server_id: int) -> int:
    from portal.extensions import db
    from portal.models import ManagedServer

    return db.session.get(ManagedServer, server_id).configuration_id


def test_the_enrollment_profiles_tab_of_a_server_without_configuration_leads_to_assigning_one(signed_in_page: Page):
    """The tab's warning ("Configure profile fails until you use Assign Server Configuration") opens that pop-up;
    once OK is pressed the tab reloads without the warning, and the admin is still on the tab."""
    from tests.test_profiles import make_configuration

    page = signed_in_page
    server = _server_row("Paris")
    make_configuration(name="Production MDM")
    page.goto(f"/servers/{server.id}/profiles")
    warning = page.locator(".alert-warning").filter(has_text="has no MDM server configuration yet")
    warning.get_by_role("link", name="Assign Server Configuration").click()
    chooser = page.get_by_role("dialog", name="Select the Server Configuration")
    chooser.get_by_label("Production MDM").check()
    chooser.get_by_role("button", name="OK").click()
    expect(chooser).to_be_hidden()
    expect(page.get_by_role("status")).to_contain_text("Server configuration Production MDM assigned to Paris")
    expect(page.get_by_text("has no MDM server configuration yet")).to_have_count(0)
    assert page.url.endswith(f"/servers/{server.id}/profiles")


def test_create_configuration_from_assign_server_configuration_assigns_it_and_stays_on_the_server(
        signed_in_page: Page, app):
    """With no configuration yet, Assign Server Configuration offers Create Configuration: it opens in the same
    pop-up with "Assign to Paris" ticked, and saving leads back to the server's page with the configuration assigned."""
    page = signed_in_page
    server = _server_row("Paris")
    page.goto(f"/servers/{server.id}")
    page.get_by_role("link", name="Assign Server Configuration").first.click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("There is no MDM server configuration yet")
    dialog.get_by_role("link", name="Create Configuration").click()
    expect(dialog.get_by_label("Assign to Paris")).to_be_checked()
    dialog.get_by_label("Name").fill("Production MDM")
    dialog.get_by_label("URL").fill("https://mdm.example.com/enroll")
    dialog.get_by_role("button", name="Create Configuration").click()
    expect(dialog).to_be_hidden()
    expect(page).to_have_url(f"{page.url.split('/servers/')[0]}/servers/{server.id}")
    expect(page.get_by_text("Server configuration Production MDM assigned to Paris.")).to_be_visible()
    expect(page.get_by_role("link", name="Unassign Server Configuration").first).to_be_visible()
