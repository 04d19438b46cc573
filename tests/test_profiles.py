"""Enrollment profiles through the web UI against the Apple simulator: Create Profile with good and bad
fields, unique names, the default flag, Configure profile without and with a server configuration,
Apple refusing a profile, token and transient failures, Changed after an edit, re-configure with
re-assignment, delete, the global list and its server filter, plain (no-JavaScript) forms."""
from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select, update

from portal.apple.keys import generate_key_pair
from portal.extensions import db
from portal.htmx import STOP_POLLING
from portal.models import (ActivityEntry, AssignmentBatch, Device, EnrollmentProfile, ManagedServer,
                           ServerConfiguration, TrustedCertificate)
from portal.models.profile import DEVICE_FAMILIES
from tests.conftest import CSRF_INPUT
from tests.servers_helpers import Identity, TakenJob, field_error, post_add_server, server_named

NO_CONFIGURATION = "This managed server has no MDM server configuration: assign one and configure again."
MDM_URL = "https://mdm.acme.example/mdm/enroll"


# ----- helpers ---------------------------------------------------------------------------------

@pytest.fixture
def identity():
    return Identity()


def add_server(client, apple, identity, run_jobs, name="Paris", devices=5) -> int:
    """Add a managed server through Add Server, with its account and first synchronization."""
    token = apple.state.issue_token(f"{name} MDM", identity.certificate_pem, devices=devices)
    assert post_add_server(client, name, token, identity.key_pem).status_code in (204, 302)
    assert run_jobs() == []
    return server_named(name).id


@pytest.fixture
def server_id(htmx, apple, identity, run_jobs) -> int:
    return add_server(htmx, apple, identity, run_jobs)


def make_configuration(name="Main MDM", url=MDM_URL, certificates=2) -> tuple[int, list[bytes]]:
    """A server configuration written with the models (A's pages are tested in test_configurations)."""
    configuration = ServerConfiguration(name=name, url=url)
    ders = []
    for position in range(certificates):
        pem = generate_key_pair(common_name=f"{name} CA {position}", days=365).certificate_pem
        cert = x509.load_pem_x509_certificate(pem)
        der = cert.public_bytes(Encoding.DER)
        ders.append(der)
        configuration.certificates.append(TrustedCertificate(
            position=position, der=der, subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
            serial=format(cert.serial_number, "X"), not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc, sha256=hashlib.sha256(der).hexdigest()))
    db.session.add(configuration)
    db.session.commit()
    return configuration.id, ders


def assign_configuration(client, server_id: int, configuration_id: int) -> None:
    """Assign Server Configuration through helper A's pop-up (Select the Server Configuration)."""
    response = client.post(f"/servers/{server_id}/configuration", data={"configuration": configuration_id})
    assert response.status_code == 204, response.get_data(as_text=True)


def profile_form(**overrides) -> dict:
    """Create Profile form data; a None value leaves the field out (an unticked checkbox)."""
    data = {"name": "Staff iPads", "organization": "Acme Corp", "department": "IT", "support_email": "help@acme.example",
            "support_phone": "+1 555 0100", "is_mdm_removable": "y", "is_supervised": "y", "allow_pairing": "y",
            "language": "", "region": "", "configuration_web_url": ""}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def create(client, server_id: int, **overrides):
    return client.post(f"/servers/{server_id}/profiles/new", data=profile_form(**overrides))


def create_with_a_configuration(client, server_id: int, **overrides) -> None:
    """A server configuration assigned to the server, then Create Profile: ready for Configure profile."""
    configuration_id, _ = make_configuration()
    assign_configuration(client, server_id, configuration_id)
    assert create(client, server_id, **overrides).status_code == 204


def profile_named(name: str, server_id: int | None = None) -> EnrollmentProfile | None:
    db.session.expire_all()
    query = select(EnrollmentProfile).where(EnrollmentProfile.name == name)
    if server_id is not None:
        query = query.where(EnrollmentProfile.server_id == server_id)
    return db.session.execute(query).scalar_one_or_none()


def configure(client, profile_id: int, **data):
    response = client.post(f"/profiles/{profile_id}/configure", data=data)
    assert response.status_code == 204, response.get_data(as_text=True)
    return response


def profile_count() -> int:
    return len(db.session.execute(select(EnrollmentProfile.id)).all())


# ----- Create Profile --------------------------------------------------------------------------

def test_empty_states_say_what_to_do(htmx, apple, identity, run_jobs):
    page = htmx.get("/profiles").get_data(as_text=True)
    assert "No managed servers yet" in page and "Add Server" in page
    server_id = add_server(htmx, apple, identity, run_jobs)
    tab = htmx.get(f"/servers/{server_id}/profiles").get_data(as_text=True)
    assert "No enrollment profiles on Paris yet" in tab and "Create Profile" in tab and "Configure profile" in tab
    assert 'aria-current="page">Enrollment Profiles' in tab  # the server's tab is the active one
    assert "Assign Server Configuration" in tab  # no configuration yet: the page says so up front
    assert "No enrollment profiles yet" in htmx.get("/profiles").get_data(as_text=True)


def test_create_profile_pop_up_then_both_lists_show_it_not_configured(htmx, server_id):
    popup = htmx.get(f"/servers/{server_id}/profiles/new")
    html = popup.get_data(as_text=True)
    assert popup.status_code == 200 and '<dialog' not in html and 'id="modal-title">Add an enrollment profile' in html
    for label in ("Profile name", "Organization", "Department", "Support Email Address", "Support Phone Number",
                  "Is MDM Removable", "Default profile for new devices of this server"):
        assert label in html
    assert "<details" in html and "<summary>Advanced</summary>" in html and "Apple Account (Apple ID)" in html
    assert "Apple&#39;s enrollment profile has no organization field" in html

    response = create(htmx, server_id, skip_setup_items=["AppleID", "Siri"], language="EN", region="fr")
    assert response.status_code == 204, response.get_data(as_text=True)
    assert "profilesChanged" in response.headers["HX-Trigger"] and "closeModal" in response.headers["HX-Trigger"]
    profile = profile_named("Staff iPads")
    assert profile.status == "not_configured" and profile.apple_profile_uuid is None
    assert (profile.language, profile.region) == ("en", "FR")  # typed case is normalised to Apple's
    assert profile.skip_setup_items == ["AppleID", "Siri"] and profile.organization == "Acme Corp"
    for url in (f"/servers/{server_id}/profiles", "/profiles"):
        page = htmx.get(url).get_data(as_text=True)
        assert "Staff iPads" in page and "Not configured" in page and "Configure profile" in page
    assert ">Paris</a></td>" in htmx.get("/profiles").get_data(as_text=True)  # the server column
    assert db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "profile.created")).scalar_one()


LONG = "x" * 126


