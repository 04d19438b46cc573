"""Login, logout, the login gate, CSRF and sign-in throttling."""
import logging
import re

import pytest

from portal.models import ActivityEntry
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD, CSRF_INPUT
from portal.extensions import db
from sqlalchemy import select

PROTECTED = ["/", "/servers", "/devices", "/profiles", "/configurations", "/settings/apple",
             "/activity/", "/system/", "/no-such-page"]


def test_every_route_except_login_static_and_favicon_requires_login(app, client):
    rules = {r.rule for r in app.url_map.iter_rules() if "GET" in r.methods and "<" not in r.rule}
    for url in sorted(rules | set(PROTECTED)):
        response = client.get(url)
        if url in ("/login", "/favicon.ico") or url.startswith("/static"):
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


@pytest.mark.parametrize("typed", ["Alice", "ALICE", "  alice ", "aLiCe"])
def test_the_user_name_is_read_whatever_its_case_and_spacing(auth, client, typed):
    response = auth.login(typed)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert b"alice" in client.get("/servers").data


def test_accounts_differing_only_in_case_need_the_exact_spelling(app, auth, client):
    auth.create_admin("Alice", "another long password")
    assert auth.login("alice").status_code == 302  # exact match: the first account
    auth.logout()
    assert auth.login("Alice", "another long password").status_code == 302
    auth.logout()
    assert auth.login("ALICE").status_code == 422  # which one? neither


def test_an_empty_or_too_long_login_form_says_which_field_and_why(auth, client):
    from tests.servers_helpers import field_error

    client.fetch_csrf_token()
    response = client.post("/login", data={"username": "", "password": ""})
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and "This field is required" not in html
    assert field_error(html, "username") == "Enter your user name."
    assert field_error(html, "password") == "Enter your password."
    response = client.post("/login", data={"username": "a" * 81, "password": "correct horse battery"})
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "username") == "The user name can be at most 80 characters."


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


def test_the_sign_in_page_of_an_admin_signed_in_meanwhile_follows_next(auth, client):
    """A page left with "Sign in again" (a poll found the session ended) links to /login?next=<that page>;
    an admin who signed in again in another tab meanwhile is taken to that page, not home."""
    auth.login()
    assert client.get("/login?next=/assignments/retries").headers["Location"] == "/assignments/retries"
    assert client.get("/login?next=https://evil.example/").headers["Location"] == "/"
    assert client.get("/login").headers["Location"] == "/"


@pytest.mark.parametrize("target", ["/%0D%0ASet-Cookie:%20x=1", "/activity/%0A", "/%00", "/%09/evil.example", "/%7F"])
def test_next_with_control_characters_goes_home(auth, client, target):
    """A line break in `next` would be a line break in the Location header: werkzeug refuses it
    (a 500 once signed in), and urlsplit() drops tabs and line breaks before parsing."""
    client.fetch_csrf_token()
    response = client.post(f"/login?next={target}", data={"username": "alice", "password": "correct horse battery"})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert client.get("/servers").status_code == 200  # signed in


def test_a_sign_in_without_its_csrf_token_is_refused_with_a_form_that_works(auth, client):
    """Refused (another site cannot sign a browser in), but as the sign-in form again, name kept, not a "Bad request"
    page: a sign-in page left open while the admin signed in or out in another tab holds an old token."""
    client.fetch_csrf_token()
    response = client.post("/login", data={"username": "alice", "password": "correct horse battery"}, csrf=False)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "This sign-in page was out of date" in html and 'value="alice"' in html and "correct horse" not in html
    assert client.get("/servers").status_code == 302  # not signed in
    client.csrf_token = CSRF_INPUT.search(html).group(1) or CSRF_INPUT.search(html).group(2)
    response = client.post("/login", data={"username": "alice", "password": "correct horse battery"})
    assert response.status_code == 302 and client.get("/servers").status_code == 200


