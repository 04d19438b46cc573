"""The base layout, navigation, empty states and error pages."""
import re
from datetime import datetime, timedelta, timezone

import pytest

from portal.templating import HTMX_SRI, HTMX_VERSION


def test_navigation_mirrors_the_product_tree(admin_client):
    html = admin_client.get("/servers").get_data(as_text=True)
    for label in ("Device Assignment", "Managed Devices", "Enrollment Profiles",
                  "MDM Server Configurations", "Configuration", "Apple", "Activity log"):
        assert label in html
    assert '<dialog id="modal"' in html and 'id="toasts"' in html


def test_htmx_is_pinned_with_sri_and_has_a_vendored_fallback(app, admin_client):
    html = admin_client.get("/servers").get_data(as_text=True)
    assert f"htmx.org@{HTMX_VERSION}" in html and f'integrity="{HTMX_SRI}"' in html
    fallback = re.search(r"src=\"(/static/vendor/htmx-[\d.]+\.min\.js)\"", html).group(1)
    vendored = admin_client.get(fallback)
    assert vendored.status_code == 200
    import base64
    import hashlib

    digest = base64.b64encode(hashlib.sha384(vendored.data).digest()).decode()
    assert HTMX_SRI == f"sha384-{digest}"  # the CDN file and the vendored copy are the same bytes


def test_csrf_token_is_sent_by_htmx_as_a_header(admin_client):
    html = admin_client.get("/servers").get_data(as_text=True)
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


def test_404_is_a_page_in_the_layout(admin_client):
    response = admin_client.get("/no-such-page")
    assert response.status_code == 404
    assert b"Page not found" in response.data and b"Device Assignment" in response.data


def test_htmx_errors_are_fragments(htmx):
    response = htmx.get("/no-such-page")
    assert response.status_code == 404
    assert b"<html" not in response.data and b"Page not found" in response.data


def test_500_rolls_back_and_shows_a_friendly_page(app, admin_client):
    from portal.extensions import db
    from portal.models import Setting

    def boom():
        db.session.add(Setting(key="half-done", value="x"))
        db.session.flush()
        raise RuntimeError("kaboom")

    app.view_functions["activity.index"] = boom
    response = admin_client.get("/activity/")
    assert response.status_code == 500
    assert b"Something went wrong" in response.data and b"kaboom" not in response.data
    assert db.session.get(Setting, "half-done") is None


def test_activity_log_lists_newest_first(app, admin_client):
    from datetime import datetime, timedelta, timezone

    from portal.extensions import db
    from portal.models import ActivityEntry

    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(3):
        db.session.add(ActivityEntry(actor="alice", action="test.thing", summary=f"entry {i}",
                                     created_at=base + timedelta(minutes=i)))
    db.session.commit()
    html = admin_client.get("/activity/").get_data(as_text=True)
    assert html.index("entry 2") < html.index("entry 1") < html.index("entry 0")
    past_the_end = admin_client.get("/activity/?page=99999").get_data(as_text=True)
    assert "Nothing on page 99999" in past_the_end and "No activity yet" not in past_the_end
    assert 'href="/activity/?page=1"' in past_the_end


def test_activity_log_filters_links_and_csv(app, admin_client, monkeypatch):
    """Who, level, kind of object, one object and words filter the log from the URL; an object that
    still exists is a link; the filtered log downloads as CSV (formulas defused)."""
    import csv
    import io
    from datetime import datetime, timedelta, timezone

    from portal import vault
    from portal.extensions import db
    from portal.models import ActivityEntry, ManagedServer

    db.session.execute(ActivityEntry.__table__.delete())
    server = ManagedServer(name="Paris", token_ciphertext=vault.encrypt("{}"), key_ciphertext=vault.encrypt("k"),
                           consumer_key="CK_P", token_expiry=datetime.now(timezone.utc) + timedelta(days=300))
    db.session.add(server)
    db.session.flush()
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = [("alice", "info", "managed_server", server.id, "Paris", "Renewed Paris"),
            ("system", "error", "managed_server", server.id, "Paris", "Synchronization of Paris failed: 100% busy"),
            ("bob", "warning", "enrollment_profile", 999, "Gone profile", "=HYPERLINK(\"x\") Edited"),
            ("system", "info", "managed_server", 12345, "Lyon", "Synchronized Lyon")]
    for i, (actor, level, kind, object_id, label, summary) in enumerate(rows):
        db.session.add(ActivityEntry(actor=actor, level=level, action="test.thing", object_type=kind,
                                     object_id=object_id, object_label=label, summary=summary,
                                     created_at=base + timedelta(minutes=i)))
    db.session.commit()

    def shown(url):
        html = admin_client.get(url).get_data(as_text=True)
        return [summary for *_, summary in rows if summary.replace('"', "&#34;") in html]

    assert len(shown("/activity/")) == 4
    assert shown("/activity/?actor=system") == [rows[1][5], rows[3][5]]
    assert shown("/activity/?level=error") == [rows[1][5]]
    assert shown("/activity/?kind=enrollment_profile") == [rows[2][5]]
    assert shown(f"/activity/?kind=managed_server&object={server.id}") == [rows[0][5], rows[1][5]]
    assert shown("/activity/?q=100%25+BUSY") == [rows[1][5]]  # any case; % is a character, not a wildcard
    assert shown("/activity/?q=_") == []
    assert len(shown("/activity/?level=nonsense&kind=nonsense&object=abc")) == 4  # unknown values: ignored
    nothing = admin_client.get("/activity/?actor=nobody").get_data(as_text=True)
    assert "No entry matches the filters" in nothing and "No activity yet" not in nothing

    html = admin_client.get("/activity/").get_data(as_text=True)
    assert f'<a href="/servers/{server.id}">Paris</a>' in html  # exists: a link
    assert "<a href=\"/profiles/999\">" not in html and "Gone profile" in html  # deleted: plain text
    assert f'href="/activity/?kind=managed_server&amp;object={server.id}"' in html

    response = admin_client.get("/activity/activity.csv?actor=system")
    assert response.status_code == 200 and "activity-filtered-" in response.headers["Content-Disposition"]
    lines = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert lines[0][:3] == ["time_utc", "who", "action"] and [line[7] for line in lines[1:]] == [
        "Synchronized Lyon", "Synchronization of Paris failed: 100% busy"]
    everything = list(csv.reader(io.StringIO(admin_client.get("/activity/activity.csv").get_data(as_text=True))))
    assert len(everything) == 5 and everything[2][7] == "'=HYPERLINK(\"x\") Edited"
    from portal.activity import routes

    monkeypatch.setattr(routes, "CSV_CHUNK", 3)  # read in chunks: each entry once, in order
    assert list(csv.reader(io.StringIO(admin_client.get("/activity/activity.csv").get_data(as_text=True)))) == everything


