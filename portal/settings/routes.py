"""The Server Synchronization Interval, the token expiry warning threshold and the notifications (webhook, e-mail)."""
from __future__ import annotations

import json

import redis
from flask import current_app, flash, redirect, render_template, url_for

from ..activity.record import record_activity
from ..apple_link import warning_days
from ..config import SYNC_INTERVAL_MAX, SYNC_INTERVAL_MIN, WARNING_DAYS_MAX, WARNING_DAYS_MIN
from ..extensions import db
from ..htmx import is_htmx, part_of, polled_job
from ..models.setting import (get_setting, parse_reminder_days, reminder_days, reminder_words, set_setting,
                              sync_interval_seconds)
from ..email_settings import email_enabled, has_password, save_smtp
from ..notifications import WEBHOOK_SETTING, webhook_host, webhook_url
from ..queue import enqueue, fetch_job, new_job_id
from . import bp
from .forms import AppleSettingsForm


@bp.route("/apple", methods=["GET", "POST"])
def apple():
    """Show and change the Device Assignment settings; the scheduler follows at once."""
    form = AppleSettingsForm()
    stored, in_force = get_setting("sync_interval_seconds"), sync_interval_seconds()
    saved_values = _saved_values()
    saved_elsewhere = []  # fields another tab (or admin) saved since this page was opened, untouched here
    if form.is_submitted():
        saved_elsewhere = form.keep_saves_made_since(saved_values)
    else:
        form.show(saved_values)
    if form.validate_on_submit():
        webhook_before, email_before, reminders_before = webhook_url(), _email_summary(), reminder_days()
        warning_before = warning_days()
        if form.reminder_days.raw_data:  # a post without the field (a script) leaves the reminders as they are
            set_setting("token_reminder_days", ", ".join(map(str, parse_reminder_days(form.reminder_days.data or ""))))
        set_setting("sync_interval_seconds", str(form.sync_interval.data))
        set_setting("token_warning_days", str(form.warning_days.data))
        set_setting(WEBHOOK_SETTING, form.webhook_url.data or "")
        save_smtp(form.smtp_host.data or "", form.smtp_port.data, form.smtp_tls.data, form.smtp_username.data or "",
                  form.smtp_password.data or None, form.smtp_sender.data or "", form.recipients())
        changes = (f"{_interval_change(stored, in_force, form.sync_interval.data)}"
                   f"{_warning_change(warning_before, form.warning_days.data)}"
                   f"{_reminders_change(reminders_before, reminder_days())}"
                   f"{_webhook_change(webhook_before, form.webhook_url.data or '')}"
                   f"{_email_change(email_before, _email_summary())}"
                   f"{'; SMTP password changed' if form.smtp_username.data and form.smtp_password.data else ''}")
        record_activity("settings.apple", summary=f"Configuration › Apple: {changes.removeprefix('; ')}" if changes
                        else "Configuration › Apple saved: nothing changed")
        db.session.commit()
        if _reschedule():  # one toast: the warning alone says it was saved when the schedule could not follow
            flash(f"Configuration › Apple saved.{_kept_words(saved_elsewhere)}", "success")
        return redirect(url_for("settings.apple"))
    if form.errors and form.smtp_password.data and not form.smtp_password.errors:
        # Another field is refused: the password typed is not sent back to the browser, so its field comes back
        # empty. Said next to it, or a Save after fixing the other field would keep the old password unnoticed.
        form.smtp_password.errors = ["The password you typed was not saved, and is never shown back: type it again."]
    status = 422 if form.errors else 200
    form.opened_with.data = json.dumps(saved_values)  # the fields not changed here now show these
    saved = webhook_url()
    return render_template("settings/apple.html", form=form, interval_notice=_interval_notice(stored, in_force),
                           saved_elsewhere=_kept_words(saved_elsewhere).strip(),
                           min_interval=SYNC_INTERVAL_MIN, max_interval=SYNC_INTERVAL_MAX,
                           min_days=WARNING_DAYS_MIN, max_days=WARNING_DAYS_MAX,
                           saved_webhook=webhook_host(saved) if saved else None, email_on=email_enabled(),
                           password_saved=has_password()), status


def _kept_words(labels: list[str]) -> str:
    """" Saved meanwhile elsewhere, and kept: Webhook URL, …" (with a leading space), or ""."""
    if not labels:
        return ""
    return (f" Saved meanwhile in another tab or by another admin, and kept as saved there (you had not changed "
            f"{'them' if len(labels) > 1 else 'it'} here): {', '.join(labels)}.")


@bp.route("/apple/test-notification", methods=["POST"])
def test_notification():
    """Send a test notification to the saved webhook; the answer is polled into the page."""
    url = webhook_url()
    return _send_test("jobs.notifications.send_test", 60, "settings/_test_notification.html",
                      missing=None if url else "Save a webhook URL first, then send a test notification.",
                      on_its_way=lambda: f"A test notification is on its way to {webhook_host(url)}: see whether it "
                                         "arrives (with JavaScript on, this page shows the webhook's answer).")


@bp.route("/apple/test-notification/<job_id>")
@part_of(lambda job_id: url_for("settings.apple"))
def test_notification_status(job_id: str):
    """The test notification's outcome, polled until its job ends."""
    return polled_job("settings/_test_notification.html", job_id, "jobs.notifications.send_test")