def test_a_stale_sign_in_page_of_an_admin_signed_in_meanwhile_goes_on_to_next(auth, client):
    """Two tabs on the sign-in page: signed in with the second, the first one's Sign in (its token is the old
    session's) takes the admin where the link led."""
    client.fetch_csrf_token("/login")
    stale = client.csrf_token
    assert auth.login().status_code == 302
    client.csrf_token = stale
    response = client.post("/login?next=/activity/", data={"username": "alice", "password": "correct horse battery"})
    assert response.status_code == 302 and response.headers["Location"] == "/activity/"


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


# --- Sign-in throttling (portal/auth/throttle.py) -------------------------------------------

NAME_LOCKED = "Too many failed sign-ins for this account. Try again in {}."
ADDRESS_LOCKED = "Too many failed sign-ins from your network address. Try again in {}."
GENERIC = "Incorrect user name or password."


def _try(client, username, password, address=None, headers=None):
    """Send the login form as a browser would, optionally from another client address."""
    if not client.csrf_token:
        client.fetch_csrf_token()
    return client.post("/login", data={"username": username, "password": password}, headers=headers or {},
                       environ_base={"REMOTE_ADDR": address} if address else {})


def _fail(client, username, times, address=None):
    return [_try(client, username, "wrong password", address) for _ in range(times)]


def _advance(seconds):
    """Move the throttle's clock: every sign-in key in Redis expires `seconds` sooner."""
    from portal.queue import get_redis

    r = get_redis()
    for key in r.scan_iter("ade:login:*"):
        left = r.pttl(key) - seconds * 1000
        if left > 0:
            r.pexpire(key, left)
        else:
            r.delete(key)


@pytest.fixture
def throttle_log(caplog, monkeypatch):
    """caplog for the sign-in loggers (the test schema's Alembic run disables loggers that exist by then)."""
    for name in ("portal.auth.routes", "portal.auth.throttle"):
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
    return caplog


def _text(response):
    return response.get_data(as_text=True)


def _signed_in(client):
    return client.get("/servers").status_code == 200


def test_a_name_is_locked_after_five_failures_and_the_form_says_how_long(auth, client):
    for response in _fail(client, "alice", 4):
        assert response.status_code == 422 and GENERIC in _text(response)
    fifth = _try(client, "alice", "wrong password")
    assert fifth.status_code == 429
    assert NAME_LOCKED.format("15 minutes") in _text(fifth) and GENERIC not in _text(fifth)
    assert fifth.headers["Retry-After"] == "900"
    # The typed name stays in the form; the password does not come back.
    assert 'id="username" maxlength="80" name="username" required type="text" value="alice"' in _text(fifth)
    password_input = re.search(r'<input[^>]*id="password"[^>]*>', _text(fifth)).group(0)
    assert 'value=""' in password_input and "wrong password" not in _text(fifth)

    right = _try(client, "alice", "correct horse battery")
    assert right.status_code == 429 and NAME_LOCKED.format("15 minutes") in _text(right)
    assert not _signed_in(client)


def test_the_correct_password_is_accepted_once_the_lock_has_passed(auth, client):
    _fail(client, "alice", 5)
    _advance(14 * 60 + 1)
    almost = _try(client, "alice", "correct horse battery")
    assert almost.status_code == 429 and NAME_LOCKED.format("1 minute") in _text(almost)
    _advance(60)
    response = _try(client, "alice", "correct horse battery")
    assert response.status_code == 302 and _signed_in(client)


def test_the_wait_doubles_with_each_further_lock(auth, client):
    assert _fail(client, "alice", 5)[-1].status_code == 429
    _advance(15 * 60)
    assert [r.status_code for r in _fail(client, "alice", 5)] == [422] * 4 + [429]
    assert NAME_LOCKED.format("30 minutes") in _text(_try(client, "alice", "correct horse battery"))
    _advance(30 * 60)
    assert NAME_LOCKED.format("60 minutes") in _text(_fail(client, "alice", 5)[-1])
    _advance(60 * 60)
    assert NAME_LOCKED.format("2 hours") in _text(_fail(client, "alice", 5)[-1])


def test_failures_spread_beyond_the_window_do_not_lock(auth, client):
    _fail(client, "alice", 4)
    _advance(15 * 60)
    assert [r.status_code for r in _fail(client, "alice", 5)] == [422] * 4 + [429]  # a new window of five


