"""Route sweep: every rule of app.url_map, with real, unknown and odd values in its URL, odd query
strings, htmx headers and odd form posts, signed in and signed out. No answer may be a 500 (or any
5xx), show a traceback or log an error, and a refused request (signed out, no valid CSRF token)
changes nothing.

The rules, the query keys, the form fields and the htmx targets are read from the app and its
templates, not listed here: a new route, filter or form field is swept without editing this file.
A new URL variable name needs a real value in `shop` below; the sweep fails until it has one.
"""
from __future__ import annotations

import hashlib
import io
import logging
import re
import tempfile
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from urllib.parse import quote, urlencode

import pytest
from sqlalchemy import insert, select
from werkzeug.datastructures import MultiDict

from portal import ROOT, create_app, vault
from portal.extensions import db
from portal.models import (ActivityEntry, AssignmentBatch, AssignmentTask, Device, PendingKeyPair, SyncRun,
                           TrustedCertificate)
from tests.conftest import ADMIN_NAME, ADMIN_PASSWORD, AuthActions
from tests.devices_helpers import _device, _profile, _queue, _seed, _server

PORTAL = ROOT / "portal"
TEMPLATES = ROOT / "templates"
VARIABLE = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
LAST_CHARACTER = "\U0010ffff"
HUGE = 10**30
MANY = 120  # more than the longest page (100)


# ----- what the app declares: rules, query keys, form fields, htmx targets -----------------------

def _url_map_rules() -> list[tuple[str, str]]:
    """(rule, endpoint) of every rule, read from an app built for this purpose only."""
    with tempfile.TemporaryDirectory() as instance:
        app = create_app({"TESTING": True, "INSTANCE_PATH": instance, "SQLALCHEMY_DATABASE_URI": "sqlite://",
                          "REDIS_URL": "redis://127.0.0.1:9/0"})
        return sorted((rule.rule, rule.endpoint) for rule in app.url_map.iter_rules())


RULES = _url_map_rules()


@lru_cache(maxsize=None)
def query_keys() -> tuple[str, ...]:
    """Every query argument or form value the code reads by name, and every input name of the templates."""
    keys = set()
    for path in PORTAL.rglob("*.py"):
        if {"depsim", "apple"} & set(path.relative_to(PORTAL).parts):
            continue
        keys |= set(re.findall(r'\b(?:args|form|source)\.get(?:list)?\(\s*"(\w+)"', path.read_text()))
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        keys |= set(re.findall(r'\bname="(\w+)"', text))
        keys |= set(re.findall(r"url_with\((\w+)=", text))
    from portal.assignments.profile_views import PICK_FILTERS
    from portal.devices.filters import DeviceQuery

    keys |= set(DeviceQuery().to_args()) | set(DeviceQuery.__dataclass_fields__) | set(PICK_FILTERS) | {"server"}
    keys -= {"csrf_token", "viewport", "server_id", "server_fixed"}
    return tuple(sorted(keys))


# url_for() takes these as options, not as query arguments: a page that rebuilds its own URL from
# request.args must not hand them over.
URL_FOR_OPTIONS = ("_anchor", "_method", "_scheme", "_external", "endpoint", "values")


