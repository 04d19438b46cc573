"""The activity log's filter form as an admin uses it after following an entry's "Only this object" link: the one
object it narrows to belongs to the kind of object chosen, and goes when another kind is chosen; the pages of a
server, a configuration and a profile lead to all of their entries."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from sqlalchemy import select

from portal.extensions import db
from portal.models import ActivityEntry, EnrollmentProfile, ServerConfiguration
from tests.servers_helpers import add_simulated_server


def _entries(rows) -> None:
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i, (kind, object_id, label, summary) in enumerate(rows):
        db.session.add(ActivityEntry(actor="admin", level="info", action="test.thing", object_type=kind,
                                     object_id=object_id, object_label=label, summary=summary,
                                     created_at=base + timedelta(minutes=i)))
    db.session.commit()


def _form_submission(html: str, **changed) -> str:
    """The query string the filter form sends: its hidden fields and selects as the page set them, some changed."""
    form = re.search(r'<form class="filters.*?</form>', html, re.S).group(0)
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form))
    for name, options in re.findall(r'<select id="[^"]+" name="(\w+)">(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected', options) or re.search(r'<option value="([^"]*)"', options)
        fields[name] = chosen.group(1)
    fields.update(changed)
    return "&".join(f"{k}={v}" for k, v in fields.items() if k != "csrf_token")


def test_choosing_another_object_kind_shows_all_of_it_not_the_same_number_of_another_table(admin_client):
    """Server #1's entries, then Object: Enrollment profiles, Apply: it showed profile #1's entries only, under
    "Only the entries of …", since the form carried the server's number along as a bare id."""
    _entries([("managed_server", 1, "Paris", "Synchronized Paris"),
              ("managed_server", 2, "Lyon", "Synchronized Lyon"),
              ("enrollment_profile", 1, "Sales", "Edited Sales"),
              ("enrollment_profile", 2, "Staff", "Edited Staff")])
    one_server = admin_client.get("/activity/?kind=managed_server&object=1").get_data(as_text=True)
    assert "Synchronized Paris" in one_server and "Synchronized Lyon" not in one_server

    same_kind = admin_client.get("/activity/?" + _form_submission(one_server, level="info")).get_data(as_text=True)
    assert "Synchronized Paris" in same_kind and "Synchronized Lyon" not in same_kind  # still the one server

    url = "/activity/?" + _form_submission(one_server, kind="enrollment_profile")
    profiles = admin_client.get(url).get_data(as_text=True)
    assert "Edited Sales" in profiles and "Edited Staff" in profiles, url
    assert "<p class=\"muted\">Only the entries of" not in profiles and "Synchronized Paris" not in profiles


def test_a_servers_activity_card_leads_to_all_of_its_entries_in_the_log(htmx, apple, run_jobs):
    """The card shows the latest 20 entries and stopped there: nothing led to the older ones."""
    paris = add_simulated_server(htmx, apple, 1, run_jobs=run_jobs)
    html = htmx.get(f"/servers/{paris.id}").get_data(as_text=True)
    link = f'<a href="/activity/?kind=managed_server&amp;object={paris.id}">All activity of Paris</a>'
    assert link in html
    assert "Added managed server Paris" in htmx.get(f"/activity/?kind=managed_server&object={paris.id}").get_data(as_text=True)