@pytest.mark.parametrize("overrides,field,words", [
    ({"name": ""}, "name", "Give the profile a name"),
    ({"name": "   "}, "name", "Give the profile a name"),
    ({"name": LONG}, "name", "The name can be at most 125 characters (Apple&#39;s limit)."),
    ({"name": "Staff\u202eiPads\u202c"}, "name", "Remove the invisible control characters from the name."),
    ({"organization": "o" * 256}, "organization", "The organization can be at most 255 characters."),
    ({"department": LONG}, "department", "The department can be at most 125 characters"),
    ({"support_phone": "1" * 51}, "support_phone", "The support phone number can be at most 50 characters"),
    ({"support_phone": "call me maybe"}, "support_phone", "Enter a phone number: digits, spaces and + ( ) - . /"),
    ({"support_phone": "555 0100 or ask Bob"}, "support_phone", "Enter a phone number"),
    ({"support_phone": "ext. 12"}, "support_phone", "Enter a phone number"),
    ({"support_email": "a" * 240 + "@example.com"}, "support_email",
     "The support email address can be at most 250 characters"),
    ({"support_email": "help desk at acme"}, "support_email", "email address like"),
    ({"support_email": "help@acme"}, "support_email", "email address like"),
    ({"is_mdm_removable": None, "is_supervised": None}, "is_mdm_removable",
     "Only a supervised device can have an MDM profile that cannot be removed"),
    ({"language": "english"}, "language", "ISO 639"),
    ({"language": "xq"}, "language", "ISO 639"),
    ({"language": "e1"}, "language", "ISO 639"),
    ({"region": "USA"}, "region", "ISO 3166"),
    ({"region": "XX"}, "region", "ISO 3166"),
    ({"configuration_web_url": "http://sso.acme.example/enroll"}, "configuration_web_url", "https://"),
    ({"configuration_web_url": "https://sso.acme.example/en roll"}, "configuration_web_url", "spaces"),
    ({"configuration_web_url": "https://sso.acme.example:99999/"}, "configuration_web_url", "port"),
    ({"configuration_web_url": "https://x:0"}, "configuration_web_url", "Port 0 is not a port"),
    ({"configuration_web_url": "https://sso.acme.example/{x}"}, "configuration_web_url", "as typed: { }"),
    ({"configuration_web_url": "https://sso.acme.example/" + "a" * 2000}, "configuration_web_url", "2000"),
    # Apple's limits counted as the simulator counts them: bytes of UTF-8, the URL percent-encoded (README)
    ({"name": "é" * 63}, "name", "at most 125 characters (Apple&#39;s limit). Apple counts accented letters as 2"),
    ({"department": "日" * 42}, "department", "at most 125 characters (Apple&#39;s limit). Apple counts"),
    ({"support_phone": "\u0661" * 26}, "support_phone", "at most 50 characters (Apple&#39;s limit). Apple counts"),
    ({"support_email": "é" * 120 + "@example.com"}, "support_email", "this counts 252"),
    ({"configuration_web_url": "https://sso.acme.example/" + "é" * 330}, "configuration_web_url",
     "At most 2000 characters. Apple counts the URL percent-encoded"),
])
def test_bad_fields_are_refused_next_to_the_field_and_nothing_is_saved(htmx, server_id, overrides, field, words):
    response = create(htmx, server_id, **{"name": "Kept name", "department": "Kept department", **overrides})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert words in field_error(html, field)
    assert profile_count() == 0
    kept = {**{"name": "Kept name", "department": "Kept department"}, **overrides}
    for name in ("name", "department"):  # what the admin typed is still there
        if kept[name].strip():
            assert f'value="{kept[name]}"' in html
    if field in ("language", "region", "configuration_web_url"):
        assert "<details open>" in html  # the error is inside Advanced: it is shown open
    if field == "is_mdm_removable":  # the remedy is Supervised, inside Advanced: shown open, the box in view
        assert "<details open>" in html


@pytest.mark.parametrize("phone", ["+1 555 0100", "+44 (0)20 7946 0958", "01.23.45.67.89", "555-0100 ext. 12",
                                   "555 0100 x12", "+49 30/1234567 Extension 4", "555 0100 #7"])
def test_phone_numbers_as_people_write_them_are_accepted(htmx, server_id, phone):
    assert create(htmx, server_id, support_phone=phone).status_code == 204
    assert profile_named("Staff iPads").support_phone == phone


def test_the_configuration_web_url_help_says_what_apple_expects(htmx, server_id):
    """Apple loads the page in a web view; the enrollment profile must come from that page's host (reference §3.6),
    which Apple does not check when the profile is defined: the help says so, and another host than the MDM URL's
    is accepted."""
    html = htmx.get(f"/servers/{server_id}/profiles/new").get_data(as_text=True)
    assert "must come from the page&#39;s own host; Apple does not check this" in html
    assert "The enrollment profile must come from the same host." not in html
    assert create(htmx, server_id, configuration_web_url="https://sso.elsewhere.example/enroll").status_code == 204


def test_unknown_setup_pane_is_refused(htmx, server_id):
    response = create(htmx, server_id, skip_setup_items=["AppleID", "NotAPane"])
    assert response.status_code == 422 and "Apple does not know the Setup Assistant pane NotAPane" in response.get_data(as_text=True)
    assert profile_count() == 0


def test_limits_themselves_are_accepted(htmx, server_id):
    response = create(htmx, server_id, name="n" * 125, department="d" * 125, support_phone="1" * 50,
                      support_email="a" * 237 + "@example.com", language="deu", region="DE",
                      is_mdm_removable=None, configuration_web_url="https://sso.acme.example:8443/enroll")
    assert response.status_code == 204, response.get_data(as_text=True)
    profile = profile_named("n" * 125)
    assert profile.is_mdm_removable is False and profile.is_supervised is True and profile.language == "deu"


def test_non_ascii_fields_at_apples_limits_are_accepted_and_configured(htmx, apple, server_id, run_jobs):
    # At the maximum as Apple counts (bytes of UTF-8; the URL percent-encoded), through the client to the
    # strict simulator: Apple accepts every field as typed.
    fields = {"name": "é" * 62 + "x", "department": "日" * 41 + "xx", "support_phone": "\u0661" * 25,
              "support_email": "é" * 119 + "@example.com",
              "configuration_web_url": "https://sso.acme.example/" + "é" * 329 + "x" * 1}
    profile = _configured(htmx, apple, server_id, run_jobs, **fields)
    stored = apple.state.profiles("Paris MDM")[-1]
    assert stored["profile_uuid"] == profile.apple_profile_uuid
    assert {key: stored[key] for key in ("profile_name", "department", "support_phone_number",
                                         "support_email_address", "configuration_web_url")} == {
        "profile_name": fields["name"], "department": fields["department"],
        "support_phone_number": fields["support_phone"], "support_email_address": fields["support_email"],
        "configuration_web_url": fields["configuration_web_url"]}


def test_profile_name_is_unique_per_server(htmx, apple, identity, run_jobs, server_id):
    assert create(htmx, server_id).status_code == 204
    response = create(htmx, server_id, name="staff ipads", department="Sales")
    assert response.status_code == 422
    assert "already has a profile named" in field_error(response.get_data(as_text=True), "name")
    assert 'value="Sales"' in response.get_data(as_text=True)
    other = add_server(htmx, apple, Identity("lyon"), run_jobs, name="Lyon")
    assert create(htmx, other).status_code == 204  # the same name on another server is fine
    assert profile_count() == 2
    # Renaming onto a sibling's name is refused the same way.
    assert create(htmx, server_id, name="Teachers").status_code == 204
    teachers = profile_named("Teachers")
    response = htmx.post(f"/profiles/{teachers.id}/edit", data=profile_form(name="Staff iPads"))
    assert response.status_code == 422 and "already has a profile named" in response.get_data(as_text=True)
    assert create(htmx, server_id, name="Élèves").status_code == 204
    response = create(htmx, server_id, name="ÉLÈVES")  # case ignored in every script, on SQLite too
    assert response.status_code == 422 and "already has a profile named" in response.get_data(as_text=True)