def test_activity_log_empty_state(admin_client, app):
    from portal.extensions import db
    from portal.models import ActivityEntry

    db.session.execute(ActivityEntry.__table__.delete())
    db.session.commit()
    assert b"No activity yet" in admin_client.get("/activity/").data


def test_migrations_match_the_models(app):
    """`flask db upgrade` gives exactly the tables and columns the models declare."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from portal.extensions import db

    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), db.metadata)
    assert diff == []


def test_a_nul_character_in_a_form_is_refused_next_to_the_field(admin_client):
    """Once a bare 400 page for the whole form; now the field says it (tests/test_control_characters.py)."""
    response = admin_client.post("/configurations/new", data={"name": "bad\x00name", "url": "https://mdm.example.com"})
    assert response.status_code == 422 and b"U+0000" in response.data
    assert b'value="https://mdm.example.com"' in response.data  # what was typed is kept


def test_the_migration_clears_queued_states_stored_by_earlier_versions(tmp_path, redis_url):
    """Devices now show "queued" from their waiting task; a stored 'queued' (earlier versions wrote
    one at request time) would be shown but never found by the filters, so the migration clears it."""
    from flask_migrate import upgrade
    from sqlalchemy import text

    from portal import create_app
    from portal.extensions import db
    from tests.conftest import _test_config

    app = create_app(_test_config(tmp_path, f"sqlite:///{tmp_path / 'old.db'}", redis_url))
    with app.app_context():
        upgrade(revision="c3d4e5f6a7b8")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO managed_server (id, name, token_ciphertext, key_ciphertext, consumer_key, "
                              "token_expiry, token_status, fetch_generation, fetch_complete, created_at, updated_at) "
                              "VALUES (1, 'Paris', 'x', 'k', 'CK', '2027-01-01', 'valid', 0, 0, '2026-01-01', "
                              "'2026-01-01')"))
            conn.execute(text("INSERT INTO device (server_id, serial_number, assignment_state, fetch_generation, "
                              "first_seen_at, updated_at) VALUES (1, 'Q1', 'queued', 1, '2026-01-01', '2026-01-01'), "
                              "(1, 'F1', 'failed', 1, '2026-01-01', '2026-01-01')"))
        upgrade()
        with db.engine.connect() as conn:
            states = dict(conn.execute(text("SELECT serial_number, assignment_state FROM device")).all())
            count = conn.execute(text("SELECT device_count FROM managed_server WHERE id = 1")).scalar_one()
        db.engine.dispose()
    assert states == {"Q1": None, "F1": "failed"}
    assert count == 2  # the device counts the lists read are filled from the devices already stored


@pytest.mark.parametrize("delta, words", [
    (timedelta(hours=24) - timedelta(seconds=10), "in 1 day"),   # Apple's 24 hours after FAILED, just drawn
    (timedelta(seconds=50), "in 1 minute"),                       # "Sent again in 1 min"
    (timedelta(seconds=10), "in less than a minute"),
    (timedelta(minutes=59, seconds=40), "in 1 hour"),
    (timedelta(hours=23, minutes=20), "in 23 hours"),
    (timedelta(days=365, minutes=-2), "in 365 days"),              # a one-year token issued two minutes ago
    (timedelta(days=6, hours=23), "in 7 days"),                     # the next full synchronization
    (timedelta(days=1, hours=11), "in 1 day"),
    (timedelta(minutes=-59, seconds=-50), "59 minutes ago"),      # the past is never rounded up
    (timedelta(seconds=-5), "just now"),
])
def test_relative_times_read_like_the_waits_beside_them(delta, words):
    from portal.templating import relative_time

    now = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
    assert relative_time(now + delta, now) == words


@pytest.mark.parametrize("delta, words", [
    (timedelta(seconds=20), "in less than a minute"),
    (timedelta(minutes=5), "in 5 minutes"),
    (timedelta(0), "due now"),
    (timedelta(seconds=-40), "due now"),  # the periodic job sends it within the minute: it was "just now"
])
def test_a_retry_time_past_reads_due_not_as_if_it_was_sent(delta, words):
    from portal.templating import next_try

    now = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
    assert next_try(now + delta, now) == words


def test_favicon_is_linked_and_served_without_sign_in(client, admin_client):
    html = admin_client.get("/servers").get_data(as_text=True)
    icon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html).group(1)
    assert admin_client.get(icon).status_code == 200
    admin_client.post("/logout")
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert response.data.startswith(b"<svg")
    assert b'rel="icon"' in client.get("/login").data



def test_each_entry_module_imports_on_its_own():
    # An RQ worker, a shell or a script may import a job module before the app exists; a circular
    # import between portal.apple_link and the servers blueprint once made that fail.
    import subprocess
    import sys

    modules = ["jobs.sync", "jobs.assignments", "jobs.servers", "jobs.profiles", "jobs.maintenance",
               "portal.apple_link", "portal.depsim.app"]
    runs = {m: subprocess.Popen([sys.executable, "-c", f"import {m}"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True) for m in modules}  # side by side: fresh interpreters
    failed = {m: run.communicate(timeout=120)[1][-1500:] for m, run in runs.items() if run.wait(timeout=120)}
    assert not failed, failed


def test_signed_in_answers_are_not_stored_by_any_cache_but_static_files_are_cacheable(client, admin_client):
    """After Sign out, Back must not show a signed-in page again from the browser's cache."""
    for url in ("/servers", "/activity/", "/devices", "/activity/activity.csv"):
        response = admin_client.get(url)
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store", url
    htmx_fragment = admin_client.get("/servers", headers={"HX-Request": "true"})
    assert htmx_fragment.headers["Cache-Control"] == "no-store"
    static = admin_client.get("/static/css/portal.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")
    admin_client.post("/logout")
    login = client.get("/login")
    assert "no-store" not in login.headers.get("Cache-Control", "")  # nothing private on it


