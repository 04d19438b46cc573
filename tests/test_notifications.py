"""The notification webhook (Configuration › Apple): token status changes and expiry reminders are POSTed to
it by a worker once their change commits, its URL is checked next to the field and never logged whole, and
a delivery it refuses is recorded in the activity log. The webhook is a real HTTP server on a free port."""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from jobs.servers import refresh_token_statuses
from portal.extensions import db
from portal.models import ActivityEntry
from portal.models.setting import get_setting
from portal.queue import get_queue
from tests.servers_helpers import Identity, field_error, post_add_server, server_named

SECRET_PATH = "/services/T000/B000/s3cr3t"


class Webhook:
    """A webhook that records what it is sent and answers `status` (or the next of `answers`: status, headers)."""

    def __init__(self):
        self.received: list[dict] = []
        self.status = 200
        self.answers: list[tuple[int, dict]] = []
        self.delay = 0.0  # seconds before answering
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.received.append({"path": self.path, "headers": dict(self.headers), "json": json.loads(body)})
                time.sleep(hook.delay)
                status, headers = hook.answers.pop(0) if hook.answers else (hook.status, {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{SECRET_PATH}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        return [r["json"]["text"] for r in self.received]


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()


def _save(client, webhook_url: str):
    return client.post("/settings/apple", data={"sync_interval": "86400", "warning_days": "30",
                                                 "webhook_url": webhook_url})


def _activity(action: str) -> list[ActivityEntry]:
    db.session.expire_all()
    return list(db.session.execute(select(ActivityEntry).where(ActivityEntry.action == action)
                                   .order_by(ActivityEntry.id)).scalars())


@pytest.fixture
def paris(htmx, apple, run_jobs):
    identity = Identity()
    token = apple.state.issue_token("Paris MDM", identity.certificate_pem, devices=3)
    post_add_server(htmx, "Paris", token, identity.key_pem)
    assert run_jobs() == []
    return server_named("Paris")


@pytest.mark.parametrize("value, message", [
    ("ftp://hooks.example.com/x", "Give an http:// or https:// address"),
    ("hooks.example.com/services/x", "Give an http:// or https:// address"),
    ("https://hooks.example.com/a b", "A URL cannot hold spaces"),
    ("https://hooks.example.com/<x>", "A URL cannot hold these characters as typed: &lt; &gt;"),
    ("https://hooks.example.com:99999/x", "This is not a URL"),
    ("https://hooks.example.com:0/x", "Port 0 is not a port"),
    ("https://hooks.example.com/" + "x" * 1000, "at most 1,000 characters"),
])
def test_a_webhook_url_that_cannot_be_one_is_refused_next_to_the_field_and_nothing_changes(admin_client, value,
                                                                                          message):
    assert _save(admin_client, "https://hooks.example.com/kept").status_code == 302
    response = _save(admin_client, value)
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), "webhook_url")
    assert value.replace("<", "&lt;").replace(">", "&gt;")[:60] in response.get_data(as_text=True)  # kept in the field
    db.session.expire_all()
    assert get_setting("notification_webhook_url") == "https://hooks.example.com/kept"


def test_the_webhook_is_saved_logged_by_its_host_only_and_removed_when_emptied(admin_client):
    assert _save(admin_client, "  https://hooks.example.com/services/s3cr3t  ").status_code == 302
    db.session.expire_all()
    assert get_setting("notification_webhook_url") == "https://hooks.example.com/services/s3cr3t"
    page = admin_client.get("/settings/apple").get_data(as_text=True)
    assert 'value="https://hooks.example.com/services/s3cr3t"' in page
    assert "Send a test notification</button>" in page and "to the saved webhook at hooks.example.com" in page
    assert _save(admin_client, "").status_code == 302
    summaries = [entry.summary for entry in _activity("settings.apple")]
    assert "notifications sent to a webhook at hooks.example.com" in summaries[0]
    assert "notification webhook removed" in summaries[1]
    assert not any("s3cr3t" in summary for summary in summaries)
    assert "Send a test notification</button>" not in admin_client.get("/settings/apple").get_data(as_text=True)


def test_a_token_status_change_is_posted_once_committed(htmx, apple, paris, run_jobs, webhook):
    assert _save(htmx, webhook.url).status_code == 302
    apple.state.issue_token("Paris MDM", Identity().certificate_pem)  # downloaded again in ABM: the old one is revoked
    htmx.post(f"/servers/{paris.id}/check")
    assert run_jobs() == []
    assert len(webhook.received) == 1
    sent = webhook.received[0]
    assert sent["path"] == SECRET_PATH and sent["headers"]["Content-Type"] == "application/json"
    assert sent["headers"]["User-Agent"].startswith("ade-portal/")
    assert sent["json"]["event"] == "token_status" and sent["json"]["server"] == "Paris"
    assert sent["json"]["status"] == "Token Revoked" and sent["json"]["server_id"] == paris.id
    assert sent["json"]["text"].startswith("Token status of Paris is now Token Revoked. Apple no longer accepts")
    htmx.post(f"/servers/{paris.id}/check")  # the same status again: nothing new to say
    assert run_jobs() == [] and len(webhook.received) == 1


