"""Login, logout, the login gate and CSRF."""
import pytest

from portal.models import ActivityEntry
from portal.extensions import db
from sqlalchemy import select

PROTECTED = ["/", "/servers", "/devices", "/profiles", "/configurations", "/settings/apple",
             "/activity/", "/system/", "/no-such-page"]


def test_every_route_except_login_and_static_requires_login(app, client):
    rules = {r.rule for r in app.url_map.iter_rules() if "GET" in r.methods and "<" not in r.rule}
    for url in sorted(rules | set(PROTECTED)):
        response = client.get(url)
        if url in ("/login",) or url.startswith("/static"):
            continue
        assert response.status_code == 302, url
        assert response.headers["Location"].startswith("/login"), url


def test_post_routes_require_login(app, client):
    client.fetch_csrf_token()
    for rule in app.url_map.iter_rules():
        if "POST" in rule.methods and "<" not in rule.rule and rule.endpoint != "auth.login":
            response = client.post(rule.rule)
            assert response.status_code == 302 and "/login" in response.headers["Location"], rule.rule


def test_login_page_and_static_are_public(client):
    assert client.get("/login").status_code == 200
    assert client.get("/static/css/portal.css").status_code == 200


def test_login_then_logout(auth, client):
    response = auth.login()
    assert response.status_code == 302 and response.headers["Location"] == "/"
    page = client.get("/servers")
    assert page.status_code == 200
    assert b"Device Assignment" in page.data and b"alice" in page.data
    response = auth.logout()
    assert response.status_code == 302
    assert client.get("/servers").status_code == 302


@pytest.mark.parametrize("username,password", [("alice", "wrong password"), ("nobody", "correct horse battery")])
def test_wrong_credentials_are_refused_without_saying_which(auth, client, username, password):
    response = auth.login(username, password)
    assert response.status_code == 422
    assert b"Incorrect user name or password." in response.data
    assert client.get("/servers").status_code == 302


def test_login_is_recorded_in_the_activity_log(app, auth):
    auth.login()
    entry = db.session.execute(select(ActivityEntry)).scalar_one()
    assert entry.action == "admin.login" and entry.actor == "alice"


def test_next_only_follows_local_paths(auth, client):
    client.fetch_csrf_token()
    ok = client.post("/login?next=/activity/", data={"username": "alice", "password": "correct horse battery"})
    assert ok.headers["Location"] == "/activity/"
    auth.logout()
    client.fetch_csrf_token()
    evil = client.post("/login?next=https://evil.example/", data={"username": "alice", "password": "correct horse battery"})
    assert evil.headers["Location"] == "/"


def test_post_without_csrf_token_is_refused(auth, client):
    client.fetch_csrf_token()
    response = client.post("/login", data={"username": "alice", "password": "correct horse battery"}, csrf=False)
    assert response.status_code == 400
    assert b"form expired" in response.data
    assert client.get("/servers").status_code == 302


def test_htmx_post_with_header_token_is_accepted_and_without_refused(admin_client):
    ok = admin_client.post("/system/test-job", headers={"HX-Request": "true"})
    assert ok.status_code == 200
    refused = admin_client.post("/system/test-job", headers={"HX-Request": "true"}, csrf=False)
    assert refused.status_code == 400
    assert b"<html" not in refused.data  # a fragment, not a page


def test_passwords_are_hashed_with_scrypt(app, auth):
    from portal.models import Admin

    admin = db.session.execute(select(Admin)).scalar_one()
    assert admin.password_hash.startswith("scrypt:")
    assert "correct horse" not in admin.password_hash


def test_session_cookie_flags(auth, client):
    client.fetch_csrf_token()
    response = client.post("/login", data={"username": "alice", "password": "correct horse battery"})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_session_cookie_is_secure_over_https(auth, client):
    client.fetch_csrf_token("https://localhost/login")
    response = client.post("https://localhost/login",
                           data={"username": "alice", "password": "correct horse battery"},
                           headers={"Referer": "https://localhost/login"})
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"]
