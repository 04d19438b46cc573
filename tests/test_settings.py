"""Configuration › Apple through the page: the Server Synchronization Interval and the token expiry
warning keep to their ranges, say so once next to the field, and the scheduler never runs the
synchronization more often than the minimum, whatever was stored before."""
from __future__ import annotations

import pytest
from rq_scheduler import Scheduler

from jobs.schedule import PREFIX, periodic_jobs, reconcile_now
from portal.config import load_config
from portal.extensions import db
from portal.models.setting import get_setting, set_setting
from portal.queue import get_redis
from tests.servers_helpers import field_error

INTERVAL_MESSAGE = "Enter 0 (disabled) or a number of seconds from 300 to 2,592,000 (30 days)."
DAYS_MESSAGE = "Enter a number of days from 1 to 180."


def _save(client, sync_interval: str, warning_days: str = "30"):
    return client.post("/settings/apple", data={"sync_interval": sync_interval, "warning_days": warning_days})


def _stored() -> tuple[str, str]:
    db.session.expire_all()
    return get_setting("sync_interval_seconds"), get_setting("token_warning_days")


def _scheduled_sync_interval() -> int | None:
    scheduler = Scheduler(queue_name="default", connection=get_redis())
    jobs = {job.id: job for job in scheduler.get_jobs()}
    job = jobs.get(PREFIX + "server-sync")
    return None if job is None else job.meta["periodic"]["interval"]


@pytest.mark.parametrize("value", ["1", "299", "-5", "2592001"])
def test_an_interval_out_of_range_is_refused_next_to_the_field(admin_client, value):
    response = _save(admin_client, value)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert field_error(html, "sync_interval") == INTERVAL_MESSAGE
    assert f'value="{value}"' in html  # what was typed stays
    assert _stored() == ("86400", "")


@pytest.mark.parametrize("value", ["0", "300", "2592000"])
def test_the_interval_limits_and_zero_are_accepted(admin_client, value):
    assert _save(admin_client, value).status_code == 302
    assert _stored() == (value, "30")
    assert _scheduled_sync_interval() == (int(value) or None)


def test_a_new_interval_does_not_synchronize_every_server_at_once(admin_client):
    """Saving a new interval rescheduled the synchronization for now: every server synchronized again right after
    its last scheduled run. The next one is the last run plus the new interval, as the server page says."""
    from datetime import datetime, timedelta, timezone

    reconcile_now()
    ran_at = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)  # as the scheduler left it:
    get_redis().zadd(Scheduler.scheduled_jobs_key, {PREFIX + "server-sync": (ran_at + timedelta(days=1)).timestamp()})
    assert _save(admin_client, "604800").status_code == 302
    assert _scheduled_sync_interval() == 604800
    next_run = get_redis().zscore(Scheduler.scheduled_jobs_key, PREFIX + "server-sync")
    assert datetime.fromtimestamp(next_run, timezone.utc) == ran_at + timedelta(days=7)


@pytest.mark.parametrize("value", ["abc", "", "12.5", "1e3", "٣٠٠"])
def test_a_number_field_that_is_not_a_number_gets_one_message(admin_client, value):
    response = _save(admin_client, value, value)
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "Not a valid integer" not in html
    assert field_error(html, "sync_interval") == INTERVAL_MESSAGE
    assert field_error(html, "warning_days") == DAYS_MESSAGE
    assert _stored() == ("86400", "")


@pytest.mark.parametrize("value", ["0", "181"])
def test_warning_days_out_of_range_are_refused(admin_client, value):
    response = _save(admin_client, "86400", value)
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "warning_days") == DAYS_MESSAGE
    assert _stored() == ("86400", "")
    assert _save(admin_client, "86400", "180").status_code == 302 and _stored() == ("86400", "180")


def test_both_fields_say_their_range_before_anything_is_refused(admin_client):
    """The interval's help gave its limits; the warning's did not, so its range was learnt from an error."""
    page = admin_client.get("/settings/apple").get_data(as_text=True)
    assert "at least 300 (5 minutes), at most 2,592,000 (30 days)" in page
    help_text = page[page.index('id="warning_days-help"'):]
    assert "from 1 to 180 days" in help_text[:help_text.index("</p>")]