def test_nothing_is_queued_without_a_webhook_or_for_a_change_rolled_back(htmx, apple, paris, run_jobs, webhook):
    from jobs.servers import _refresh_status
    from portal.models import ManagedServer

    apple.state.set_fault("Paris MDM", "access_denied", True)
    htmx.post(f"/servers/{paris.id}/check")
    assert run_jobs() == [] and webhook.received == []  # no webhook set: the activity log only
    assert [e.summary for e in _activity("server.token_status")] == ["Token status of Paris is now Access Denied"]

    assert _save(htmx, webhook.url).status_code == 302
    server = db.session.get(ManagedServer, paris.id)
    server.token_status = "valid"
    assert _refresh_status(server) == 1  # a change noticed, then rolled back: never announced
    db.session.rollback()
    db.session.commit()
    assert len(get_queue()) == 0


def test_reminders_seven_days_and_one_day_before_expiry_once_each_and_again_after_renewal(htmx, paris, run_jobs,
                                                                                          webhook):
    from portal.models import ManagedServer

    assert _save(htmx, webhook.url).status_code == 302

    def expires_in(delta: timedelta) -> None:
        server = db.session.get(ManagedServer, paris.id)
        server.token_expiry = datetime.now(timezone.utc).replace(microsecond=0) + delta
        db.session.commit()

    expires_in(timedelta(days=20))
    assert refresh_token_statuses()["reminded"] == 0  # About to Expire (a status change), no reminder yet
    expires_in(timedelta(days=6, hours=12))
    assert refresh_token_statuses()["reminded"] == 1
    assert refresh_token_statuses()["reminded"] == 0  # the job again the same day: said once
    expires_in(timedelta(hours=20))
    assert refresh_token_statuses()["reminded"] == 1
    assert refresh_token_statuses()["reminded"] == 0
    expires_in(timedelta(days=300))  # renewed: a new expiry starts over
    refresh_token_statuses()
    expires_in(timedelta(days=5))
    assert refresh_token_statuses()["reminded"] == 1

    reminders = [entry.summary for entry in _activity("server.token_reminder")]
    assert len(reminders) == 3
    assert reminders[0].startswith("The token of Paris expires in 7 days, on ")
    assert reminders[1].startswith("The token of Paris expires in 1 day, on ")
    assert "download a new token for its MDM server in Apple Business Manager and use Renew a server" in reminders[1]
    assert run_jobs() == []
    events = [(r["json"]["event"], r["json"].get("days_left")) for r in webhook.received]
    assert events == [("token_status", None), ("token_reminder", 7), ("token_reminder", 1), ("token_status", None),
                      ("token_status", None), ("token_reminder", 5)]
    assert webhook.texts()[0].startswith("Token status of Paris is now About to Expire.")


def test_an_expired_token_gets_its_status_change_and_no_reminder(htmx, paris, run_jobs, webhook):
    from portal.models import ManagedServer

    assert _save(htmx, webhook.url).status_code == 302
    server = db.session.get(ManagedServer, paris.id)
    server.token_expiry = datetime.now(timezone.utc) - timedelta(hours=1)
    db.session.commit()
    assert refresh_token_statuses() == {"changed": 1, "reminded": 0}
    assert run_jobs() == []
    assert [r["json"]["status"] for r in webhook.received] == ["Expired"]


def test_a_delivery_the_webhook_refuses_is_recorded_without_its_secret(htmx, apple, paris, run_jobs, webhook):
    assert _save(htmx, webhook.url).status_code == 302
    webhook.status = 404
    apple.state.set_fault("Paris MDM", "terms_not_signed", True)
    htmx.post(f"/servers/{paris.id}/check")
    assert run_jobs() == []
    failed = _activity("notification.failed")
    assert len(failed) == 1 and failed[0].level == "error"
    assert failed[0].summary.startswith("Notification not delivered to 127.0.0.1: 127.0.0.1 answered HTTP 404. It "
                                        "said: Token status of Paris is now Terms Not Accepted.")
    assert "s3cr3t" not in failed[0].summary