def test_a_successful_sign_in_clears_the_names_count(auth, client):
    _fail(client, "alice", 4)
    assert _try(client, "alice", "correct horse battery").status_code == 302
    auth.logout()
    client.fetch_csrf_token()
    assert [r.status_code for r in _fail(client, "alice", 4)] == [422] * 4
    assert _try(client, "alice", "wrong password").status_code == 429


def test_unknown_names_are_locked_exactly_like_existing_ones(auth, client, monkeypatch):
    """Same answers, same number of password hash checks: nothing tells whether a name exists."""
    import portal.models.admin as admin_module

    checks = []
    real_check = admin_module.check_password_hash

    def counting_check(*args):
        checks.append(1)
        return real_check(*args)

    monkeypatch.setattr(admin_module, "check_password_hash", counting_check)

    def attempts(name):
        seen = []
        for password in ["wrong password"] * 5 + ["correct horse battery"]:
            checks.clear()
            response = _try(client, name, password)
            seen.append((response.status_code, len(checks), _text(response).count(name),
                         re.findall(r'role="alert">\s*(?:<p>)?([^<]+)', _text(response))))
        return seen

    existing, unknown = attempts("alice"), attempts("nobody")
    assert existing == unknown
    assert [status for status, *_ in existing] == [422] * 4 + [429, 429]
    assert [hash_checks for _, hash_checks, *_ in existing] == [1] * 5 + [0]  # refused before checking


def test_the_name_is_counted_whatever_its_case(auth, client):
    for name in ("Alice", "ALICE", " alice ", "aLiCe"):
        assert _try(client, name, "wrong password").status_code == 422
    response = _try(client, "alice", "wrong password")
    assert response.status_code == 429 and NAME_LOCKED.format("15 minutes") in _text(response)


def test_one_address_is_locked_across_names_while_others_sign_in(auth, client):
    for i in range(19):
        assert _try(client, f"guess{i}", "wrong password").status_code == 422
    twentieth = _try(client, "guess19", "wrong password")
    assert twentieth.status_code == 429 and ADDRESS_LOCKED.format("15 minutes") in _text(twentieth)
    refused = _try(client, "alice", "correct horse battery")
    assert refused.status_code == 429 and ADDRESS_LOCKED.format("15 minutes") in _text(refused)
    # Without TRUSTED_PROXIES a forged X-Forwarded-For changes nothing.
    forged = _try(client, "alice", "correct horse battery", headers={"X-Forwarded-For": "192.0.2.77"})
    assert forged.status_code == 429
    assert _try(client, "alice", "correct horse battery", address="192.0.2.10").status_code == 302


