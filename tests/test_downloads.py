"""Downloads named after a server, key pair or configuration: the Content-Disposition header stays pure ASCII
(a real HTTP server cannot send anything else) and carries the real name in RFC 6266 `filename*`."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from sqlalchemy import insert, select

from portal import vault
from portal.downloads import attachment
from portal.devices.counts import recount
from portal.extensions import db
from portal.models import Device, ManagedServer, PendingKeyPair
from tests.test_configurations import create, make_cert, pem

NOW = datetime.now(timezone.utc).replace(microsecond=0)
TOKYO = "東京 MDM"


def _server(name: str) -> ManagedServer:
    server = ManagedServer(name=name, token_ciphertext=vault.encrypt("{}"), key_ciphertext=vault.encrypt("k"),
                           consumer_key=f"CK_{name}", token_expiry=NOW + timedelta(days=365))
    db.session.add(server)
    db.session.commit()
    db.session.execute(insert(Device), [{"server_id": server.id, "serial_number": "C02TOKYO1", "first_seen_at": NOW,
                                         "updated_at": NOW, "fetch_generation": 1, "os": "iOS",
                                         "device_family": "iPhone", "model": "iPhone 15", "profile_status": "empty"}])
    recount(server.id)  # as a sync leaves it
    db.session.commit()
    return server


def _disposition(response) -> str:
    """The header as the HTTP server would send it: it must encode as Latin-1, and be plain ASCII."""
    header = response.headers["Content-Disposition"]
    header.encode("latin-1")
    assert header.isascii(), header
    return header


@pytest.mark.parametrize("name, slug, fallback", [(TOKYO, "東京-mdm", "mdm"), ("Café", "café", "cafe")])
def test_device_export_of_a_server_with_a_non_ascii_name(admin_client, name, slug, fallback):
    server = _server(name)
    response = admin_client.get(f"/servers/{server.id}/devices.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    header = _disposition(response)
    assert header.startswith(f'attachment; filename="devices-{fallback}-')
    assert f"filename*=UTF-8''{quote(f'devices-{slug}-')}" in header and header.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["serial_number"], r["managed_server"]) for r in rows] == [("C02TOKYO1", name)]
    # The export of every server is named "all", whatever the servers are called: plain ASCII as before.
    every = admin_client.get("/devices.csv")
    every_header = _disposition(every)
    assert every_header.startswith('attachment; filename="devices-all-') and "filename*" not in every_header
    assert "C02TOKYO1" in every.get_data(as_text=True)
    # The global list filtered to one server is named after it too.
    filtered = _disposition(admin_client.get(f"/devices.csv?server={server.id}"))
    assert f"filename*=UTF-8''{quote(f'devices-{slug}-')}" in filtered


@pytest.mark.parametrize("url, stem", [
    ("/devices.csv", "devices-all"),
    ("/devices.csv?sort=model&direction=desc", "devices-all"),  # sorted, still every device
    ("/devices.csv?family=iPhone", "devices-filtered"),
    ("/devices.csv?q=C02&removed=all", "devices-filtered"),
    ("/devices.csv?server={id}", "devices-paris-lab-2"),
    ("/devices.csv?server={id}&assignment=queued", "devices-paris-lab-2-filtered"),
    ("/servers/{id}/devices.csv", "devices-paris-lab-2"),
    ("/servers/{id}/devices.csv?profile=none", "devices-paris-lab-2-filtered"),
])
def test_device_export_is_named_after_its_filter(admin_client, url, stem):
    server = _server("Paris / Lab #2")  # a name with characters no file name may hold
    header = _disposition(admin_client.get(url.format(id=server.id)))
    assert re.fullmatch(r'attachment; filename="%s-\d{8}-\d{4}\.csv"' % stem, header), header


def test_certificate_of_a_key_pair_with_a_non_ascii_name(htmx):
    assert htmx.post("/servers/keys/new", data={"common_name": TOKYO, "days": "400"}).status_code == 200
    pending = db.session.execute(select(PendingKeyPair)).scalar_one()
    response = htmx.get(f"/servers/keys/{pending.id}/certificate.pem")
    assert response.status_code == 200 and response.mimetype == "application/x-pem-file"
    assert _disposition(response) == f"attachment; filename=\"MDM.pem\"; filename*=UTF-8''{quote('東京-MDM.pem')}"
    assert response.get_data(as_text=True) == pending.certificate_pem


def test_certificates_of_a_configuration_with_a_non_ascii_name(htmx):
    certificate = make_cert("mdm-tokyo.example.com")[0]
    configuration = create(htmx, TOKYO, files=[("a.pem", pem(certificate))])
    response = htmx.get(f"/configurations/{configuration.id}/certificates.pem")
    assert response.status_code == 200 and response.data == pem(certificate)
    assert _disposition(response) == f"attachment; filename=\"MDM.pem\"; filename*=UTF-8''{quote('東京-MDM.pem')}"


@pytest.mark.parametrize("filename, expected", [
    ("plain-name_1.pem", 'attachment; filename="plain-name_1.pem"'),
    ("東京.pem", "attachment; filename=\"download.pem\"; filename*=UTF-8''%E6%9D%B1%E4%BA%AC.pem"),
    ('say "hi"; x=1.csv', "attachment; filename=\"say-hi-x-1.csv\"; "
                          "filename*=UTF-8''say%20%22hi%22%3B%20x%3D1.csv"),
])
def test_attachment_header_is_ascii_never_empty_and_quotes_nothing_unsafe(filename, expected):
    assert attachment(filename) == expected


@pytest.mark.parametrize("download,page", [
    ("/activity/activity.csv?level=warning", "/activity/?level=warning"),
    ("/devices.csv?q=C02", "/devices?q=C02"),
])
def test_a_download_asked_for_after_the_session_ended_signs_in_then_goes_back_to_its_page(client, auth, download,
                                                                                          page):
    """Export CSV is a link to a file: with a `download` attribute the browser saved the sign-in page as "login.html";
    without it the sign-in page shows, and after it the admin is back on the list (the file would have left the
    sign-in page shown), to export again."""
    auth.login()
    auth.logout()
    answer = client.get(download, headers={"Referer": f"http://localhost{page}"})
    assert answer.status_code == 302 and _next(answer) == page
    direct = client.get(download)  # typed or bookmarked: nothing to go back to but the file itself
    assert _next(direct) == download


def _next(answer) -> str:
    from urllib.parse import parse_qs, urlsplit

    location = urlsplit(answer.headers["Location"])
    assert location.path == "/login"
    return parse_qs(location.query)["next"][0]


def test_links_to_files_let_the_server_name_them():
    """No `download` attribute on any link (see above): Content-Disposition names the file."""
    from pathlib import Path

    templates = Path(__file__).resolve().parent.parent / "templates"
    offending = [str(path.relative_to(templates)) for path in templates.rglob("*.html")
                 if re.search(r"<a\s[^>]*\bdownload\b(?!=)", path.read_text(encoding="utf-8"))]
    assert offending == []
