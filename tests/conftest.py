"""Fixtures after the Flask tutorial: app, client, runner, auth, htmx; plus real Redis, a real
database (SQLite by default, PostgreSQL with TEST_DATABASE_URL), a burst worker and the Apple
simulator over real HTTP."""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text
from werkzeug.serving import make_server

from portal import create_app
from portal.extensions import db
from portal.redis_server import embedded_redis_url, stop_embedded_redis

ADMIN_NAME = "alice"
ADMIN_PASSWORD = "correct horse battery"
CSRF_INPUT = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


class PortalClient(FlaskClient):
    """A test client that sends the CSRF token as htmx does, once it has seen one."""

    csrf_token: str | None = None

    def open(self, *args, **kwargs):
        send_csrf = kwargs.pop("csrf", True)
        method = kwargs.get("method", "GET").upper()
        if send_csrf and self.csrf_token and method not in ("GET", "HEAD", "OPTIONS"):
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("X-CSRFToken", self.csrf_token)
            kwargs["headers"] = headers
        # Each request gets its own app context (and database session), as in production,
        # instead of reusing the one the test holds open.
        with self.application.app_context():
            return super().open(*args, **kwargs)

    def fetch_csrf_token(self, url: str = "/login") -> str:
        """Read a CSRF token from a page, as a browser would."""
        html = self.get(url).get_data(as_text=True)
        match = CSRF_INPUT.search(html)
        assert match, f"no CSRF token on {url}"
        self.csrf_token = match.group(1) or match.group(2)
        return self.csrf_token


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real Redis server for the whole run: the embedded one, in a private folder."""
    directory = tmp_path_factory.mktemp("redis")
    url = embedded_redis_url(directory)
    yield url
    stop_embedded_redis(directory)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """The test database: TEST_DATABASE_URL (PostgreSQL) or a SQLite file."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'portal-test.db'}"
    return url


@pytest.fixture(scope="session")
def _schema(database_url, redis_url, tmp_path_factory):
    """Bring the test database to the current schema once, through the real migrations."""
    from flask_migrate import upgrade

    app = create_app(_test_config(tmp_path_factory.mktemp("schema"), database_url, redis_url))
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:  # start clean whatever a previous run left behind
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade()
    return database_url


def _test_config(instance: Path, database_url: str, redis_url: str) -> dict:
    from portal.config import database_url as normalise

    return {
        "TESTING": True,
        "INSTANCE_PATH": str(instance),
        "SQLALCHEMY_DATABASE_URI": normalise(database_url, instance),
        "REDIS_URL": redis_url,
        "APPLE_DEP_URL": "http://127.0.0.1:9",  # nothing listens: a test that needs Apple uses `depsim`
        "DEPSIM_STATE_DIR": str(instance / "depsim"),
        "APPLE_RETRY_BACKOFF": 0.01,  # retries stay real, the waits between them short
    }


@pytest.fixture
def app(tmp_path, _schema, redis_url):
    """A portal app on the migrated test database, emptied before each test, and a clean Redis."""
    app = create_app(_test_config(tmp_path / "instance", _schema, redis_url))
    app.test_client_class = PortalClient
    with app.app_context():
        _empty_tables()
        from portal.queue import get_redis

        get_redis().flushdb()
        yield app
        db.session.remove()
        db.engine.dispose()  # each test's app has its own pool: without this PostgreSQL keeps ~80 connections open


def _empty_tables() -> None:
    with db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def client(app) -> PortalClient:
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class AuthActions:
    """Log in and out through the real endpoints."""

    def __init__(self, app, client: PortalClient):
        self._app = app
        self._client = client

    def create_admin(self, username: str = ADMIN_NAME, password: str = ADMIN_PASSWORD):
        from portal.models import Admin

        with self._app.app_context():
            admin = Admin(username=username)
            admin.set_password(password)
            db.session.add(admin)
            db.session.commit()

    def login(self, username: str = ADMIN_NAME, password: str = ADMIN_PASSWORD):
        self._client.fetch_csrf_token("/login")
        response = self._client.post("/login", data={"username": username, "password": password,
                                                     "csrf_token": self._client.csrf_token})
        if response.status_code == 302:
            # Signing in starts a new session with a new CSRF token: read it from a page, as a browser does.
            self._client.fetch_csrf_token("/servers")
        return response

    def logout(self):
        # Sign out is pressed on a signed-in page, whose CSRF token belongs to the current session.
        page = self._client.get("/servers")
        match = CSRF_INPUT.search(page.get_data(as_text=True)) if page.status_code == 200 else None
        if match:
            self._client.csrf_token = match.group(1) or match.group(2)
        return self._client.post("/logout")


@pytest.fixture
def auth(app, client) -> AuthActions:
    """An admin exists; `auth.login()` signs in through the login form."""
    actions = AuthActions(app, client)
    actions.create_admin()
    return actions


@pytest.fixture
def admin_client(auth, client) -> PortalClient:
    """A client signed in as an admin."""
    response = auth.login()
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


@pytest.fixture
def htmx(admin_client) -> PortalClient:
    """A signed-in client whose requests look like htmx's (HX-Request: true)."""
    admin_client.environ_base["HTTP_HX_REQUEST"] = "true"
    return admin_client


@pytest.fixture
def run_jobs(app):
    """Run every queued job in a burst worker inside the app context; return the failed jobs."""
    from rq.registry import FailedJobRegistry

    from portal.queue import get_queue
    from portal.worker import make_worker

    def run(queues=("default",)):
        make_worker(app, list(queues), simple=True).work(burst=True, with_scheduler=False)
        registry = FailedJobRegistry(queue=get_queue())
        return [get_queue().fetch_job(job_id) for job_id in registry.get_job_ids()]

    return run


@pytest.fixture
def depsim(tmp_path):
    """The bundled Apple simulator, serving real HTTP on a free local port."""
    from portal.depsim.testing import running_simulator

    with running_simulator(tmp_path / "depsim") as sim:
        yield sim


@pytest.fixture
def apple(app, depsim):
    """The simulator, with the portal pointed at it."""
    app.config["APPLE_DEP_URL"] = depsim.url
    return depsim


@pytest.fixture
def live_server(app):
    """The portal served over real HTTP on a free port (for browser tests)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_port}"
    yield server
    server.shutdown()
    thread.join(timeout=5)