def test_behind_a_trusted_proxy_the_forwarded_client_address_is_counted(auth, app, tmp_path):
    from portal import create_app
    from tests.conftest import PortalClient

    proxied = create_app({"TESTING": True, "INSTANCE_PATH": str(tmp_path / "proxied"), "TRUSTED_PROXIES": 1,
                          "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
                          "REDIS_URL": app.config["REDIS_URL"], "SECRET_KEY": app.config["SECRET_KEY"]})
    proxied.test_client_class = PortalClient
    client = proxied.test_client()
    attacker = {"X-Forwarded-For": "198.51.100.1"}
    for i in range(20):
        _try(client, f"guess{i}", "wrong password", headers=attacker)
    assert _try(client, "alice", "correct horse battery", headers=attacker).status_code == 429
    assert _try(client, "alice", "correct horse battery", headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 302


def test_successful_sign_ins_do_not_count_against_the_address(app, auth, client):
    app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"] = 3
    for _ in range(5):
        assert _try(client, "alice", "correct horse battery").status_code == 302
        auth.logout()
        client.fetch_csrf_token()
    assert [_try(client, name, "wrong password").status_code for name in ("bob", "carol", "dave")] == [422, 422, 429]


def test_parallel_guesses_cannot_slip_past_the_limit(auth, live_server, monkeypatch):
    """Twenty guesses sent at once: five passwords are checked, the other attempts are refused."""
    import threading

    import requests

    import portal.models.admin as admin_module
    from tests.conftest import CSRF_INPUT

    real_check, checks = admin_module.check_password_hash, []
    together = threading.Barrier(6, timeout=0.3)  # trips only if a sixth check runs alongside five others

    def held_check(*args):
        checks.append(1)
        try:
            together.wait()
        except threading.BrokenBarrierError:
            pass
        return real_check(*args)

    monkeypatch.setattr(admin_module, "check_password_hash", held_check)
    browser = requests.Session()
    match = CSRF_INPUT.search(browser.get(f"{live_server.url}/login").text)
    form = {"username": "alice", "password": "wrong password", "csrf_token": match.group(1) or match.group(2)}
    statuses = []

    def guess():
        statuses.append(requests.post(f"{live_server.url}/login", data=form, cookies=browser.cookies.get_dict(),
                                      allow_redirects=False, timeout=10).status_code)

    threads = [threading.Thread(target=guess) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(checks) == 5
    assert sorted(statuses) == [422] * 4 + [429] * 16


def test_a_lock_is_logged_and_written_to_the_activity_log(auth, client, throttle_log):
    _fail(client, "alice", 5)
    _fail(client, "a password typed as a name", 5)
    entries = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "admin.login_locked")
                                 .order_by(ActivityEntry.id)).scalars().all()
    assert [(e.level, e.actor, e.object_label) for e in entries] == [("warning", "127.0.0.1", "alice"),
                                                                     ("warning", "127.0.0.1", None)]
    assert entries[0].summary == "Sign-in as alice locked for 15 minutes after 5 failed attempts (the last from 127.0.0.1)"
    assert "an unknown account name" in entries[1].summary
    assert entries[0].details == {"locked": "name", "address": "127.0.0.1", "failures": 5, "seconds": 900}
    warnings = [r.getMessage() for r in throttle_log.records if r.levelname == "WARNING"]
    assert entries[0].summary in warnings and entries[1].summary in warnings
    assert not any("a password typed as a name" in (e.summary + str(e.details)) for e in entries)
    assert not any("a password typed as a name" in message for message in warnings)
    # Refused attempts during the lock are not recorded again.
    _fail(client, "alice", 3)
    assert len(db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "admin.login_locked")).all()) == 2


def test_limits_are_configurable(app, auth, client):
    app.config.update(LOGIN_MAX_FAILURES=2, LOGIN_LOCKOUT_MINUTES=5)
    assert [r.status_code for r in _fail(client, "alice", 2)] == [422, 429]
    assert NAME_LOCKED.format("5 minutes") in _text(_try(client, "alice", "correct horse battery"))


def test_limits_come_from_the_environment(tmp_path, monkeypatch):
    from portal.config import load_config

    defaults = load_config(str(tmp_path))
    assert (defaults["LOGIN_MAX_FAILURES"], defaults["LOGIN_MAX_FAILURES_PER_ADDRESS"],
            defaults["LOGIN_LOCKOUT_MINUTES"]) == (5, 20, 15)
    monkeypatch.setenv("LOGIN_MAX_FAILURES", "3")
    monkeypatch.setenv("LOGIN_MAX_FAILURES_PER_ADDRESS", "50")
    monkeypatch.setenv("LOGIN_LOCKOUT_MINUTES", "30")
    config = load_config(str(tmp_path))
    assert (config["LOGIN_MAX_FAILURES"], config["LOGIN_MAX_FAILURES_PER_ADDRESS"],
            config["LOGIN_LOCKOUT_MINUTES"]) == (3, 50, 30)


def test_a_new_password_from_the_command_line_lifts_the_lock(auth, client, runner):
    _fail(client, "alice", 5)
    assert _try(client, "alice", "correct horse battery").status_code == 429
    assert runner.invoke(args=["create-admin", "alice", "--update"], input="a brand new password\n").exit_code == 0
    assert _try(client, "alice", "a brand new password").status_code == 302