def test_profile_names_are_normalised_and_clash_whatever_their_spacing(htmx, server_id):
    assert create(htmx, server_id, name="  Profile \t A\u00a0").status_code == 204
    assert profile_named("Profile A") is not None  # stored as it is shown
    for typed in ("Profile  A", "profile\u2003a", "PROFILE\nA"):
        response = create(htmx, server_id, name=typed, department="Sales")
        assert response.status_code == 422
        # The message names the profile that holds the name, as stored, not what was typed.
        assert ("Paris already has a profile named “Profile A”"
                in field_error(response.get_data(as_text=True), "name")), typed
        assert 'value="Sales"' in response.get_data(as_text=True)
    # A row saved before names were normalised still clashes, and is named as stored.
    db.session.execute(update(EnrollmentProfile).values(name="Profile  A "))
    db.session.commit()
    response = create(htmx, server_id, name="Profile A")
    assert response.status_code == 422
    assert "already has a profile named “Profile  A ”" in field_error(response.get_data(as_text=True), "name")
    assert create(htmx, server_id, name="Teachers").status_code == 204
    response = htmx.post(f"/profiles/{profile_named('Teachers').id}/edit", data=profile_form(name=" profile a"))
    assert response.status_code == 422 and "named “Profile  A ”" in field_error(response.get_data(as_text=True), "name")
    assert profile_count() == 2


def test_at_most_one_default_profile_per_server(htmx, server_id):
    assert create(htmx, server_id, name="First", is_default="y").status_code == 204
    assert create(htmx, server_id, name="Second", is_default="y").status_code == 204
    assert profile_named("First").is_default is False and profile_named("Second").is_default is True
    first = profile_named("First")
    assert htmx.post(f"/profiles/{first.id}/edit", data=profile_form(name="First", is_default="y")).status_code == 204
    assert profile_named("First").is_default is True and profile_named("Second").is_default is False
    assert profile_named("First").status == "not_configured"  # a portal-side flag: nothing for Apple


def test_a_default_for_every_family_says_when_the_others_take_every_family(htmx, server_id):
    """With a default for each family, the one for every family only gets devices Apple reports without a family."""
    assert create(htmx, server_id, name="Everything", is_default="y").status_code == 204
    assert create(htmx, server_id, name="Apple", is_default="y",
                  default_families=list(DEVICE_FAMILIES)[:-1]).status_code == 204
    everything = profile_named("Everything")
    row = htmx.get(f"/servers/{server_id}/profiles").get_data(as_text=True).split(">Everything<")[1].split("</tr>")[0]
    assert "Other families" in row and "without a family" not in row
    assert create(htmx, server_id, name="Last", is_default="y",
                  default_families=list(DEVICE_FAMILIES)[-1:]).status_code == 204
    page = " ".join(htmx.get(f"/profiles/{everything.id}").get_data(as_text=True).split())
    assert "Default for new devices Apple reports without a device family (other defaults take every family)" in page
    row = htmx.get(f"/servers/{server_id}/profiles").get_data(as_text=True).split(">Everything<")[1].split("</tr>")[0]
    assert "Devices without a family" in row and "Other families" not in row


def _defaults(server_id: int) -> dict[str, list[str] | None]:
    db.session.expire_all()
    return {p.name: p.default_families for p in db.session.execute(select(EnrollmentProfile).where(
        EnrollmentProfile.server_id == server_id, EnrollmentProfile.is_default.is_(True))).scalars()}


def test_default_profiles_per_device_family_take_their_families_from_the_others(htmx, server_id):
    """One default per device family and server: iPhones to one profile, Macs to another, the rest to a third."""
    assert create(htmx, server_id, name="Everything", is_default="y").status_code == 204
    assert create(htmx, server_id, name="Phones", is_default="y", default_families=["iPhone", "iPad"]).status_code == 204
    assert create(htmx, server_id, name="Macs", is_default="y", default_families=["Mac"]).status_code == 204
    # A profile for some families leaves the one for every family in place: it takes the rest.
    assert _defaults(server_id) == {"Everything": None, "Phones": ["iPhone", "iPad"], "Macs": ["Mac"]}
    # …and says so: its page and the list do not claim every new device for it.
    everything = profile_named("Everything")
    page = " ".join(htmx.get(f"/profiles/{everything.id}").get_data(as_text=True).split())
    assert "Default for new devices other than iPhone, iPad and Mac</span>" in page
    row = htmx.get(f"/servers/{server_id}/profiles").get_data(as_text=True).split(">Everything<")[1].split("</tr>")[0]
    assert "Other families" in row

    tablets = profile_named("Macs")
    assert htmx.post(f"/profiles/{tablets.id}/edit", data=profile_form(
        name="Macs", is_default="y", default_families=["Mac", "iPad"])).status_code == 204
    assert _defaults(server_id) == {"Everything": None, "Phones": ["iPhone"], "Macs": ["iPad", "Mac"]}
    assert htmx.post(f"/profiles/{profile_named('Phones').id}/edit", data=profile_form(
        name="Phones", is_default="y", default_families=["iPhone", "iPad", "Mac"])).status_code == 204
    assert _defaults(server_id) == {"Everything": None, "Phones": ["iPhone", "iPad", "Mac"]}  # Macs lost them all
    assert profile_named("Macs").default_families is None
    entries = [e.summary for e in db.session.execute(select(ActivityEntry).order_by(ActivityEntry.id)).scalars()]
    assert ("Enrollment profile Phones is no longer the default profile for new iPad devices (it stays the default "
            "for iPhone): Macs is the default now") in entries
    assert "Enrollment profile Macs is no longer the default profile for new iPad and Mac devices: Phones is the " \
           "default now" in entries

    # A second profile for every family replaces the first one; the ones for some families keep theirs.
    assert create(htmx, server_id, name="Fallback", is_default="y").status_code == 204
    assert _defaults(server_id) == {"Phones": ["iPhone", "iPad", "Mac"], "Fallback": None}

    page = htmx.get(f"/profiles/{profile_named('Phones').id}").get_data(as_text=True)
    assert "Default for new iPhone, iPad and Mac devices" in page
    listed = htmx.get(f"/servers/{server_id}/profiles").get_data(as_text=True)
    assert "iPhone, iPad, Mac" in listed


def _default_warnings(client, server_id: int) -> list[str]:
    """The server page's warnings about default profiles new devices do not get, spacing collapsed."""
    page = client.get(f"/servers/{server_id}").get_data(as_text=True)
    return [" ".join(w.split()) for w in re.findall(r'<p class="alert alert-warning default-warning">(.*?)</p>',
                                                     page, re.S)]