def test_activity_log_links_an_add_devices_request_to_its_results(app, admin_client):
    """An Add Devices / Remove Devices entry's object is its profile; "request #N" in it leads to the request's page
    (every device's answer), and a request that no longer exists stays plain text."""
    from portal import vault
    from portal.extensions import db
    from portal.models import ActivityEntry, AssignmentBatch, ManagedServer

    db.session.execute(ActivityEntry.__table__.delete())
    server = ManagedServer(name="Paris", token_ciphertext=vault.encrypt("{}"), key_ciphertext=vault.encrypt("k"),
                           consumer_key="CK_P", token_expiry=datetime.now(timezone.utc) + timedelta(days=300))
    db.session.add(server)
    db.session.flush()
    batch = AssignmentBatch(server_id=server.id, action="assign", actor="alice")
    db.session.add(batch)
    db.session.flush()
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i, (summary, batch_id) in enumerate([
            ("Add Devices: 3 devices to “Staff” requested (manual)", batch.id),
            (f"Add Devices “Staff”, request #{batch.id}: 1 assigned, 2 failed (retried in 24 h)", batch.id),
            ("Add Devices “Staff”, request #999: 3 assigned", 999)]):
        db.session.add(ActivityEntry(actor="alice", level="info", action="assignment.assign_finished",
                                     object_type="managed_server", object_id=server.id, object_label="Paris",
                                     summary=summary, details={"batch_id": batch_id},
                                     created_at=base + timedelta(minutes=i)))
    db.session.commit()

    html = admin_client.get("/activity/").get_data(as_text=True)
    link = f'<a href="/assignments/{batch.id}">request #{batch.id}</a>'
    assert f"Add Devices “Staff”, {link}: 1 assigned, 2 failed (retried in 24 h)" in html
    assert f"Add Devices: 3 devices to “Staff” requested (manual) ({link})" in html
    assert "Add Devices “Staff”, request #999: 3 assigned" in html and 'href="/assignments/999"' not in html


def test_htmx_can_come_from_the_shipped_copy_alone_on_a_network_without_the_cdn(app, admin_client):
    """HTMX_FROM_CDN=0: behind a firewall that drops the CDN's requests silently, every page waited for them."""
    app.config["HTMX_FROM_CDN"] = False
    html = admin_client.get("/servers").get_data(as_text=True)
    assert "cdn.jsdelivr.net" not in html and "integrity=" not in html
    assert re.search(r'<script src="/static/vendor/htmx-[\d.]+\.min\.js"></script>', html)