@bp.route("/apple/test-email", methods=["POST"])
def test_email():
    """Send a test e-mail with the saved SMTP settings; the server's answer is polled into the page."""
    return _send_test("jobs.notifications.send_test_email", 120, "settings/_test_email.html",
                      missing=None if email_enabled() else "Save an SMTP server and recipients first, then send a test "
                                                           "e-mail.",
                      on_its_way=lambda: f"A test e-mail is on its way through {get_setting('smtp_host')}: see whether "
                                         "it arrives (with JavaScript on, this page shows the server's answer).")


@bp.route("/apple/test-email/<job_id>")
@part_of(lambda job_id: url_for("settings.apple"))
def test_email_status(job_id: str):
    """The test e-mail's outcome, polled until its job ends."""
    return polled_job("settings/_test_email.html", job_id, "jobs.notifications.send_test_email")


def _send_test(job_name: str, timeout: int, template: str, *, missing: str | None, on_its_way) -> tuple:
    """Queue a test delivery whose answer the page polls (`template`); `missing`: why it cannot be sent yet. Without
    JavaScript (a plain form post) the outcome is a message on the settings page instead."""
    error, status, job_id = None, 200, new_job_id()
    if missing:
        error, status, job_id = missing, 422, None
    else:
        try:
            enqueue(job_name, job_id, job_id=job_id, job_timeout=timeout, result_ttl=3600)
        except (redis.RedisError, OSError, RuntimeError):
            error, status = "Redis cannot be reached: background work cannot run.", 503
    if not is_htmx():
        flash(error or on_its_way(), "error" if error else "success")
        return redirect(url_for("settings.apple"))
    job = fetch_job(job_id) if job_id and not error else None
    return render_template(template, job=job, job_id=job_id, error=error), status


def _saved_values() -> dict:
    """The saved settings as the form shows them, by field name (never the SMTP password: its field stays empty and
    keeps it)."""
    port = get_setting("smtp_port")
    return {"sync_interval": sync_interval_seconds(),  # what the scheduler runs, even when something else is stored
            "warning_days": warning_days(), "reminder_days": ", ".join(map(str, reminder_days())),
            "webhook_url": webhook_url(), "smtp_host": get_setting("smtp_host"),
            "smtp_port": int(port) if port.isdecimal() else 587, "smtp_tls": get_setting("smtp_tls"),
            "smtp_username": get_setting("smtp_username"), "smtp_sender": get_setting("smtp_sender"),
            "smtp_recipients": get_setting("smtp_recipients")}


def _email_summary() -> str:
    """The e-mail settings as the activity log shows them (no password, only whether one is saved)."""
    if not email_enabled():
        return ""
    user = get_setting("smtp_username")
    return (f"{get_setting('smtp_host')}:{get_setting('smtp_port')} ({get_setting('smtp_tls')}"
            f"{', as ' + user if user else ''}) from {get_setting('smtp_sender')} to {get_setting('smtp_recipients')}")


def _interval_change(stored: str, in_force: int, after: int) -> str:
    """The interval's change for the activity log: none when the one saved is the one that ran already (a log
    line saying "86,400 → 86,400" would send an admin looking for a change nobody made)."""
    if stored.strip() == str(after) or (not stored.strip() and in_force == after):
        return ""
    before = _seconds(stored) if stored.strip() else f"{in_force:,}"
    # 0 disables automatic synchronization: "→ 0 s" read as a synchronization every 0 seconds, or a typo
    return f"; Server Synchronization Interval {'off' if before == '0' else before} → {f'{after:,} s' if after else 'off'}"


def _warning_change(before: int, after: int) -> str:
    """The token expiry warning's change for the activity log."""
    return "" if before == after else f"; token expiry warning {before:,} → {after:,} days"


def _reminders_change(before: list[int], after: list[int]) -> str:
    """The reminders' change for the activity log."""
    return "" if before == after else f"; token expiry reminders {reminder_words(after)} before expiry"


def _email_change(before: str, after: str) -> str:
    """The e-mail notifications' change for the activity log."""
    if before == after:
        return ""
    return f"; e-mail notifications sent through {after}" if after else "; e-mail notifications turned off"


def _webhook_change(before: str, after: str) -> str:
    """The webhook's change for the activity log, by host only (its path may hold a secret)."""
    if before == after:
        return ""
    if not after:
        return "; notification webhook removed"
    return f"; notifications sent to a webhook at {webhook_host(after)}"


def _seconds(stored: str) -> str:
    """A stored interval as the rest of the portal writes numbers (86,400), or as stored if it is not one."""
    return f"{int(stored):,}" if stored.strip().lstrip("-").isdigit() else stored


def _interval_notice(stored: str, in_force: int) -> str | None:
    """What to say when the stored interval is not the one in force (stored before the minimum existed)."""
    if stored.strip() == str(in_force):
        return None
    below = stored.strip().isdecimal() and int(stored) < SYNC_INTERVAL_MIN
    why = f"is below the minimum of {SYNC_INTERVAL_MIN}" if below else "is not an allowed value"
    runs = f"servers are synchronized every {in_force} seconds" if in_force else "automatic synchronization is off"
    return f"The stored interval, {stored} seconds, {why}: {runs}. Save to store that."


def _reschedule() -> bool:
    """Bring the scheduler in line with the saved interval; False (with a warning flashed) when Redis is out of reach."""
    from jobs.schedule import reconcile_now

    try:
        reconcile_now()
    except (redis.RedisError, OSError, RuntimeError):
        current_app.logger.warning("settings saved but the scheduler could not be updated", exc_info=True)
        flash("Configuration › Apple saved, but Redis cannot be reached: the schedule changes when the scheduler "
              "next starts.", "warning")
        return False
    return True