def test_a_stored_interval_below_the_minimum_runs_at_the_minimum(admin_client):
    set_setting("sync_interval_seconds", "1")  # saved before the minimum existed
    db.session.commit()
    assert {p.name: p.interval for p in periodic_jobs()}["server-sync"] == 300
    reconcile_now()  # as the scheduler command does when it starts
    assert _scheduled_sync_interval() == 300

    page = admin_client.get("/settings/apple").get_data(as_text=True)
    assert 'value="300"' in page  # what runs, not the stored 1
    assert "below the minimum" in page and "every 300 seconds" in page
    assert _save(admin_client, "300").status_code == 302
    assert _stored()[0] == "300"
    assert "below the minimum" not in admin_client.get("/settings/apple").get_data(as_text=True)


def test_the_activity_log_writes_the_interval_with_thousands_separators(admin_client):
    from sqlalchemy import select

    from portal.models import ActivityEntry

    assert _save(admin_client, "3600").status_code == 302
    assert _save(admin_client, "2592000", "120").status_code == 302
    summaries = db.session.execute(select(ActivityEntry.summary).where(ActivityEntry.action == "settings.apple")
                                   .order_by(ActivityEntry.id)).scalars().all()
    assert summaries[-1] == ("Configuration › Apple: Server Synchronization Interval 3,600 → 2,592,000 s; "
                             "token expiry warning 30 → 120 days")


@pytest.mark.parametrize("name,bad,good,limits", [
    *(("TOKEN_EXPIRY_WARNING_DAYS", bad, 45, "from 1 to 180") for bad in ("0", "181", "abc")),  # as the settings page
    *(("FULL_SYNC_DAYS", bad, 0, "from 0 to 365") for bad in ("366", "-1", "weekly")),
])
def test_day_counts_from_the_environment_are_checked_at_start(tmp_path, monkeypatch, name, bad, good, limits):
    monkeypatch.setenv(name, bad)
    with pytest.raises(RuntimeError, match=f"{name} must be a whole number of days {limits}"):
        load_config(str(tmp_path))
    monkeypatch.setenv(name, str(good))
    assert load_config(str(tmp_path))[name] == good


def _last_settings_entry() -> str:
    from sqlalchemy import select

    from portal.models import ActivityEntry

    db.session.expire_all()
    return db.session.execute(select(ActivityEntry.summary).where(ActivityEntry.action == "settings.apple")
                              .order_by(ActivityEntry.id.desc()).limit(1)).scalar_one()


def test_saving_says_so_and_the_activity_log_names_only_what_changed(admin_client):
    """A Save gets a confirmation; the log line does not list an unchanged interval as "86,400 → 86,400"."""
    response = _save(admin_client, "86400", "60")
    assert response.status_code == 302
    assert "Configuration › Apple saved." in admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert _last_settings_entry() == "Configuration › Apple: token expiry warning 30 → 60 days"

    assert _save(admin_client, "3600", "60").status_code == 302
    assert _last_settings_entry() == "Configuration › Apple: Server Synchronization Interval 86,400 → 3,600 s"

    assert _save(admin_client, "3600", "60").status_code == 302
    assert _last_settings_entry() == "Configuration › Apple saved: nothing changed"


def test_the_activity_log_says_off_for_an_interval_of_zero(admin_client):
    """0 disables automatic synchronization: "600 → 0 s" read as a synchronization every 0 seconds."""
    assert _save(admin_client, "600").status_code == 302
    assert _save(admin_client, "0").status_code == 302
    assert _last_settings_entry() == "Configuration › Apple: Server Synchronization Interval 600 → off"
    assert _save(admin_client, "3600").status_code == 302
    assert _last_settings_entry() == "Configuration › Apple: Server Synchronization Interval off → 3,600 s"


def _toasts(html: str) -> list[str]:
    import re

    return re.findall(r'<div class="toast toast-(\w+)">', html)


def test_a_save_says_so_once(admin_client):
    """One toast per Save: not "Settings saved; the schedule was updated" and "Configuration › Apple saved" together."""
    response = _save(admin_client, "3600")
    assert _toasts(admin_client.get(response.headers["Location"]).get_data(as_text=True)) == ["success"]


def test_a_save_the_scheduler_cannot_follow_says_only_that(admin_client, monkeypatch):
    """Redis out of reach: the one toast is the warning, which says the settings were saved all the same."""
    import redis

    def unreachable():
        raise redis.ConnectionError("no Redis")

    monkeypatch.setattr("jobs.schedule.reconcile_now", unreachable)
    response = _save(admin_client, "3600")
    page = admin_client.get(response.headers["Location"]).get_data(as_text=True)
    assert _toasts(page) == ["warning"]
    assert "Configuration › Apple saved, but Redis cannot be reached" in page
    assert _stored()[0] == "3600"