def test_the_server_page_warns_of_default_profiles_apple_does_not_have(htmx, apple, server_id, run_jobs):
    """The sync skips a default profile not configured at Apple (assignment.default_skipped): the server page says
    so beforehand, linking the profile, until Configure profile gives Apple the profile as set up here."""
    assert _default_warnings(htmx, server_id) == []
    assert create(htmx, server_id, name="Staff iPads").status_code == 204
    assert _default_warnings(htmx, server_id) == []  # not a default: nothing to say
    assert create(htmx, server_id, name="Phones", is_default="y", default_families=["iPhone", "iPad"]).status_code == 204
    assert create(htmx, server_id, name="Everything", is_default="y").status_code == 204
    phones, everything = profile_named("Phones"), profile_named("Everything")

    def link(profile):
        return f'Default profile <a href="/profiles/{profile.id}">“{profile.name}”</a>'

    not_at_apple = "is not configured at Apple: new devices will not get it until you use Configure profile."
    assert _default_warnings(htmx, server_id) == [f"{link(phones)} (iPhone, iPad) {not_at_apple}",
                                                  f"{link(everything)} (other families) {not_at_apple}"]

    assert 'class="default-poll"' not in htmx.get(f"/servers/{server_id}").get_data(as_text=True)
    configure(htmx, phones.id)  # no server configuration yet: it will fail
    assert _default_warnings(htmx, server_id)[0] == (f"{link(phones)} (iPhone, iPad) is being configured at Apple: "
                                                     "devices new to Paris before it is will not get it.")
    # The page reads its warnings again until Apple answered (it used to say "being configured" until a reload).
    poll = re.search(r'<div hidden hx-get="([^"]+)" hx-trigger="every 3s"\s+hx-select="#server-summary"',
                     htmx.get(f"/servers/{server_id}").get_data(as_text=True))
    assert poll and poll.group(1) == f"/servers/{server_id}"
    assert run_jobs() == []
    assert 'class="default-poll"' not in htmx.get(f"/servers/{server_id}").get_data(as_text=True)  # polling stops
    assert _default_warnings(htmx, server_id)[0] == (
        f"{link(phones)} (iPhone, iPad) could not be configured at Apple: new devices will not get it until you fix "
        "the cause on its page and use Configure profile again.")

    configuration_id, _ = make_configuration()
    assign_configuration(htmx, server_id, configuration_id)
    configure(htmx, phones.id)
    assert run_jobs() == []
    assert profile_named("Phones").status == "configured"
    assert _default_warnings(htmx, server_id) == [f"{link(everything)} (other families) {not_at_apple}"]

    assert htmx.post(f"/profiles/{phones.id}/edit", data=profile_form(
        name="Phones", is_default="y", default_families=["iPhone", "iPad"], department="Field")).status_code == 204
    assert _default_warnings(htmx, server_id) == [
        f"{link(phones)} (iPhone, iPad) changed since it was configured: Apple still has the previous version, and "
        "new devices will not get it until you use Configure profile again.",
        f"{link(everything)} (other families) {not_at_apple}"]

    configure(htmx, phones.id)
    configure(htmx, everything.id)
    assert run_jobs() == []
    assert _default_warnings(htmx, server_id) == []  # Apple has both as set up here


def test_device_families_without_default_are_refused_next_to_the_field(htmx, server_id):
    response = create(htmx, server_id, name="Phones", default_families=["iPhone"])
    assert response.status_code == 422
    assert "Tick “Default profile for new devices of this server” too" in response.get_data(as_text=True)
    response = create(htmx, server_id, name="Phones", is_default="y", default_families=["Watch"])
    assert response.status_code == 422 and "Apple has no device family Watch" in response.get_data(as_text=True)
    assert profile_count() == 0


def test_global_create_chooses_the_only_managed_server_already(htmx, server_id):
    html = htmx.get("/profiles/new").get_data(as_text=True)
    assert f'<option selected value="{server_id}">' in html


def test_global_create_asks_for_the_server_and_the_list_filters_by_server(htmx, apple, identity, run_jobs, server_id):
    lyon = add_server(htmx, apple, Identity("lyon"), run_jobs, name="Lyon")
    html = htmx.get("/profiles/new").get_data(as_text=True)
    assert "Managed server" in html and "Choose a managed server" in html
    response = htmx.post("/profiles/new", data=profile_form(server_id="0"))
    assert response.status_code == 422 and "Choose the managed server." in field_error(response.get_data(as_text=True), "server_id")
    assert htmx.post("/profiles/new", data=profile_form(server_id=str(lyon), name="Lyon kiosks")).status_code == 204
    assert create(htmx, server_id, name="Paris staff").status_code == 204
    assert profile_named("Lyon kiosks").server_id == lyon
    everything = htmx.get("/profiles").get_data(as_text=True)
    assert "Lyon kiosks" in everything and "Paris staff" in everything
    filtered = htmx.get(f"/profiles?server={lyon}", headers={"HX-Target": "profile-table"})
    assert "HX-Request" in filtered.headers["Vary"] and "<html" not in filtered.get_data(as_text=True)
    assert "Lyon kiosks" in filtered.get_data(as_text=True) and "Paris staff" not in filtered.get_data(as_text=True)
    preselected = htmx.get(f"/profiles/new?server={lyon}").get_data(as_text=True)
    assert f'<option selected value="{lyon}">Lyon</option>' in preselected


def test_the_list_filters_by_status_so_the_profiles_to_configure_again_are_found(htmx, apple, identity, run_jobs,
                                                                                   server_id):
    """After an edit of a server configuration, the profiles left Changed were only found by reading every row."""
    lyon = add_server(htmx, apple, Identity("lyon"), run_jobs, name="Lyon")
    assert create(htmx, server_id, name="Paris staff").status_code == 204
    assert htmx.post("/profiles/new", data=profile_form(server_id=str(lyon), name="Lyon kiosks")).status_code == 204
    kiosks = profile_named("Lyon kiosks")
    kiosks.status = "changed"
    db.session.commit()

    page = htmx.get("/profiles?status=changed").get_data(as_text=True)
    assert "Lyon kiosks" in page and "Paris staff" not in page
    assert '<option value="changed" selected>Changed — configure again</option>' in page
    assert "Paris staff" in htmx.get("/profiles?status=not_configured").get_data(as_text=True)
    none = htmx.get(f"/profiles?server={server_id}&status=changed", headers={"HX-Target": "profile-table"})
    assert "No profile matches" in none.get_data(as_text=True) and "Lyon kiosks" not in none.get_data(as_text=True)
    everything = htmx.get("/profiles?status=lost").get_data(as_text=True)  # not a status: no filter
    assert "Lyon kiosks" in everything and "Paris staff" in everything


def test_a_servers_profiles_tab_filters_by_status_too(htmx, apple, run_jobs, server_id):
    for name in ("Paris staff", "Paris kiosks"):
        assert create(htmx, server_id, name=name).status_code == 204
    kiosks = profile_named("Paris kiosks")
    kiosks.status = "changed"
    db.session.commit()

    page = htmx.get(f"/servers/{server_id}/profiles?status=changed").get_data(as_text=True)
    assert "Paris kiosks" in page and "Paris staff" not in page
    assert f'action="/servers/{server_id}/profiles"' in page
    assert '<option value="changed" selected>Changed — configure again</option>' in page
    none = htmx.get(f"/servers/{server_id}/profiles?status=configured", headers={"HX-Target": "profile-table"})
    text = none.get_data(as_text=True)
    assert "<html" not in text and "No profile matches" in text and "Paris staff" not in text and "kiosks" not in text
    assert f'href="/servers/{server_id}/profiles">Show every status' in text
    everything = htmx.get(f"/servers/{server_id}/profiles").get_data(as_text=True)
    assert "Paris kiosks" in everything and "Paris staff" in everything


def test_create_profile_opens_bmcs_add_an_enrollment_profile_pop_up(htmx, apple, identity, run_jobs):
    """BMC's Create Profile opens "Add an enrollment profile", as Add Server opens "Add a Server"."""
    server_id = add_server(htmx, apple, identity, run_jobs)
    for url in (f"/servers/{server_id}/profiles/new", "/profiles/new"):
        html = htmx.get(url).get_data(as_text=True)
        assert '<h2 id="modal-title">Add an enrollment profile</h2>' in html, url
        assert '<button type="submit" class="primary">Create Profile</button>' in html, url