@lru_cache(maxsize=None)
def form_fields() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(text fields, file fields) of every FlaskForm of the portal."""
    from flask_wtf import FlaskForm
    from flask_wtf.file import FileField, MultipleFileField
    from wtforms.fields.core import UnboundField

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    text, files = set(), set()
    for form in subclasses(FlaskForm):
        if not form.__module__.startswith("portal."):
            continue
        for name in dir(form):
            field = getattr(form, name, None)
            if isinstance(field, UnboundField):
                (files if issubclass(field.field_class, (FileField, MultipleFileField)) else text).add(name)
    text.discard("csrf_token")
    return tuple(sorted(text)), tuple(sorted(files))


@lru_cache(maxsize=None)
def htmx_targets() -> tuple[str | None, ...]:
    """The element ids htmx sends as HX-Target (from the templates' hx-target), and none."""
    ids = set()
    for path in TEMPLATES.rglob("*.html"):
        ids |= set(re.findall(r'hx-target="#([\w-]+)"', path.read_text()))
    return (None, *sorted(ids))


# ----- a small shop with one of everything ------------------------------------------------------

@lru_cache(maxsize=None)
def _key_pair():
    from portal.apple.keys import generate_key_pair

    return generate_key_pair(common_name="Sweep key", days=365)


def _certificate(configuration_id: int) -> TrustedCertificate:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    cert = x509.load_pem_x509_certificate(_key_pair().certificate_pem)
    der = cert.public_bytes(Encoding.DER)
    return TrustedCertificate(configuration_id=configuration_id, position=0, der=der,
                              subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                              serial=format(cert.serial_number, "X"), not_before=cert.not_valid_before_utc,
                              not_after=cert.not_valid_after_utc, sha256=hashlib.sha256(der).hexdigest())


@pytest.fixture
def auth(app, client) -> AuthActions:
    """The conftest's `auth`, with an admin whose password hash is quick to check: the sweep signs in
    once per rule, and two scrypt hashes per rule would be a fifth of its time."""
    from werkzeug.security import generate_password_hash

    from portal.models import Admin

    db.session.add(Admin(username=ADMIN_NAME, password_hash=generate_password_hash(ADMIN_PASSWORD, "pbkdf2:sha256:1")))
    db.session.commit()
    return AuthActions(app, client)


@pytest.fixture
def shop(app) -> dict:
    """Real values for every URL variable: a server with a configuration (one certificate), a
    configured profile, devices, a finished sync run, an assignment request (one device waiting,
    one failed), a generated key pair, a queued job and a static file."""
    from portal.queue import enqueue

    now = datetime.now(timezone.utc)  # relative times stay "just now" while the rule is swept
    paris, lyon = _server("Paris", configured=True), _server("Lyon")
    certificate = _certificate(paris.configuration_id)
    db.session.add(certificate)
    staff = _profile(paris, "Staff")
    staff.apple_profile_uuid = "UUID-STAFF"
    _profile(lyon, "Lyon draft", status="not_configured")
    db.session.add(SyncRun(server_id=paris.id, job_id="sweep-sync", trigger="manual", status="succeeded",
                           kind="full", started_at=now, finished_at=now, pages=1, devices_seen=3, added=3))
    pair = _key_pair()
    key = PendingKeyPair(label="Sweep key", certificate_pem=pair.certificate_pem.decode(),
                         key_ciphertext=vault.encrypt(pair.private_key_pem), not_after=now + timedelta(days=365))
    db.session.add(key)
    db.session.commit()
    # More than a page of everything that has pages, so pagers are drawn.
    many = [f"C02{n:05d}" for n in range(MANY)]
    _seed(paris, {"serial_number": "C02AAA1", "profile_id": staff.id, "assignment_state": "assigned"},
          {"serial_number": "DMQ100_"}, {"serial_number": "F17OLD0", "removed_at": now},
          *({"serial_number": serial, "profile_id": staff.id, "assignment_state": "failed", "model": None}
            for serial in many))
    _seed(lyon, {"serial_number": "LYN0001"})
    _queue(paris, staff, "DMQ100_")
    batch = db.session.execute(select(AssignmentBatch)).scalar_one()
    ids = dict(db.session.execute(select(Device.serial_number, Device.id)).all())
    db.session.execute(insert(AssignmentTask), [
        {"batch_id": batch.id, "device_id": ids[serial], "serial_number": serial, "state": "failed", "result": "FAILED",
         "attempts": 1, "retry_at": now + timedelta(hours=24), "updated_at": now} for serial in many])
    db.session.execute(insert(ActivityEntry), [
        {"created_at": now, "actor": "alice", "action": "server.sync_requested", "object_type": "managed_server",
         "object_id": paris.id, "summary": f"Entry {n}", "level": "info"} for n in range(MANY)])
    db.session.commit()
    job = enqueue("jobs.maintenance.heartbeat", "sweep")
    static = sorted(p.relative_to(ROOT / "static").as_posix() for p in (ROOT / "static").rglob("*") if p.is_file())
    return {"server_id": paris.id, "profile_id": staff.id, "configuration_id": paris.configuration_id,
            "certificate_id": certificate.id, "device_id": _device("C02AAA1").id, "batch_id": batch.id,
            "key_id": key.id, "job_id": job.id, "filename": static[0],
            "task_id": db.session.execute(select(AssignmentTask.id).where(AssignmentTask.state == "failed")
                                          .order_by(AssignmentTask.id).limit(1)).scalar_one()}


# ----- the values put in URLs ---------------------------------------------------------------------

def odd_values(converter: str) -> list[str]:
    """Values that should each give an ordinary page (mostly 404), raw (percent-encoded later); the
    first ones are well-formed but unknown."""
    common = ["\u00b2", "\u0663", LAST_CHARACTER, "\x00", "%", "..", "a" * 3000, "\u202e1"]
    if converter == "int":
        return ["2147483647", "0", "2147483648", str(HUGE), "-1", "1.5", "1_000", "", *common]
    if converter == "path":
        return ["missing.css", "css/", "../../README.md", "css/../../pyproject.toml", *common]
    return ["0" * 32, "missing", "-", " ", *common]  # string (default): no empty value, the rule would not match


def urls(rule: str, real: dict) -> tuple[str, list[str]]:
    """The rule with real values, and with each variable in turn unknown or odd (the others real)."""
    variables = [(m.group("converter") or "default", m.group("name")) for m in VARIABLE.finditer(rule)]
    missing = [name for _, name in variables if name not in real]
    assert not missing, f"the sweep has no real value for {missing} of {rule}: add one to the shop fixture"

    def build(values: dict) -> str:
        def put(match):
            safe = "/" if match.group("converter") == "path" else ""
            return quote(str(values[match.group("name")]), safe=safe)
        return VARIABLE.sub(put, rule)

    good = build(real)
    odd = [build({**real, name: value}) for converter, name in variables for value in odd_values(converter)]
    return good, odd


def query_strings(rule: str) -> list[str]:
    """Odd query strings: paging, sorting, each key garbage, repeated, too long, out of range."""
    keys = [*query_keys(), *URL_FOR_OPTIONS, *(m.group("name") for m in VARIABLE.finditer(rule))]
    every = lambda value: urlencode([(key, value) for key in keys])  # noqa: E731
    return [  # page=-1, page=10**30, sort=garbage... come with the others
        every("garbage"), every(""), every(str(HUGE)), every("-1"), every("2"), every("999"), every("\u00b2"),
        every(LAST_CHARACTER), every("\x00"), every("x" * 5000), every("/\r\nX-Injected: 1"), every("/[bad"),
        urlencode([(key, value) for key in keys for value in ("1", "garbage", "", str(HUGE))]),
        "&".join(quote(key) for key in keys),  # keys without '='
        "&".join(f"{quote(key)}=%FF%FE%ED%A0%80" for key in keys),  # not UTF-8 (and an encoded surrogate)
        f"{quote(LAST_CHARACTER)}=1&=x&%00=1&%FF=1&{'k' * 5000}=1",  # odd names
        urlencode([("_scheme", "javascript"), ("_method", "DELETE")]),
    ]


def garbage_forms() -> list[MultiDict]:
    """Form posts: every field of every form with one odd value, or several at once."""
    text, _ = form_fields()
    fields = [*text, *query_keys()]
    forms = [[(name, value) for name in fields] for value in
             ("garbage", "", str(HUGE), "-1", "0", "\u00b2", LAST_CHARACTER, "y" * 20000, "\u202egarbage")]
    forms.append([(name, value) for name in fields for value in ("1", "garbage", "\x00")])
    forms.append([(name, value) for name in fields for value in ("1", "2")])
    return [MultiDict(form) for form in forms]


def garbage_files() -> list[dict]:
    """Multipart posts: every file field with an empty, a garbage and an oddly named file."""
    text, files = form_fields()
    posts = []
    for content, filename in ((b"", ""), (b"garbage", "garbage.pem"), (b"\x00\xff" * 1000, LAST_CHARACTER + ".p7m"),
                              (b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n", "../x.pem")):
        data = {name: "garbage" for name in text}
        data.update({name: (io.BytesIO(content), filename) for name in files})
        posts.append(data)
    return posts


# Forms the sweep knows valid values for, so that their success paths meet the odd query strings and
# headers too (garbage never gets past validation). Routes without an entry are swept with garbage only.
def valid_form(endpoint: str, shop: dict, n: int) -> dict | None:
    """A form `endpoint` accepts (names numbered by `n`, so that each one is new), or None."""
    return {
        "auth.login": {"username": ADMIN_NAME, "password": ADMIN_PASSWORD},
        "configurations.create": {"name": f"Sweep MDM {n}", "url": "https://mdm.example.com/sweep"},
        "configurations.edit": {"name": f"Sweep MDM edited {n}", "url": "https://mdm.example.com/edited"},
        "configurations.assign": {"configuration": str(shop["configuration_id"])},
        "profiles.create": {"name": f"Sweep profile {n}", "is_mdm_removable": "y"},
        "profiles.create_any": {"server_id": str(shop["server_id"]), "name": f"Sweep any {n}", "is_mdm_removable": "y"},
        "profiles.edit": {"name": f"Staff edited {n}", "is_mdm_removable": "y"},
        "settings.apple": {"sync_interval": "3600", "warning_days": "30"},
        "assignments.add_devices": {"device": str(shop["device_id"])},
        "assignments.remove_devices": {"device": str(shop["device_id"])},
    }.get(endpoint)


ODD_REFERERS = ("http://[bad/servers", "/servers/\u00e9", "javascript:alert(1)//servers")


# ----- the sweep ----------------------------------------------------------------------------------

def _snapshot() -> list:
    """Every row of every table (the shop is small)."""
    with db.engine.connect() as conn:
        return [(table.name, conn.execute(select(table).order_by(*table.primary_key.columns)).all())
                for table in db.metadata.sorted_tables]


class Sweep:
    """Sends requests and writes down every answer that breaks the rule."""

    def __init__(self, client, caplog, problems: list | None = None):
        self.client, self.caplog, self.count = client, caplog, 0
        self.problems = [] if problems is None else problems

    def __call__(self, method: str, url: str, **kwargs):
        seen = len(self.caplog.records)
        self.count += 1
        label = f"{method} {url[:200]}{' ' + str(kwargs.get('headers')) if kwargs.get('headers') else ''}"
        try:
            response = self.client.open(url, method=method, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the error handlers themselves failed
            self.problems.append(f"{label}: raised {exc!r}")
            return None
        body = response.get_data(as_text=True)
        errors = [r for r in self.caplog.records[seen:] if r.levelno >= logging.ERROR]
        if response.status_code >= 500 or "Traceback" in body or errors:
            cause = "; ".join(f"{r.getMessage()}: {r.exc_info[1]!r}" if r.exc_info else r.getMessage() for r in errors)
            self.problems.append(f"{label}: {response.status_code} {cause}")
        return response

    @contextmanager
    def unchanged(self, what: str):
        """Requests that must leave the database as it was (compared once for the group: it is slow)."""
        before = _snapshot()
        yield
        if _snapshot() != before:
            self.problems.append(f"{what}: the database changed")


def _shape(response) -> bytes | None:
    """A response's body without its numbers (ids, counts, times), to tell fragments apart."""
    return None if response is None else re.sub(rb"\d+", b"", response.data)


def _htmx(target: str | None = None, current: str | None = None) -> dict:
    headers = {"HX-Request": "true"}
    if target:
        headers["HX-Target"] = target
    if current is not None:
        headers["HX-Current-URL"] = current
    return headers


def test_the_sweep_knows_every_converter():
    """A rule with a converter the sweep cannot fill would be swept with real values only."""
    converters = {m.group("converter") or "default" for rule, _ in RULES for m in VARIABLE.finditer(rule)}
    assert converters <= {"int", "path", "default"}, converters


@pytest.mark.parametrize("rule,endpoint", RULES, ids=[f"{rule} {endpoint}" for rule, endpoint in RULES])
def test_route(rule, endpoint, app, client, auth, shop, caplog):
    caplog.set_level(logging.ERROR)
    methods = next(r.methods for r in app.url_map.iter_rules() if r.rule == rule and r.endpoint == endpoint)
    sweep = Sweep(client, caplog)
    good, odd = urls(rule, shop)

    _signed_out(sweep, app, endpoint, good, odd)
    assert auth.login().status_code == 302, "the sweep could not sign in"
    plain = sweep("GET", good)
    relevant = _gets(sweep, rule, good, odd, plain)
    _refused_posts(sweep, good)
    if "POST" in methods:
        _posts(sweep, endpoint, good, relevant if "GET" in methods else None)
        _valid_posts(sweep, client, rule, endpoint, good, shop)
        sweep("GET", good)  # whatever the posts did (deleted it, say), the page still answers

    assert plain is not None and plain.status_code != 404 or "GET" not in methods, \
        f"GET {good} with real values answered {plain and plain.status_code}: the shop lacks something"
    assert not sweep.problems, f"{len(sweep.problems)} of {sweep.count} requests broke the rule:\n" + \
        "\n".join(sweep.problems)


def _signed_out(sweep: Sweep, app, endpoint: str, good: str, odd: list[str]) -> None:
    """The sign-in page or a 404, and nothing changed, whatever a visitor sends."""
    sweep.client.fetch_csrf_token("/login")  # a valid token, as a visitor's browser has one
    with sweep.unchanged("signed out"):
        stranger = Sweep(app.test_client(), sweep.caplog, sweep.problems)
        stranger.client.set_cookie("session", "garbage." + LAST_CHARACTER)
        stranger("GET", good)
        stranger("POST", good)
        sweep("GET", good, headers=_htmx())
        sweep("POST", good, csrf=False)
        if endpoint != "auth.login":  # signing in may record a lock, and should
            sweep("POST", good)
        for url in (good, *odd):
            sweep("GET", url)


def _gets(sweep: Sweep, rule: str, good: str, odd: list[str], plain) -> list[str | None]:
    """Every htmx target, odd query strings, unknown and odd URL values; returns the htmx targets
    (None: no HX-Target) whose answer differs from the plain page's and from each other's."""
    seen, relevant = {_shape(plain)}, []
    for target in htmx_targets():
        shape = _shape(sweep("GET", good, headers=_htmx(target)))
        if shape not in seen:
            seen.add(shape)
            relevant.append(target)
    for query in query_strings(rule):
        sweep("GET", f"{good}?{query}")
        for target in relevant:
            sweep("GET", f"{good}?{query}", headers=_htmx(target))
    for url in odd:
        sweep("GET", url)
    for url in odd[:4]:  # well-formed unknown ids
        sweep("GET", url, headers=_htmx())
        sweep("POST", url)
    sweep("DELETE", good)
    sweep("PATCH", good)
    return relevant


def _refused_posts(sweep: Sweep, good: str) -> None:
    """Posts without a valid CSRF token are refused and change nothing."""
    with sweep.unchanged("posts without a valid CSRF token"):
        sweep("POST", good, csrf=False)
        sweep("POST", good, headers={"X-CSRFToken": "garbage"})
        sweep("POST", good, csrf=False, data=garbage_forms()[0])
        sweep("POST", good, data={"csrf_token": "garbage"}, headers={"X-CSRFToken": "garbage"})


def _posts(sweep: Sweep, endpoint: str, good: str, relevant: list[str | None] | None) -> None:
    """Posts with a valid token and garbage (they may well do something: only the answers are judged).

    `relevant`: the htmx targets that changed the page's answer; None (no GET) tries them all.
    """
    for number, form in enumerate(garbage_forms()):
        sweep("POST", good, data=form)
        if number < 3:
            sweep("POST", good, data=form, headers=_htmx(current="http://[bad"))
    for files in garbage_files():
        sweep("POST", good, data=files, content_type="multipart/form-data")
    for target in htmx_targets() if relevant is None else [None, *filter(None, relevant)]:
        sweep("POST", good, headers=_htmx(target, current=f"http://localhost{good}"))
    sweep("POST", good, headers=_htmx(current="http://[bad"))
    sweep("POST", good, data=b"{not json", content_type="application/json")
    sweep("POST", good, data=b"name=%FF%FE&url=%ED%A0%80&device=%FF",  # not UTF-8
          content_type="application/x-www-form-urlencoded")
    for referer in ODD_REFERERS:
        sweep("POST", good, headers={"Referer": referer})
    sweep("POST", good)


def _valid_posts(sweep: Sweep, client, rule: str, endpoint: str, good: str, shop: dict) -> None:
    """A form the route accepts, with every odd query string and odd headers (see valid_form)."""
    if valid_form(endpoint, shop, 0) is None:
        return
    for n, query in enumerate(("", *query_strings(rule))):
        if endpoint == "auth.login":
            # Signed out as a browser is: from a signed-in page's token, landing on the sign-in page, whose
            # token (of the new, anonymous session) the next sign-in sends.
            if client.get("/servers").status_code == 200:
                client.fetch_csrf_token("/servers")
                client.post("/logout")
            client.fetch_csrf_token("/login")
        answer = sweep("POST", f"{good}?{query}", data=valid_form(endpoint, shop, n))
        if n == 0:
            assert answer is not None and answer.status_code == 302, \
                f"the valid form of {endpoint} was refused ({answer and answer.status_code})"
    sweep("POST", good, data=valid_form(endpoint, shop, -1), headers=_htmx(current="http://[bad"))
    sweep("POST", good, data=valid_form(endpoint, shop, -2), headers={"Referer": ODD_REFERERS[0]})