def test_send_a_test_notification_shows_the_webhooks_answer(htmx, run_jobs, webhook):
    refused = htmx.post("/settings/apple/test-notification")
    assert refused.status_code == 422 and "Save a webhook URL first" in refused.get_data(as_text=True)

    assert _save(htmx, webhook.url).status_code == 302
    queued = htmx.post("/settings/apple/test-notification").get_data(as_text=True)
    assert "Waiting for a worker" in queued and 'hx-trigger="every 1s"' in queued
    job_id = queued.split("/settings/apple/test-notification/")[1].split('"')[0]
    assert run_jobs() == []
    done = htmx.get(f"/settings/apple/test-notification/{job_id}")
    assert done.status_code == 286  # polling stops
    assert "Delivered" in done.get_data(as_text=True) and "127.0.0.1 accepted the test notification" in \
        done.get_data(as_text=True)
    assert webhook.received[0]["json"]["event"] == "test"

    webhook.status = 500
    queued = htmx.post("/settings/apple/test-notification").get_data(as_text=True)
    job_id = queued.split("/settings/apple/test-notification/")[1].split('"')[0]
    assert run_jobs() == []
    answer = htmx.get(f"/settings/apple/test-notification/{job_id}").get_data(as_text=True)
    assert "Not delivered" in answer and "127.0.0.1 answered HTTP 500." in answer
    assert _activity("notification.failed") == []  # a test's answer is on the page, not in the log


def test_send_a_test_notification_without_javascript_says_so_on_the_settings_page(admin_client, run_jobs, webhook):
    assert _save(admin_client, webhook.url).status_code == 302
    response = admin_client.post("/settings/apple/test-notification", follow_redirects=True)
    assert response.status_code == 200 and "A test notification is on its way to 127.0.0.1" in \
        response.get_data(as_text=True)
    assert run_jobs() == [] and webhook.received[0]["json"]["event"] == "test"


def test_the_reminder_days_are_a_setting(htmx, paris, run_jobs, webhook, monkeypatch):
    """Escalating reminders (peers.md idea 3): 30, 14 and 2 days before, in any order typed; none when emptied."""
    import jobs.servers
    from portal.models import ManagedServer

    page = htmx.get("/settings/apple").get_data(as_text=True)
    assert 'name="reminder_days"' in page and 'value="7, 1"' in page  # the default
    data = {"sync_interval": "86400", "warning_days": "30", "webhook_url": webhook.url, "reminder_days": "2 30;14, 14"}
    assert htmx.post("/settings/apple", data=data).status_code == 302
    assert 'value="30, 14, 2"' in htmx.get("/settings/apple").get_data(as_text=True)
    assert "token expiry reminders 30, 14 and 2 days before expiry" in _activity("settings.apple")[-1].summary

    def expires_in(delta: timedelta) -> None:
        server = db.session.get(ManagedServer, paris.id)
        server.token_expiry = datetime.now(timezone.utc).replace(microsecond=0) + delta
        db.session.commit()

    # One token, the days going by: the daily job's clock moves, the expiry stays (a new expiry starts over).
    expires_in(timedelta(days=40))
    real_now, offset = datetime.now, {"days": 0.0}

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return real_now(tz) + timedelta(days=offset["days"])

    monkeypatch.setattr(jobs.servers, "datetime", Clock)
    reminded = []
    for days_left in (40, 29.5, 20, 13.5, 7, 1.5, 0.5):
        offset["days"] = 40 - days_left
        reminded.append(refresh_token_statuses()["reminded"])
    assert reminded == [0, 1, 0, 1, 0, 1, 0]  # at 30, 14 and 2 days; not at 7 or 1 any more
    assert [e.details["days_left"] for e in _activity("server.token_reminder")] == [30, 14, 2]
    monkeypatch.setattr(jobs.servers, "datetime", datetime)

    data["reminder_days"] = ""
    assert htmx.post("/settings/apple", data=data).status_code == 302
    expires_in(timedelta(days=300))
    refresh_token_statuses()
    expires_in(timedelta(days=1))
    assert refresh_token_statuses()["reminded"] == 0  # no reminders


@pytest.mark.parametrize("typed, words", [
    ("7, a week", "Give whole numbers of days separated by commas, e.g. 30, 14, 7, 1."),
    ("0", "Each number of days is from 1 to 365."),
    ("400, 7", "Each number of days is from 1 to 365."),
    ("1 2 3 4 5 6 7 8 9 10 11", "Give at most 10 reminders."),
])
def test_reminder_days_that_cannot_be_used_are_refused_next_to_the_field(htmx, typed, words):
    response = htmx.post("/settings/apple", data={"sync_interval": "86400", "warning_days": "30", "webhook_url": "",
                                                  "reminder_days": typed})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and words in html and f'value="{typed}"' in html
    assert 'value="7, 1"' in htmx.get("/settings/apple").get_data(as_text=True)  # nothing changed