def test_plain_pages_work_without_javascript(admin_client, apple, identity, run_jobs):
    server_id = add_server(admin_client, apple, identity, run_jobs)
    page = admin_client.get(f"/servers/{server_id}/profiles/new").get_data(as_text=True)
    assert "<html" in page and "Create Profile" in page
    response = admin_client.post(f"/servers/{server_id}/profiles/new", data=profile_form())
    profile = profile_named("Staff iPads")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/profiles/{profile.id}")
    detail = admin_client.get(f"/profiles/{profile.id}").get_data(as_text=True)
    assert "Staff iPads" in detail and "Not configured" in detail and "Acme Corp" in detail
    bad = admin_client.post(f"/servers/{server_id}/profiles/new", data=profile_form(name=""))
    assert bad.status_code == 422 and "<html" in bad.get_data(as_text=True)
    assert admin_client.get(f"/profiles/{profile.id}/configure").status_code == 200
    assert admin_client.post(f"/profiles/{profile.id}/configure").status_code == 302


def test_missing_ids_are_404_pages(htmx, server_id):
    for url in ("/profiles/999", "/profiles/999/edit", "/profiles/999/configure", "/profiles/999/row",
                "/servers/999/profiles", "/servers/999/profiles/new"):
        assert htmx.get(url).status_code == 404, url
    assert htmx.post("/profiles/999/delete").status_code == 404


# ----- Configure profile -----------------------------------------------------------------------

def test_configure_without_configuration_fails_then_succeeds_after_assigning_one(htmx, apple, server_id, run_jobs):
    assert create(htmx, server_id, skip_setup_items=["AppleID", "Siri"], language="fr", region="FR",
                  support_phone="", configuration_web_url="https://sso.acme.example/enroll").status_code == 204
    profile = profile_named("Staff iPads")
    confirm = htmx.get(f"/profiles/{profile.id}/configure").get_data(as_text=True)
    assert "has no MDM server configuration" in confirm and "Assign Server Configuration" in confirm

    configure(htmx, profile.id)
    assert profile_named("Staff iPads").status == "configuring"
    row = htmx.get(f"/profiles/{profile.id}/row")
    assert row.status_code == 200 and 'hx-trigger="every 2s"' in row.get_data(as_text=True)
    assert "Configuring" in row.get_data(as_text=True)
    assert run_jobs() == []
    profile = profile_named("Staff iPads")
    assert profile.status == "failed" and profile.status_detail == NO_CONFIGURATION
    row = htmx.get(f"/profiles/{profile.id}/row")
    assert row.status_code == STOP_POLLING and "every 2s" not in row.get_data(as_text=True)
    assert NO_CONFIGURATION in row.get_data(as_text=True) and "Failed" in row.get_data(as_text=True)
    assert apple.state.profiles("Paris MDM") == []  # nothing reached Apple
    failure = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "profile.configure_failed")).scalar_one()
    assert failure.level == "error" and NO_CONFIGURATION in failure.summary

    configuration_id, ders = make_configuration()
    assign_configuration(htmx, server_id, configuration_id)
    configure(htmx, profile.id)
    assert run_jobs() == []
    profile = profile_named("Staff iPads")
    assert profile.status == "configured" and profile.status_detail is None
    assert profile.configured_url == MDM_URL and profile.configured_at is not None
    stored = apple.state.profiles("Paris MDM")
    assert len(stored) == 1 and stored[0]["profile_uuid"] == profile.apple_profile_uuid
    body = stored[0]
    assert body["url"] == MDM_URL
    assert body["anchor_certs"] == [base64.b64encode(d).decode() for d in ders]
    assert body["profile_name"] == "Staff iPads" and body["department"] == "IT"
    assert body["support_email_address"] == "help@acme.example" and "support_phone_number" not in body  # empty: omitted
    assert body["skip_setup_items"] == ["AppleID", "Siri"] and (body["language"], body["region"]) == ("fr", "FR")
    assert body["configuration_web_url"] == "https://sso.acme.example/enroll"
    assert body["is_mdm_removable"] is True and body["is_supervised"] is True and body["allow_pairing"] is True
    for flag in ("is_mandatory", "await_device_configured", "auto_advance_setup", "is_multi_user"):
        assert body[flag] is False  # booleans are always sent
    assert "organization" not in body and "Acme Corp" not in str(body)  # portal-side only


def test_the_server_page_stops_polling_for_a_default_profile_whose_worker_was_killed(htmx, apple, server_id):
    """The server page polled every 3 s, saying "is being configured", for as long as nobody opened the profile."""
    create_with_a_configuration(htmx, server_id)
    profile = profile_named("Staff iPads")
    profile.is_default = True
    db.session.commit()
    configure(htmx, profile.id)
    taken = TakenJob(profile_named("Staff iPads").job_id)  # taken by a worker...
    taken.alive()
    assert 'class="default-poll"' in htmx.get(f"/servers/{server_id}").get_data(as_text=True)

    taken.killed()  # ...killed outright: its key has expired
    page = htmx.get(f"/servers/{server_id}").get_data(as_text=True)
    assert 'class="default-poll"' not in page
    assert "could not be configured at Apple" in " ".join(page.split())
    assert profile_named("Staff iPads").status == "failed"


def test_a_profile_left_configuring_by_a_killed_worker_can_be_configured_again(htmx, apple, server_id, run_jobs):
    create_with_a_configuration(htmx, server_id)
    profile = profile_named("Staff iPads")
    configure(htmx, profile.id)
    taken = TakenJob(profile_named("Staff iPads").job_id)  # taken by a worker...
    taken.alive()
    assert htmx.get(f"/profiles/{profile.id}/row").status_code == 200  # Configuring, polled

    taken.killed()  # ...killed outright: its key has expired
    row = htmx.get(f"/profiles/{profile.id}/row")
    assert row.status_code == STOP_POLLING and "stopped before Apple answered" in row.get_data(as_text=True)
    assert profile_named("Staff iPads").status == "failed"
    configure(htmx, profile.id)
    assert run_jobs() == []
    assert profile_named("Staff iPads").status == "configured"
    page = htmx.get(f"/profiles/{profile.id}").get_data(as_text=True)
    assert profile.apple_profile_uuid in page and MDM_URL in page and "Configured" in page
    assert htmx.get(f"/profiles/{profile.id}/status").status_code == STOP_POLLING


def _configured(htmx, apple, server_id, run_jobs, **overrides) -> EnrollmentProfile:
    create_with_a_configuration(htmx, server_id, **overrides)
    configure(htmx, profile_named(overrides.get("name", "Staff iPads")).id)
    assert run_jobs() == []
    profile = profile_named(overrides.get("name", "Staff iPads"))
    assert profile.status == "configured"
    return profile


def test_editing_a_configured_profile_marks_it_changed_and_reconfigure_gives_a_new_uuid(htmx, apple, server_id, run_jobs):
    profile = _configured(htmx, apple, server_id, run_jobs)
    first_uuid = profile.apple_profile_uuid
    # A portal-side change (organization) leaves Apple's copy current.
    assert htmx.post(f"/profiles/{profile.id}/edit", data=profile_form(organization="Acme Europe")).status_code == 204
    assert profile_named("Staff iPads").status == "configured"
    response = htmx.post(f"/profiles/{profile.id}/edit", data=profile_form(department="Field service"))
    assert response.status_code == 204 and "Apple still has the previous version" in response.headers["HX-Trigger"]
    profile = profile_named("Staff iPads")
    assert profile.status == "changed" and profile.apple_profile_uuid == first_uuid
    assert "Changed — configure again" in htmx.get(f"/servers/{server_id}/profiles").get_data(as_text=True)
    assert "Changed because its settings were edited after it was last configured" in \
        htmx.get(f"/profiles/{profile.id}").get_data(as_text=True)

    configure(htmx, profile.id)
    assert run_jobs() == []
    profile = profile_named("Staff iPads")
    assert profile.status == "configured" and profile.apple_profile_uuid != first_uuid
    stored = apple.state.profiles("Paris MDM")
    assert [p["profile_uuid"] for p in stored] == [first_uuid, profile.apple_profile_uuid]
    assert stored[1]["department"] == "Field service"


