"""Retried notification deliveries: a failure that may pass (no connection, no answer in time, 5xx, 429) is
tried again by rq-scheduler and a worker after each configured delay, then given up; one that will not pass
(another 4xx, a redirect) is not. The activity log says it once when it fails and once at the end. The
webhook is a real HTTP server; the retries are real scheduled jobs run by a real worker."""
from __future__ import annotations

import socket
import time
from datetime import datetime, timezone

import pytest
from rq_scheduler import Scheduler

from portal.extensions import db
from portal.queue import get_redis
from tests.test_notifications import SECRET_PATH, _activity, _save, paris, webhook  # noqa: F401 - fixtures

QUICK = (0, 0, 0)  # the delays of production (60, 300, 1800 s) without the wait


def _scheduler() -> Scheduler:
    return Scheduler(queue_name="default", connection=get_redis())


def _run_due_retries(run_jobs) -> int:
    """Let rq-scheduler move the retries that are due to the queue, then a worker run them; how many ran."""
    scheduler = _scheduler()
    due = [job for job in scheduler.get_jobs_to_queue() if job.func_name == "jobs.notifications.deliver"]
    scheduler.enqueue_jobs()  # the periodic jobs the settings page scheduled come along
    assert run_jobs() == []
    return len(due)


def _revoke_terms(htmx, apple, server) -> None:
    apple.state.set_fault("Paris MDM", "terms_not_signed", True)
    htmx.post(f"/servers/{server.id}/check")


def _summaries(action: str) -> list[str]:
    return [entry.summary for entry in _activity(action)]


def test_a_delivery_that_fails_then_succeeds_is_retried_and_logged_once_each_way(app, htmx, apple, paris,
                                                                                 run_jobs, webhook):
    app.config["NOTIFICATION_RETRY_DELAYS"] = QUICK
    assert _save(htmx, webhook.url).status_code == 302
    webhook.answers = [(503, {}), (500, {})]  # then 200
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == []
    assert len(webhook.received) == 1
    retrying = _activity("notification.retrying")
    assert len(retrying) == 1 and retrying[0].level == "warning"
    assert retrying[0].summary.startswith("Notification not delivered to 127.0.0.1: 127.0.0.1 answered HTTP 503. "
                                          "Trying again in 0 s (3 more attempts at most). It said: Token status of "
                                          "Paris is now Terms Not Accepted.")
    assert _run_due_retries(run_jobs) == 1 and len(webhook.received) == 2
    assert len(_activity("notification.retrying")) == 1  # not one entry per attempt
    assert _run_due_retries(run_jobs) == 1 and len(webhook.received) == 3
    assert all(job.func_name != "jobs.notifications.deliver" for job in _scheduler().get_jobs())
    assert {r["json"]["text"] for r in webhook.received} == {webhook.received[0]["json"]["text"]}
    assert _summaries("notification.delivered") == [
        "Notification delivered to 127.0.0.1 on attempt 3. It said: " + webhook.received[0]["json"]["text"]]
    assert _activity("notification.failed") == []
    assert not any("s3cr3t" in s for s in _summaries("notification.retrying") + _summaries("notification.delivered"))


def test_a_webhook_that_cannot_be_reached_is_given_up_after_the_last_retry(app, htmx, apple, paris, run_jobs):
    app.config["NOTIFICATION_RETRY_DELAYS"] = QUICK
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: connection refused
    assert _save(htmx, f"http://127.0.0.1:{port}{SECRET_PATH}").status_code == 302
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == []
    assert [_run_due_retries(run_jobs) for _ in range(4)] == [1, 1, 1, 0]  # three retries, then nothing held
    retrying, failed = _activity("notification.retrying"), _activity("notification.failed")
    assert len(retrying) == 1 and (f"127.0.0.1 refused the connection on port {port}: check the port in the webhook URL"
                                   in retrying[0].summary and "Error" not in retrying[0].summary)
    assert "or whether the receiving service runs. Trying again in 0 s" in retrying[0].summary
    assert len(failed) == 1 and failed[0].level == "error"
    assert failed[0].summary.startswith(f"Notification not delivered to 127.0.0.1: 127.0.0.1 refused the connection on "
                                        f"port {port}: check the port")
    assert "receiving service runs. Given up after 4 attempts. It said: Token status of Paris" in failed[0].summary


@pytest.mark.parametrize("answers, attempts, problem", [
    ([(302, {"Location": "https://elsewhere.example.com/"})], 1,
     "127.0.0.1 answered HTTP 302 (a redirect: give the address it points to). It said"),
    ([(400, {})], 1, "127.0.0.1 answered HTTP 400. It said"),
    ([(502, {}), (403, {})], 2, "127.0.0.1 answered HTTP 403. Given up after 2 attempts. It said"),
])
def test_a_refusal_that_will_not_pass_is_not_retried(app, htmx, apple, paris, run_jobs, webhook, answers, attempts,
                                                     problem):
    app.config["NOTIFICATION_RETRY_DELAYS"] = QUICK
    assert _save(htmx, webhook.url).status_code == 302
    webhook.answers = list(answers)
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == []
    while _run_due_retries(run_jobs):
        pass
    assert len(webhook.received) == attempts
    assert len(_activity("notification.retrying")) == (attempts > 1)
    failed = _summaries("notification.failed")
    assert len(failed) == 1 and problem in failed[0]