def test_without_redis_sign_in_still_works_unthrottled(app, auth, client, throttle_log):
    app.config["REDIS_URL"] = "unix:///nonexistent/redis.sock"
    app.extensions["redis"] = None
    assert [r.status_code for r in _fail(client, "alice", 6)] == [422] * 6
    assert _try(client, "alice", "correct horse battery").status_code == 302
    assert any("sign-in throttling skipped: Redis unavailable" in r.getMessage() for r in throttle_log.records)


def test_a_hung_redis_fails_open_within_the_read_timeout(app, auth, client, throttle_log, monkeypatch):
    """A Redis that accepts connections but never answers: sign-in goes on, it does not hang."""
    import socket
    import threading

    import portal.queue

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # connections are accepted by the kernel and never answered
    try:
        monkeypatch.setattr(portal.queue, "READ_TIMEOUT_S", 0.5)
        app.config["REDIS_URL"] = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        app.extensions["redis"] = None
        answers = []
        signing_in = threading.Thread(target=lambda: answers.append(_try(client, "alice", "correct horse battery")),
                                      daemon=True)
        signing_in.start()
        signing_in.join(10)  # without a read timeout it never returns (until the listener closes)
        assert not signing_in.is_alive() and answers[0].status_code == 302
        assert any("Redis unavailable" in r.getMessage() for r in throttle_log.records)
    finally:
        listener.close()


# --- sessions kept on the server (portal/auth/sessions.py) ----------------------------------------

def _copy_of_the_cookie(app, client):
    """Another browser holding a copy of the client's session cookie (stolen, or a forgotten tab)."""
    other = app.test_client()
    other.set_cookie("session", client.get_cookie("session").value)
    return other


def test_signing_out_ends_every_copy_of_the_session_cookie(app, auth, client):
    assert auth.login().status_code == 302
    copy = _copy_of_the_cookie(app, client)
    assert copy.get("/servers").status_code == 200
    assert auth.logout().status_code == 302
    refused = copy.get("/servers")
    assert refused.status_code == 302 and refused.headers["Location"].startswith("/login")
    assert "Your session has ended" in copy.get("/login").get_data(as_text=True)
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "admin.logout")).scalar_one()
    assert entry.summary == "alice signed out"


def test_signing_in_again_starts_a_new_session_with_a_new_csrf_token(auth, client):
    auth.login()
    first = client.csrf_token
    auth.logout()
    auth.login()
    assert client.csrf_token != first
    stale = client.post("/settings/apple", data={"csrf_token": first}, csrf=False)
    assert stale.status_code == 400  # the token of the ended session


def test_a_session_ends_after_the_idle_limit_and_after_the_absolute_limit(app, auth, client, monkeypatch):
    from datetime import timedelta

    from portal.auth import sessions

    auth.login()
    clock = sessions.time.time()
    idle = app.config["SESSION_IDLE_MINUTES"] * 60
    monkeypatch.setattr(sessions.time, "time", lambda: clock + idle - 30)
    assert client.get("/servers").status_code == 200  # in time: the cookie is refreshed
    monkeypatch.setattr(sessions.time, "time", lambda: clock + 2 * idle - 60)
    assert client.get("/servers").status_code == 200  # idle time counts from the last request
    monkeypatch.setattr(sessions.time, "time", lambda: clock + 3 * idle)
    assert client.get("/servers").status_code == 302

    monkeypatch.undo()
    auth.login()
    signed_in = sessions.utcnow()
    limit = timedelta(hours=app.config["SESSION_MAX_HOURS"])
    monkeypatch.setattr(sessions, "utcnow", lambda: signed_in + limit - timedelta(minutes=1))
    assert client.get("/servers").status_code == 200
    monkeypatch.setattr(sessions, "utcnow", lambda: signed_in + limit + timedelta(minutes=1))
    assert client.get("/servers").status_code == 302


POLL = {"HX-Request": "true", "X-Background-Poll": "true"}  # what portal.js sends with a poll