def test_a_certificate_edit_marks_the_profile_changed_until_it_is_configured_again(htmx, apple, server_id, run_jobs):
    profile = _configured(htmx, apple, server_id, run_jobs)
    configuration = db.session.get(ManagedServer, server_id).configuration
    assert profile.configured_certificates == ",".join(sorted(c.sha256 for c in configuration.certificates))
    renewed = generate_key_pair(common_name="Renewed CA", days=365).certificate_pem
    response = htmx.post(f"/configurations/{configuration.id}/edit", content_type="multipart/form-data", data={
        "name": configuration.name, "url": configuration.url, "certificates_pem": renewed.decode()})
    assert response.status_code == 204, response.get_data(as_text=True)
    profile = profile_named("Staff iPads")
    assert profile.status == "changed" and "trusted certificates" in profile.status_detail

    configure(htmx, profile.id)
    assert run_jobs() == []
    profile = profile_named("Staff iPads")
    assert (profile.status, profile.status_detail) == ("configured", None)
    assert len(apple.state.profiles("Paris MDM")[-1]["anchor_certs"]) == 3


def test_a_configuration_edited_while_apple_answers_leaves_the_profile_changed(htmx, apple, server_id, run_jobs,
                                                                               monkeypatch):
    """The edit's own check saw the profile Configuring; the job compares again once it has stored
    Apple's answer, so the profile does not claim to be current."""
    from portal.apple.client import DEPClient

    profile = _configured(htmx, apple, server_id, run_jobs)
    configuration_id = db.session.get(ManagedServer, server_id).configuration_id
    real = DEPClient.define_profile

    def edit_meanwhile(client, body):
        answer = real(client, body)
        with db.engine.begin() as other:  # another admin, another connection, committed first
            other.execute(update(ServerConfiguration).where(ServerConfiguration.id == configuration_id)
                          .values(url="https://moved.example.com/mdm"))
        return answer

    monkeypatch.setattr(DEPClient, "define_profile", edit_meanwhile)
    configure(htmx, profile.id)
    assert run_jobs() == []
    profile = profile_named("Staff iPads")
    assert profile.status == "changed" and profile.configured_url == MDM_URL
    assert "now says https://moved.example.com/mdm" in profile.status_detail


@pytest.mark.parametrize("case", ["url", "flags", "name"])
def test_apple_refusing_a_profile_shows_failed_and_the_message_next_to_the_field(htmx, apple, server_id, run_jobs, case):
    if case == "name":
        # A name of 125 characters but more bytes (the form counts bytes now), written past the form's own check.
        create_with_a_configuration(htmx, server_id)
        db.session.execute(update(EnrollmentProfile).values(name="é" * 125))
        db.session.commit()
        profile = db.session.execute(select(EnrollmentProfile)).scalar_one()
        configure(htmx, profile.id)
        assert run_jobs() == []
        db.session.expire_all()
        assert profile.status == "failed"
        edit = htmx.get(f"/profiles/{profile.id}/edit").get_data(as_text=True)
        assert ("The profile name must be 1 to 125 characters long (Apple may count a letter outside plain ASCII as "
                "2 to 4).") in field_error(edit, "name")
        return
    if case == "url":
        # A configuration URL Apple refuses (an out-of-range port). A's form refuses it too, so it is written
        # directly, like a configuration saved before that check existed.
        configuration_id, _ = make_configuration(url="https://mdm.acme.example:70000/enroll")
        assign_configuration(htmx, server_id, configuration_id)
        assert create(htmx, server_id).status_code == 204
    else:
        create_with_a_configuration(htmx, server_id)
        # Flags Apple refuses (non-removable without supervision), written past the form's own check.
        db.session.execute(update(EnrollmentProfile).values(is_mdm_removable=False, is_supervised=False))
        db.session.commit()
    profile = profile_named("Staff iPads")
    configure(htmx, profile.id)
    assert run_jobs() == []
    profile = profile_named("Staff iPads")
    assert profile.status == "failed" and profile.apple_profile_uuid is None
    assert profile.status_detail.startswith("Apple refused the profile:")
    failure = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "profile.configure_failed")).scalar_one()
    assert failure.details["code"] == ("CONFIG_URL_INVALID" if case == "url" else "FLAGS_INVALID")
    edit = htmx.get(f"/profiles/{profile.id}/edit").get_data(as_text=True)
    if case == "url":
        message = field_error(edit, "mdm_url")
        assert "MDM server URL is not valid" in message and "Main MDM" in message
    else:
        assert "only be made non-removable when the device is supervised" in field_error(edit, "is_mdm_removable")
        # Fixing it (tick Supervised) clears the failure: the profile can be configured again.
        assert htmx.post(f"/profiles/{profile.id}/edit", data=profile_form(is_mdm_removable=None)).status_code == 204
        assert profile_named("Staff iPads").status == "not_configured"
        configure(htmx, profile.id)
        assert run_jobs() == []
        assert profile_named("Staff iPads").status == "configured"


def test_revoked_token_fails_with_the_status_remedy(htmx, apple, server_id, run_jobs):
    create_with_a_configuration(htmx, server_id)
    apple.state.set_fault("Paris MDM", "token_revoked", True)
    profile = profile_named("Staff iPads")
    configure(htmx, profile.id)
    assert run_jobs() == []
    profile = profile_named("Staff iPads")
    assert profile.status == "failed" and "Token Revoked" in profile.status_detail
    assert "Renew the server with the newest token" in profile.status_detail
    db.session.expire_all()
    assert db.session.get(ManagedServer, server_id).apple_state == "token_rejected"  # note_apple_error kept it
    # Next time the portal knows before calling Apple, and says the same.
    apple.state.set_fault("Paris MDM", "token_revoked", False)
    popup = htmx.get(f"/profiles/{profile.id}/configure").get_data(as_text=True)
    assert "Paris's token status is Token Revoked: Apple no longer accepts" in popup
    configure(htmx, profile.id)
    assert run_jobs() == []
    detail = profile_named("Staff iPads").status_detail
    assert detail.startswith("Paris's token status is Token Revoked: ")
    assert "Renew the server with the newest token" in detail
    assert apple.state.profiles("Paris MDM") == []


def test_transient_apple_errors_fail_with_try_again(htmx, apple, server_id, run_jobs):
    create_with_a_configuration(htmx, server_id)
    apple.state.set_fault("Paris MDM", "server_error", {"count": 20, "status": 503})
    profile = profile_named("Staff iPads")
    configure(htmx, profile.id)
    assert run_jobs() == []
    profile = profile_named("Staff iPads")
    assert profile.status == "failed" and "try again" in profile.status_detail
    apple.state.clear_faults("Paris MDM")
    configure(htmx, profile.id)
    assert run_jobs() == []
    assert profile_named("Staff iPads").status == "configured"


def test_busy_profile_cannot_be_configured_or_edited_twice(htmx, apple, server_id, run_jobs):
    create_with_a_configuration(htmx, server_id)
    profile = profile_named("Staff iPads")
    configure(htmx, profile.id)
    job_id = profile_named("Staff iPads").job_id
    again = configure(htmx, profile.id)
    assert "already being configured" in again.headers["HX-Trigger"]
    assert profile_named("Staff iPads").job_id == job_id
    edit = htmx.get(f"/profiles/{profile.id}/edit")
    assert edit.status_code == 200 and "being configured at Apple right now" in edit.get_data(as_text=True)
    assert run_jobs() == []
    assert len(apple.state.profiles("Paris MDM")) == 1