@pytest.mark.parametrize("answer, delay, said", [
    ((503, {}), 60, "1 minute"),  # the first configured delay
    ((429, {"Retry-After": "120"}), 120, "2 minutes"),  # the receiver asked for longer: honoured
    ((429, {"Retry-After": "10"}), 60, "1 minute"),  # shorter than ours: ours
    ((429, {"Retry-After": "864000"}), 3600, "1 hour"),  # ten days: within reason, an hour at most
])
def test_a_retry_waits_the_configured_delay_or_what_a_429_asks_within_reason(htmx, apple, paris, run_jobs, webhook,
                                                                            answer, delay, said):
    assert _save(htmx, webhook.url).status_code == 302
    webhook.answers = [answer]
    before = datetime.now(timezone.utc).timestamp()
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == []
    held = [(job, when) for job, when in _scheduler().get_jobs(with_times=True)
            if job.func_name == "jobs.notifications.deliver"]
    assert len(held) == 1
    job, when = held[0]
    assert job.args[1:] == ("webhook", 2)
    wait = when.replace(tzinfo=timezone.utc).timestamp() - before
    assert delay - 2 <= wait <= delay + 30
    assert f"Trying again in {said} (3 more attempts at most)" in _summaries("notification.retrying")[0]
    assert _run_due_retries(run_jobs) == 0  # not before it is due


def test_a_webhook_that_does_not_answer_in_time_is_retried(app, htmx, apple, paris, run_jobs, webhook, monkeypatch):
    import portal.notifications as notifications

    app.config["NOTIFICATION_RETRY_DELAYS"] = QUICK
    monkeypatch.setattr(notifications, "TIMEOUT_S", (5, 0.3))
    assert _save(htmx, webhook.url).status_code == 302
    webhook.delay = 1.0
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == []
    assert "127.0.0.1 did not answer within 0.3 s. Trying again" in _summaries("notification.retrying")[0]
    webhook.delay = 0
    time.sleep(0.8)  # the first request's handler is done
    assert _run_due_retries(run_jobs) == 1
    assert _summaries("notification.delivered")[0].startswith("Notification delivered to 127.0.0.1 on attempt 2.")


def test_no_retries_when_none_are_configured(app, htmx, apple, paris, run_jobs, webhook):
    app.config["NOTIFICATION_RETRY_DELAYS"] = ()
    assert _save(htmx, webhook.url).status_code == 302
    webhook.status = 503
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == [] and _run_due_retries(run_jobs) == 0
    assert _activity("notification.retrying") == []
    assert "127.0.0.1 answered HTTP 503. It said" in _summaries("notification.failed")[0]
    db.session.rollback()


def test_the_retry_delays_come_from_the_environment(tmp_path, monkeypatch):
    from portal.config import load_config

    monkeypatch.delenv("NOTIFICATION_RETRY_DELAYS", raising=False)
    assert load_config(str(tmp_path))["NOTIFICATION_RETRY_DELAYS"] == (60, 300, 1800)
    monkeypatch.setenv("NOTIFICATION_RETRY_DELAYS", " 5, 10 ")
    assert load_config(str(tmp_path))["NOTIFICATION_RETRY_DELAYS"] == (5, 10)
    monkeypatch.setenv("NOTIFICATION_RETRY_DELAYS", "")
    assert load_config(str(tmp_path))["NOTIFICATION_RETRY_DELAYS"] == ()
    for bad in ("1m", "60;300", "-1", "86401", ",".join(["1"] * 11)):
        monkeypatch.setenv("NOTIFICATION_RETRY_DELAYS", bad)
        with pytest.raises(RuntimeError, match="NOTIFICATION_RETRY_DELAYS must be"):
            load_config(str(tmp_path))


def test_a_retry_that_cannot_be_scheduled_is_said_given_up_not_promised(app, htmx, apple, paris, run_jobs, webhook,
                                                                        monkeypatch):
    """Redis failing just when the retry is scheduled (a moment a real Redis cannot be made to fail on cue)."""
    import redis

    import jobs.notifications

    app.config["NOTIFICATION_RETRY_DELAYS"] = (60,)
    assert _save(htmx, webhook.url).status_code == 302
    webhook.answers = [(503, {})]

    def redis_gone(*args, **kwargs):
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(jobs.notifications, "schedule_in", redis_gone)
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == []
    assert _activity("notification.retrying") == []  # no promise of a retry that will not come
    [failed] = _summaries("notification.failed")
    assert failed.startswith("Notification not delivered to 127.0.0.1: 127.0.0.1 answered HTTP 503. It could not be "
                             "tried again (Redis: Connection refused).")


def test_a_scheduled_retry_has_the_delivery_time_limit(app, htmx, apple, paris, run_jobs, webhook):
    from portal.notifications import DELIVERY_TIMEOUT_S

    app.config["NOTIFICATION_RETRY_DELAYS"] = (60,)
    assert _save(htmx, webhook.url).status_code == 302
    webhook.answers = [(503, {})]
    _revoke_terms(htmx, apple, paris)
    assert run_jobs() == []
    [retry] = [job for job in _scheduler().get_jobs() if job.func_name == "jobs.notifications.deliver"]
    assert retry.timeout == DELIVERY_TIMEOUT_S