def _opened_form(client) -> dict[str, str]:
    """What a browser posts from a freshly opened /settings/apple when nothing is changed: every field's value."""
    return _form_fields(client.get("/settings/apple").get_data(as_text=True))


def _form_fields(html: str) -> dict[str, str]:
    """The settings form's fields in `html` as a browser posts them (the password left empty)."""
    from html.parser import HTMLParser

    class Fields(HTMLParser):
        def __init__(self):
            super().__init__()
            self.values, self.textarea, self.select, self.in_form = {}, None, None, False

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "form" and attrs.get("method") == "post" and "action" not in attrs:
                self.in_form = True
            elif not self.in_form:
                return
            elif tag == "input" and attrs.get("name") and attrs.get("type") != "password":
                self.values[attrs["name"]] = attrs.get("value", "")
            elif tag == "textarea":
                self.textarea = attrs["name"]
                self.values[self.textarea] = ""
            elif tag == "select":
                self.select = attrs["name"]
            elif tag == "option" and self.select and "selected" in attrs:
                self.values[self.select] = attrs["value"]

        def handle_endtag(self, tag):
            if tag == "form":
                self.in_form = False
            self.textarea = None if tag == "textarea" else self.textarea
            self.select = None if tag == "select" else self.select

        def handle_data(self, data):
            if self.textarea:
                self.values[self.textarea] += data.lstrip("\r\n")

    parser = Fields()
    parser.feed(html)
    return parser.values


def test_a_tab_opened_before_another_save_does_not_put_back_what_it_changed(admin_client):
    """Tabs A and B open; A turns automatic synchronization off; B, still showing the old interval, changes only the
    warning days: B's Save brought the old interval back and the synchronization on again."""
    tab_a, tab_b = _opened_form(admin_client), _opened_form(admin_client)
    assert admin_client.post("/settings/apple", data={**tab_a, "sync_interval": "0"}).status_code == 302
    assert admin_client.post("/settings/apple", data={**tab_b, "warning_days": "45"}).status_code == 302
    assert _stored() == ("0", "45")
    assert _scheduled_sync_interval() is None
    assert _last_settings_entry() == "Configuration › Apple: token expiry warning 30 → 45 days"
    page = admin_client.get("/settings/apple").get_data(as_text=True)
    assert "Configuration › Apple saved. Saved meanwhile in another tab or by another admin" in page


def test_two_tabs_changing_different_e_mail_settings_keep_both(admin_client):
    set_setting("smtp_host", "smtp.example.com")
    set_setting("smtp_sender", "ade@example.com")
    set_setting("smtp_recipients", "it@example.com")
    db.session.commit()
    tab_a, tab_b = _opened_form(admin_client), _opened_form(admin_client)
    assert admin_client.post("/settings/apple", data={**tab_a, "smtp_recipients": "ops@example.com"}).status_code == 302
    assert admin_client.post("/settings/apple", data={**tab_b, "smtp_sender": "portal@example.com"}).status_code == 302
    db.session.expire_all()
    assert (get_setting("smtp_sender"), get_setting("smtp_recipients")) == ("portal@example.com", "ops@example.com")


def test_a_refused_save_from_an_older_tab_shows_the_newer_values_and_saves_on_the_next_try(admin_client):
    """The other tab's interval shows in the re-rendered form; fixing the refused field and saving again keeps it."""
    tab_a, tab_b = _opened_form(admin_client), _opened_form(admin_client)
    assert admin_client.post("/settings/apple", data={**tab_a, "sync_interval": "3600"}).status_code == 302
    response = admin_client.post("/settings/apple", data={**tab_b, "warning_days": "999"})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and field_error(html, "warning_days") == DAYS_MESSAGE
    assert 'value="999"' in html and 'value="3600"' in html  # what this admin typed, and the other save
    assert ("Saved meanwhile in another tab or by another admin, and kept as saved there (you had not changed it "
            "here): Server Synchronization Interval (seconds).") in html  # which value is not the one this tab showed
    assert admin_client.post("/settings/apple", data={**_form_fields(html), "warning_days": "90"}).status_code == 302
    assert _stored() == ("3600", "90")
