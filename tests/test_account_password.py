"""Change password: the signed-in admin's own password, asked for the current one first; other sessions end."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import ActivityEntry, Admin
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD

NEW = "a much longer passphrase"


def _change(client, current=ADMIN_PASSWORD, new=NEW, again=None):
    return client.post("/account/password", data={"current_password": current, "new_password": new,
                                                   "confirm_password": new if again is None else again})


def _other_browser_signed_in(app, auth_cls):
    other = app.test_client()
    auth_cls(app, other).login()
    return other


def _text(response) -> str:
    return response.get_data(as_text=True)


def test_every_page_links_to_change_password_and_the_page_asks_for_the_current_one(admin_client):
    assert 'href="/account/password"' in _text(admin_client.get("/servers"))
    page = _text(admin_client.get("/account/password"))
    assert "<h1>Change password</h1>" in page
    for label in ("Current password", "New password", "New password again"):
        assert f">{label}</label>" in page
    assert 'autocomplete="current-password"' in page and page.count('autocomplete="new-password"') == 2


def test_the_password_is_changed_and_every_other_session_is_signed_out(app, auth, admin_client):
    from tests.conftest import AuthActions

    other = _other_browser_signed_in(app, AuthActions)
    assert other.get("/servers").status_code == 200
    response = _change(admin_client)
    assert response.status_code == 302 and response.headers["Location"] == "/account/password"
    assert "Your password was changed. Your 1 other session was signed out." in _text(admin_client.get(
        "/account/password"))
    assert admin_client.get("/servers").status_code == 200  # this browser stays signed in
    assert other.get("/servers").status_code == 302  # the other one is signed out
    admin = db.session.execute(select(Admin)).scalar_one()
    assert admin.check_password(NEW) and not admin.check_password(ADMIN_PASSWORD)
    entry = db.session.execute(select(ActivityEntry).where(
        ActivityEntry.action == "admin.password_changed")).scalar_one()
    assert entry.summary == "alice changed their password; 1 other session signed out"
    # The new password signs in; the old one no longer does.
    auth.logout()
    assert auth.login(ADMIN_NAME, ADMIN_PASSWORD).status_code == 422
    assert auth.login(ADMIN_NAME, NEW).status_code == 302


@pytest.mark.parametrize("current, new, again, field, message", [
    ("wrong password", NEW, None, "current_password", "Incorrect password."),
    ("", NEW, None, "current_password", "Enter your current password."),
    (ADMIN_PASSWORD, "short", None, "new_password", "The new password must have 8 to 1,024 characters."),
    (ADMIN_PASSWORD, NEW, "a much longer passphrasE", "confirm_password",
     "The two new passwords differ: type the same one twice."),
    (ADMIN_PASSWORD, ADMIN_PASSWORD, None, "new_password", "This is your current password: choose another one."),
])
def test_bad_input_is_said_next_to_its_field_and_changes_nothing(admin_client, current, new, again, field, message):
    response = _change(admin_client, current, new, again)
    assert response.status_code == 422
    page = _text(response)
    assert re.search(rf'<p class="error" id="{field}-error-1" role="alert">{re.escape(message)}</p>', page)
    assert f'id="{field}"' in page and "aria-invalid" in page
    assert NEW not in page and ADMIN_PASSWORD not in page  # passwords are never sent back
    admin = db.session.execute(select(Admin)).scalar_one()
    assert admin.check_password(ADMIN_PASSWORD)
    assert admin_client.get("/servers").status_code == 200


def test_wrong_current_passwords_count_towards_the_sign_in_lock_of_the_name(app, admin_client):
    for _ in range(4):
        assert _change(admin_client, current="guess").status_code == 422
    fifth = _change(admin_client, current="guess")
    assert fifth.status_code == 429 and fifth.headers["Retry-After"] == "900"
    assert "Too many failed sign-ins for this account. Try again in 15 minutes." in _text(fifth)
    locked = _change(admin_client)  # even the right one, while the lock lasts
    assert locked.status_code == 429
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "admin.login_locked")).scalar_one()
    assert entry.summary.startswith("Sign-in as alice locked for 15 minutes after 5 failed attempts")
    assert db.session.execute(select(Admin)).scalar_one().check_password(ADMIN_PASSWORD)


def test_change_password_without_its_csrf_token_is_refused(admin_client):
    refused = admin_client.post("/account/password", data={"current_password": ADMIN_PASSWORD, "new_password": NEW,
                                                           "confirm_password": NEW}, csrf=False)
    assert refused.status_code in (400, 401, 302)
    assert db.session.execute(select(Admin)).scalar_one().check_password(ADMIN_PASSWORD)