def test_a_poll_does_not_refresh_the_idle_time_while_an_ordinary_request_does(app, auth, client, monkeypatch):
    """A tab left open on a polling page (the retry queue, a synchronization) must not keep the session alive."""
    from portal.auth import sessions

    idle = app.config["SESSION_IDLE_MINUTES"] * 60

    def still_signed_in_after(headers) -> bool:
        """Signed in afresh, a request just before the idle limit, then one just after it: still signed in?"""
        monkeypatch.undo()
        auth.logout()
        auth.login()
        clock = sessions.time.time()
        monkeypatch.setattr(sessions.time, "time", lambda: clock + idle - 30)
        assert client.get("/assignments/retries", headers=headers).status_code == 200  # in time: answered
        monkeypatch.setattr(sessions.time, "time", lambda: clock + idle + 30)
        return client.get("/servers").status_code == 200

    assert still_signed_in_after({})  # a page load
    assert still_signed_in_after({"HX-Request": "true"})  # a request the admin made with htmx (a search, a pop-up)
    assert not still_signed_in_after(POLL)  # idle time still counts from the sign-in


def test_a_session_idle_past_the_limit_ends_though_polls_kept_coming(app, auth, client, monkeypatch):
    """The header can only keep a request from counting: a poll after the limit is refused like any request."""
    from portal.auth import sessions

    auth.login()
    clock = sessions.time.time()
    idle = app.config["SESSION_IDLE_MINUTES"] * 60
    for at in range(120, idle, 120):  # a poll every two minutes, all answered
        monkeypatch.setattr(sessions.time, "time", lambda: clock + at)
        assert client.get("/assignments/retries", headers=POLL).status_code == 200
    monkeypatch.setattr(sessions.time, "time", lambda: clock + idle + 1)
    ended = client.get("/assignments/retries", headers={**POLL, "HX-Current-URL": "http://localhost/assignments/retries"})
    assert ended.status_code == 401 and ended.headers["HX-Redirect"] == "/login?next=/assignments/retries"
    assert client.get("/servers").status_code == 302
    assert "Your session has ended" in client.get("/login").get_data(as_text=True)


def test_a_signed_out_htmx_request_sends_the_whole_page_to_the_sign_in_page(auth, client):
    """Not the sign-in page inside a pop-up: htmx follows HX-Redirect, back to the page afterwards."""
    client.fetch_csrf_token()
    answer = client.post("/servers/add", headers={"HX-Request": "true",
                                                 "HX-Current-URL": "http://localhost/servers?sort=name"})
    assert answer.status_code == 401 and answer.get_data() == b""
    assert answer.headers["HX-Redirect"] == "/login?next=/servers?sort%3Dname"
    elsewhere = client.get("/servers/1/row", headers={"HX-Request": "true", "HX-Current-URL": "https://evil.example/x"})
    assert elsewhere.headers["HX-Redirect"] == "/login"