def test_a_configure_whose_job_vanished_is_marked_failed(htmx, apple, server_id, run_jobs):
    assert create(htmx, server_id).status_code == 204
    profile = profile_named("Staff iPads")
    configure(htmx, profile.id)
    from portal.queue import get_redis

    get_redis().flushdb()  # the worker and its queue are gone
    row = htmx.get(f"/profiles/{profile.id}/row")
    assert row.status_code == STOP_POLLING and "configure again" in row.get_data(as_text=True).lower()
    assert profile_named("Staff iPads").status == "failed"


# ----- associated devices: re-configure, delete ------------------------------------------------

def _associate(server_id: int, profile_id: int, count: int) -> list[int]:
    """Associate devices with the profile as a past Add Devices would have left them."""
    ids = [d for (d,) in db.session.execute(select(Device.id).where(Device.server_id == server_id)
                                            .order_by(Device.id).limit(count)).all()]
    db.session.execute(update(Device).where(Device.id.in_(ids)).values(profile_id=profile_id, assignment_state="assigned"))
    db.session.commit()
    return ids


def test_reconfigure_warns_about_associated_devices_and_reassigns_them(htmx, apple, server_id, run_jobs):
    profile = _configured(htmx, apple, server_id, run_jobs)
    first_uuid = profile.apple_profile_uuid
    _associate(server_id, profile.id, 3)
    assert htmx.post(f"/profiles/{profile.id}/edit", data=profile_form(department="Retail")).status_code == 204
    confirm = htmx.get(f"/profiles/{profile.id}/configure").get_data(as_text=True)
    assert "3 devices</strong> already associated" in confirm and "Re-assign them now" in confirm
    assert "checked" in re.search(r'<input[^>]*name="reassign"[^>]*>', confirm).group(0)  # on by default
    assert first_uuid in confirm

    configure(htmx, profile.id, reassign="y")
    assert run_jobs() == []
    profile = profile_named("Staff iPads")
    assert profile.status == "configured" and profile.apple_profile_uuid != first_uuid
    batch = db.session.execute(select(AssignmentBatch).where(AssignmentBatch.origin == "reassign")).scalar_one()
    assert batch.profile_id == profile.id and batch.total == 3 and batch.actor == "alice"


def test_reconfigure_without_reassign_leaves_devices_alone(htmx, apple, server_id, run_jobs):
    profile = _configured(htmx, apple, server_id, run_jobs)
    _associate(server_id, profile.id, 2)
    configure(htmx, profile.id)  # the box unticked: no "reassign" in the form
    assert run_jobs() == []
    assert db.session.execute(select(AssignmentBatch)).first() is None


def test_delete_warns_about_devices_and_clears_their_association(htmx, apple, server_id, run_jobs):
    profile = _configured(htmx, apple, server_id, run_jobs)
    ids = _associate(server_id, profile.id, 2)
    assert "2</td>" in htmx.get(f"/servers/{server_id}/profiles").get_data(as_text=True)  # the device count
    confirm = htmx.get(f"/profiles/{profile.id}/delete").get_data(as_text=True)
    assert "2 devices</strong> are associated" in confirm and "keep Apple's profile" in confirm
    response = htmx.post(f"/profiles/{profile.id}/delete")
    assert response.status_code == 204 and "profilesChanged" in response.headers["HX-Trigger"]
    assert profile_named("Staff iPads") is None
    assert [d.profile_id for d in db.session.execute(select(Device).where(Device.id.in_(ids))).scalars()] == [None, None]
    deleted = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "profile.deleted")).scalar_one()
    assert deleted.level == "warning" and deleted.details["devices"] == 2


def test_delete_from_the_profile_page_goes_back_to_the_list(htmx, server_id):
    assert create(htmx, server_id).status_code == 204
    profile = profile_named("Staff iPads")
    confirm = htmx.get(f"/profiles/{profile.id}/delete").get_data(as_text=True)
    assert "Delete the enrollment profile" in confirm
    response = htmx.post(f"/profiles/{profile.id}/delete", headers={"HX-Current-URL": f"http://localhost/profiles/{profile.id}"})
    assert response.status_code == 204 and response.headers["HX-Redirect"].endswith(f"/servers/{server_id}/profiles")


def _words(response) -> str:
    import html

    return " ".join(html.unescape(response.get_data(as_text=True)).split())


def test_deleting_a_default_profile_names_its_role_and_what_new_devices_get(htmx, apple, server_id, run_jobs):
    profile = _configured(htmx, apple, server_id, run_jobs, is_default="y", default_families=["iPhone"])
    _associate(server_id, profile.id, 3)
    confirm = _words(htmx.get(f"/profiles/{profile.id}/delete"))
    assert ("<strong>Staff iPads</strong> is a default profile of Paris (<em>Default for new iPhone devices</em>). "
            "After deleting it, new iPhone devices get no profile automatically: use Add Devices for them, or make "
            "another profile the default.") in confirm
    assert "3 devices</strong> are associated" in confirm  # the devices are still said
    response = htmx.post(f"/profiles/{profile.id}/delete")
    assert response.status_code == 204 and profile_named("Staff iPads") is None
    assert "Profile Staff iPads deleted. From now on, new iPhone devices get no profile automatically" in \
        response.headers["HX-Trigger"]


def test_deleting_a_family_default_says_the_default_for_every_family_takes_them(htmx, server_id):
    assert create(htmx, server_id, name="Everything", is_default="y").status_code == 204
    assert create(htmx, server_id, name="Phones", is_default="y", default_families=["iPhone", "iPad"]).status_code == 204
    phones, everything = profile_named("Phones"), profile_named("Everything")
    confirm = _words(htmx.get(f"/profiles/{phones.id}/delete"))
    assert "(<em>Default for new iPhone and iPad devices</em>)" in confirm
    assert ("After deleting it, new iPhone and iPad devices get Everything instead, the server's default profile for "
            "every other device family (once it is configured: a default profile is not applied until then).") in confirm
    # The default for every family: the families another default names keep it.
    confirm = _words(htmx.get(f"/profiles/{everything.id}/delete"))
    assert "(<em>Default for new devices other than iPhone and iPad</em>)" in confirm
    assert ("After deleting it, new devices other than iPhone and iPad (iPhone and iPad keep their default profile) "
            "get no profile automatically") in confirm


def test_deleting_a_profile_that_is_no_default_says_nothing_of_defaults(htmx, server_id):
    assert create(htmx, server_id).status_code == 204
    confirm = _words(htmx.get(f"/profiles/{profile_named('Staff iPads').id}/delete"))
    assert "is a default profile" not in confirm and "get no profile automatically" not in confirm


def test_configure_profile_warns_of_an_expired_trusted_certificate(htmx, apple, server_id, run_jobs):
    from datetime import datetime, timedelta, timezone

    configuration_id, _ = make_configuration(certificates=2)
    assign_configuration(htmx, server_id, configuration_id)
    assert create(htmx, server_id).status_code == 204
    profile = profile_named("Staff iPads")
    page = htmx.get(f"/profiles/{profile.id}/configure").get_data(as_text=True)
    assert "Trusted certificates</dt><dd>2</dd>" in page and "is expired" not in page
    certificate = db.session.get(ServerConfiguration, configuration_id).certificates[1]
    certificate.not_after = datetime.now(timezone.utc) - timedelta(days=1)
    db.session.commit()
    page = " ".join(htmx.get(f"/profiles/{profile.id}/configure").get_data(as_text=True).split())
    assert ">Expired</span>" in page
    assert "A trusted certificate of “Main MDM” is expired: devices told to trust it may refuse" in page