def test_the_log_filters_by_action_named_in_words_with_the_code_in_the_url(admin_client):
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i, (action, summary) in enumerate([("server.added", "Added Paris"), ("server.renewed", "Renewed Paris"),
                                           ("server.added", "Added Lyon")]):
        db.session.add(ActivityEntry(actor="admin", level="info", action=action, object_type="managed_server",
                                     object_id=i + 1, summary=summary, created_at=base + timedelta(minutes=i)))
    db.session.commit()
    page = admin_client.get("/activity/?action=server.added").get_data(as_text=True)
    assert "Added Paris" in page and "Added Lyon" in page and "Renewed Paris" not in page
    assert '<option value="server.added" selected>Add Server</option>' in page
    assert '<option value="server.renewed" >Renew a server</option>' in page
    assert "Clear filters" in page
    csv = admin_client.get("/activity/activity.csv?action=server.renewed").get_data(as_text=True)
    assert "Renewed Paris" in csv and "Added" not in csv and ",server.renewed," in csv  # the code, for machines
    everything = admin_client.get("/activity/?action=server.lost").get_data(as_text=True)  # no such code: no filter
    assert "Added Paris" in everything and "Renewed Paris" in everything


def test_the_object_filter_offers_only_kinds_the_log_records(admin_client):
    """"Devices" was offered and always found nothing: no entry is recorded for one device."""
    page = admin_client.get("/activity/").get_data(as_text=True)
    kinds = re.search(r'<select id="a-kind" name="kind">(.*?)</select>', page, re.S).group(1)
    assert ">Devices<" not in kinds and ">Managed servers<" in kinds


def test_configuration_and_profile_pages_show_their_activity_and_lead_to_all_of_it(htmx, apple, run_jobs):
    """A configuration's card had no link to the log, and a profile's page no Activity card at all."""
    paris = add_simulated_server(htmx, apple, 1, run_jobs=run_jobs)
    assert htmx.post("/configurations/new", data={"name": "Main MDM", "url": "https://mdm.example.com/enroll"}
                     ).status_code == 204
    configuration = db.session.execute(select(ServerConfiguration)).scalar_one()
    html = htmx.get(f"/configurations/{configuration.id}").get_data(as_text=True)
    assert f'href="/activity/?kind=server_configuration&amp;object={configuration.id}">All activity of Main MDM</a>' in html

    assert htmx.post(f"/servers/{paris.id}/profiles/new", data={"name": "Staff", "is_supervised": "y"}
                     ).status_code == 204, "Create Profile"
    profile = db.session.execute(select(EnrollmentProfile)).scalar_one()
    html = htmx.get(f"/profiles/{profile.id}").get_data(as_text=True)
    card = html[html.index('id="activity-card"'):]
    assert "Create Profile" in card and "Staff" in card
    assert f'href="/activity/?kind=enrollment_profile&amp;object={profile.id}">All activity of Staff</a>' in card
    # The card comes along when the page's settings refresh after an edit (hx-select-oob).
    assert "#activity-card" in html[html.index('id="profile-settings"'):html.index('id="profile-settings"') + 400]


def test_one_objects_filter_is_said_even_when_it_has_no_entry(admin_client):
    """/activity/?kind=managed_server&object=999 (a deleted server, a bookmark) said "No entry matches the filters" and
    nothing of the one object it was narrowed to."""
    _entries([("managed_server", 1, "Paris", "Synchronized Paris")])
    html = admin_client.get("/activity/?kind=managed_server&object=999").get_data(as_text=True)
    assert "Only the entries of one object (managed servers #999)" in html
    assert '<a href="/activity/?kind=managed_server">all entries of managed servers</a>' in html
    named = admin_client.get("/activity/?kind=managed_server&object=1").get_data(as_text=True)
    assert "Only the entries of Paris" in named


def test_every_entry_shows_its_exact_time_and_the_pager_leads_to_the_last_page(admin_client):
    """The exact time was only a tooltip (out of a keyboard's reach), and a long log had no way to its oldest page."""
    _entries([("managed_server", 1, "Paris", f"Entry {n}") for n in range(120)])
    html = admin_client.get("/activity/").get_data(as_text=True)
    assert '<time class="muted small" datetime="2026-01-01T01:59:00Z">2026-01-01 01:59:00</time>' in html
    assert '<a href="/activity/?page=3">Last page »</a>' in html
    assert "Last page »" not in admin_client.get("/activity/?page=3").get_data(as_text=True)