def test_a_signed_out_form_post_comes_back_to_its_page_not_to_the_post_url(auth, client):
    client.fetch_csrf_token()
    answer = client.post("/servers/1/sync", headers={"Referer": "http://localhost/servers/1"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/login?next=/servers/1"
    signed_in = client.post(answer.headers["Location"], data={"username": "alice", "password": "correct horse battery",
                                                              "csrf_token": client.csrf_token})
    assert signed_in.headers["Location"] == "/servers/1"


def test_a_new_password_from_create_admin_ends_the_admins_sessions(auth, client, runner):
    auth.login()
    changed = runner.invoke(args=["create-admin", "alice", "--update"], input="a brand new password\n")
    assert changed.exit_code == 0 and "(1 signed-in session ended)" in changed.output
    assert client.get("/servers").status_code == 302
    assert auth.login("alice", "a brand new password").status_code == 302


def test_a_form_of_a_session_that_ended_asks_to_sign_in_not_to_reload(auth, client):
    """Its CSRF token belongs to the ended session, and that check comes before the login gate."""
    auth.login()
    old_token = client.csrf_token
    auth.logout()
    answer = client.post("/servers/add", headers={"HX-Request": "true", "X-CSRFToken": old_token,
                                                 "HX-Current-URL": "http://localhost/servers"}, csrf=False)
    assert answer.status_code == 401 and answer.headers["HX-Redirect"] == "/login?next=/servers"
    assert "Your session has ended" in client.get("/login").get_data(as_text=True)


def test_several_signed_out_requests_say_please_sign_in_once(client):
    """Polls of an open page, other tabs, links opened while signed out: each flashed the message, and the
    sign-in page stacked them. It says it once, and again after the next signed-out request."""
    for _ in range(3):
        assert client.get("/devices").status_code == 302
    assert client.get("/assignments/retries", headers={"HX-Request": "true"}).status_code == 401
    page = client.get("/login").get_data(as_text=True)
    assert page.count("Please sign in to continue.") == 1
    assert "Please sign in to continue." not in client.get("/login").get_data(as_text=True)  # shown, then gone
    client.get("/devices")
    assert client.get("/login").get_data(as_text=True).count("Please sign in to continue.") == 1


def test_a_page_whose_session_ended_learns_when_it_is_back_and_its_new_csrf_token(app, auth, client):
    """GET /session, asked by a page whose poll found the session ended when the admin comes back to its tab: signed
    in again, the admin and the token the new session's forms need; signed out, refused like a poll."""
    from portal.models import Admin

    auth.login()
    first = client.csrf_token
    auth.logout()
    refused = client.get("/session", headers={**POLL, "HX-Current-URL": "http://localhost/servers"})
    assert refused.status_code == 401 and refused.headers["HX-Redirect"] == "/login?next=/servers"
    auth.login()
    back = client.get("/session", headers=POLL)
    assert back.status_code == 200 and back.headers["Cache-Control"] == "no-store"
    alice = db.session.execute(select(Admin).where(Admin.username == "alice")).scalar_one()
    assert back.json["admin"] == alice.id
    assert back.json["csrf_token"] != first
    # The token given works for a form of the new session, as the page's old one does not.
    assert client.post("/settings/apple", data={"csrf_token": first}, csrf=False).status_code == 400
    accepted = client.post("/settings/apple", data={"csrf_token": back.json["csrf_token"]}, csrf=False)
    assert accepted.status_code == 422 and "The form expired" not in accepted.get_data(as_text=True)


def test_a_form_of_a_session_that_ended_goes_back_to_its_page_signed_in_again(app, auth, client):
    """Signed out and in again in another tab, then a form of the old session sent: not a "form expired" page where
    what was typed is lost, but its page again, marked for portal.js to put it back (a pop-up's: through a 401)."""
    auth.login()
    old = client.csrf_token
    auth.logout()
    auth.login()
    plain = client.post("/settings/apple", data={"csrf_token": old, "webhook_url": "https://hooks.example.com/x"},
                        headers={"Referer": "http://localhost/settings/apple"}, csrf=False)
    assert plain.status_code == 302 and plain.headers["Location"] == "/settings/apple#unsent-form"
    assert "Nothing was sent: the form was opened in a session that has ended" in \
        client.get("/settings/apple").get_data(as_text=True)
    popup = client.post("/servers/add", headers={"HX-Request": "true", "X-CSRFToken": old,
                                                "HX-Current-URL": "http://localhost/servers?q=Par"}, csrf=False)
    assert popup.status_code == 401 and popup.headers["HX-Redirect"] == "/servers?q=Par"
    elsewhere = client.post("/settings/apple", data={"csrf_token": old},
                            headers={"Referer": "https://evil.example.com/"}, csrf=False)
    assert elsewhere.status_code == 400  # sent from another site: nothing to go back to


def test_a_full_page_form_sent_after_the_session_ended_comes_back_marked_after_sign_in(auth, client):
    auth.login()
    token = client.csrf_token
    auth.logout()
    answer = client.post("/settings/apple", data={"csrf_token": token, "warning_days": "45"},
                         headers={"Referer": "http://localhost/settings/apple"}, csrf=False)
    assert answer.status_code == 302 and answer.headers["Location"] == "/login?next=/settings/apple%23unsent-form"
    client.fetch_csrf_token("/login")
    signed_in = client.post("/login?next=/settings/apple%23unsent-form",
                            data={"username": ADMIN_NAME, "password": ADMIN_PASSWORD, "csrf_token": client.csrf_token})
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/settings/apple#unsent-form"