def test_a_deleted_profile_id_is_never_given_to_a_new_one(admin_client, apple, identity, run_jobs):
    """SQLite gave a new row max(id) + 1: after the newest profile was deleted, the next one took its id,
    and a delete form left open on the old one deleted the new one. Now the stale form finds nothing."""
    server_id = add_server(admin_client, apple, identity, run_jobs)
    assert create(admin_client, server_id, name="X old").status_code == 302
    old_id = profile_named("X old").id
    stale_form = admin_client.get(f"/profiles/{old_id}/delete").get_data(as_text=True)
    stale_token = next(filter(None, CSRF_INPUT.search(stale_form).groups()))
    assert admin_client.post(f"/profiles/{old_id}/delete").status_code == 302  # deleted from another tab
    assert create(admin_client, server_id, name="Y new").status_code == 302
    assert profile_named("Y new").id > old_id
    assert admin_client.get(f"/profiles/{old_id}").status_code == 404  # a bookmark
    stale = admin_client.post(f"/profiles/{old_id}/delete", data={"csrf_token": stale_token}, csrf=False)
    assert stale.status_code == 404
    assert profile_named("Y new") is not None


def test_saving_an_edit_that_changes_nothing_records_nothing_and_keeps_the_status(htmx, apple, server_id, run_jobs):
    profile = _configured(htmx, apple, server_id, run_jobs, skip_setup_items=["Siri", "Location"])
    entries, updated_at = len(db.session.execute(select(ActivityEntry.id)).all()), profile.updated_at
    # The form as the pop-up shows it, sent back untouched (names spaced as typed, panes in another order).
    response = htmx.post(f"/profiles/{profile.id}/edit",
                         data=profile_form(name=" Staff  iPads ", skip_setup_items=["Location", "Siri"]))
    assert response.status_code == 204 and "No change to save" in response.headers["HX-Trigger"]
    saved = profile_named("Staff iPads")
    assert (saved.status, saved.updated_at) == ("configured", updated_at)
    assert len(db.session.execute(select(ActivityEntry.id)).all()) == entries
    # A real change still counts: logged, and Apple's copy out of date.
    response = htmx.post(f"/profiles/{profile.id}/edit",
                         data=profile_form(department="Field service", skip_setup_items=["Location", "Siri"]))
    assert "Apple still has the previous version" in response.headers["HX-Trigger"]
    assert profile_named("Staff iPads").status == "changed"
    assert len(db.session.execute(select(ActivityEntry.id)).all()) == entries + 1


def test_the_profile_page_says_what_the_organization_is_for_and_hides_it_when_empty(htmx, server_id):
    """"Organization — (portal only)" left an admin guessing: the page says it is not sent to Apple, and an
    empty one is not listed at all."""
    assert create(htmx, server_id).status_code == 204
    page = " ".join(htmx.get(f"/profiles/{profile_named('Staff iPads').id}").get_data(as_text=True).split())
    assert ("<dt>Organization</dt><dd>Acme Corp <span class=\"help\">A note kept in this portal, not sent to Apple: "
            "devices show the organization name registered in Apple Business Manager.</span></dd>") in page
    assert "(portal only)" not in page
    assert create(htmx, server_id, name="Kiosks", organization="").status_code == 204
    page = htmx.get(f"/profiles/{profile_named('Kiosks').id}").get_data(as_text=True)
    assert "<dt>Organization</dt>" not in page and "<dt>Department</dt>" in page


def test_the_profile_form_names_the_current_defaults_and_warns_before_editing_a_configured_default(
        htmx, apple, server_id, run_jobs):
    """Create Profile with Default ticked took the role from a configured profile without a word, and editing a
    configured default stopped new devices from getting it with no warning before saving."""
    form = htmx.get(f"/servers/{server_id}/profiles/new").get_data(as_text=True)
    assert "Paris has no default profile now: new devices get no profile until one is." in form
    create_with_a_configuration(htmx, server_id, name="Staff", is_default="y")
    staff = profile_named("Staff")
    form = " ".join(htmx.get(f"/servers/{server_id}/profiles/new").get_data(as_text=True).split())
    assert "Default profiles of Paris now: “Staff” (new devices, not applied until configured)." in form
    listed = htmx.get(f"/servers/{server_id}/profiles").get_data(as_text=True)
    assert 'Default</span> <span class="badge badge-warning">not applied until configured</span>' in listed
    assert 'id="edit-default-warning"' not in htmx.get(f"/profiles/{staff.id}/edit").get_data(as_text=True)

    configure(htmx, staff.id)
    assert run_jobs() == []
    edit = " ".join(htmx.get(f"/profiles/{staff.id}/edit").get_data(as_text=True).split())
    assert "“Staff” is a default profile of Paris (new devices). Saving a change of what Apple holds" in edit
    assert "Default profiles of Paris now" not in edit.split('id="current-defaults"')[0]  # itself not listed
    assert "“Staff” is the only default profile of Paris." in edit
    assert "not applied until configured" not in htmx.get(f"/servers/{server_id}/profiles").get_data(as_text=True)


def test_create_profile_from_the_global_list_names_the_chosen_servers_defaults(htmx, apple, identity, run_jobs,
                                                                              server_id):
    """Opened from Enrollment Profiles (not a server's tab), the pop-up said nothing of the server's defaults."""
    lyon = add_server(htmx, apple, Identity("lyon"), run_jobs, name="Lyon")
    assert create(htmx, server_id, name="Staff", is_default="y").status_code == 204
    form = " ".join(htmx.get(f"/profiles/new?server={server_id}").get_data(as_text=True).split())
    assert "Default profiles of Paris now: “Staff” (new devices, not applied until configured)." in form
    assert 'hx-include="#server_id" hx-trigger="change from:#server_id"' in form  # follows the server field
    none_chosen = htmx.get("/profiles/new").get_data(as_text=True)  # two servers: none chosen yet
    assert 'id="current-defaults"' in none_chosen and "default profile" not in none_chosen.split('id="current-defaults"')[1].split("</p>")[0]
    # What the server field's change asks for (its name is server_id):
    assert "Lyon has no default profile now" in htmx.get(f"/profiles/new?server_id={lyon}").get_data(as_text=True)
    refused = htmx.post("/profiles/new", data=profile_form(server_id=str(lyon), name=""))
    assert refused.status_code == 422 and "Lyon has no default profile now" in refused.get_data(as_text=True)


def test_taking_the_default_role_says_which_profile_lost_it(htmx, server_id):
    assert create(htmx, server_id, name="Staff", is_default="y").status_code == 204
    response = create(htmx, server_id, name="Phones", is_default="y", default_families=["iPhone"])
    assert "“Staff”" not in json.loads(response.headers["HX-Trigger"])["toast"]["message"]  # Staff keeps the rest
    response = create(htmx, server_id, name="Everything", is_default="y")
    message = json.loads(response.headers["HX-Trigger"])["toast"]["message"]
    assert message.startswith("Profile Everything created on Paris. “Staff” is no longer the default profile for new "
                              "devices. It is Not configured")
    phones = profile_named("Phones")
    response = htmx.post(f"/profiles/{phones.id}/edit", data=profile_form(name="Phones", is_default="y"))
    message = json.loads(response.headers["HX-Trigger"])["toast"]["message"]
    assert "“Everything” is no longer the default profile for new devices." in message
