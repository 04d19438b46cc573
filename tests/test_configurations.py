"""MDM Server Configurations through the web UI: create/edit/delete with good and bad certificates
and URLs, Assign / Unassign Server Configuration on managed servers, pop-ups and plain pages."""
from __future__ import annotations

import base64
import html
import io
import json
import re
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import ActivityEntry, ManagedServer, ServerConfiguration, TrustedCertificate
from tests.conftest import CSRF_INPUT
from tests.servers_helpers import Identity, field_error, post_add_server, server_named

NOW = datetime.now(timezone.utc)
URL = "https://mdm.example.com/enroll"


# ----- certificates and helpers ---------------------------------------------------------------

def make_cert(cn: str, *, not_before: datetime | None = None, not_after: datetime | None = None,
              issuer: tuple | None = None) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for `cn`, self-signed unless `issuer` = (issuer cert, issuer key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - timedelta(days=1))
            .not_valid_after(not_after or NOW + timedelta(days=365))
            .sign(signing_key, hashes.SHA256()))
    return cert, key


def pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def der(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def sha256(cert) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def p7b(certs, encoding=serialization.Encoding.DER) -> bytes:
    """A PKCS#7 certs-only bundle (.p7b) as cryptography's serializer writes it (the shape of openssl crl2pkcs7)."""
    return pkcs7.serialize_certificates(list(certs), encoding)


# What `openssl crl2pkcs7 -nocrl -outform DER` writes: a well-formed certs-only bundle without certificates
# (cryptography's serializer refuses to build one).
EMPTY_P7B = bytes.fromhex("302306092a864886f70d010702a01630140201013100300b06092a864886f70d0107013100")


def key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def form_data(name="Production MDM", url=URL, files=(), pasted="", remove=()) -> dict:
    data = {"name": name, "url": url, "certificates_pem": pasted}
    if files:
        data["certificate_files"] = [(io.BytesIO(content), filename) for filename, content in files]
    if remove:
        data["remove"] = [str(i) for i in remove]
    return data


def post(client, path, headers=None, **kwargs):
    return client.post(path, data=form_data(**kwargs), content_type="multipart/form-data", headers=headers or {})


def configuration_named(name: str) -> ServerConfiguration | None:
    db.session.expire_all()
    return db.session.execute(select(ServerConfiguration).where(ServerConfiguration.name == name)).scalar_one_or_none()


def count(model) -> int:
    db.session.expire_all()
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def events(response) -> dict:
    return json.loads(response.headers.get("HX-Trigger", "{}"))


def actions() -> list[str]:
    """The activity entries of this area (not sign-ins or server events), oldest first."""
    db.session.expire_all()
    return [a for a in db.session.execute(select(ActivityEntry.action).order_by(ActivityEntry.id)).scalars()
            if a.startswith(("configuration.", "server.configuration_"))]


@pytest.fixture
def cert_a():
    return make_cert("mdm-a.example.com")[0]


@pytest.fixture
def server_row(app):
    """A managed server row (assignment needs no call to Apple)."""
    return _server_row("Paris")


def _server_row(name: str) -> ManagedServer:
    from portal import vault

    row = ManagedServer(name=name, token_ciphertext=vault.encrypt("{}"), key_ciphertext=vault.encrypt("k"),
                        consumer_key=f"CK_{name}", token_expiry=NOW + timedelta(days=365))
    db.session.add(row)
    db.session.commit()
    return row


def create(client, name="Production MDM", **kwargs) -> ServerConfiguration:
    response = post(client, "/configurations/new", name=name, **kwargs)
    assert response.status_code in (204, 302), response.get_data(as_text=True)
    return configuration_named(name)


# ----- list, create ---------------------------------------------------------------------------

def test_empty_state_explains_configurations(admin_client):
    html = admin_client.get("/configurations").get_data(as_text=True)
    assert "No MDM server configurations yet" in html
    assert "Create Configuration" in html and "Assign Server Configuration" in html


def test_create_with_pem_der_and_chain_files(htmx, cert_a):
    root, root_key = make_cert("Example Root CA", not_after=NOW + timedelta(days=3650))
    leaf, _ = make_cert("mdm.example.com", issuer=(root, root_key))
    other = make_cert("other.example.com")[0]
    response = post(htmx, "/configurations/new", files=[("a.pem", pem(cert_a)), ("other.der", der(other)),
                                                         ("chain.pem", pem(leaf) + pem(root))])
    assert response.status_code == 204, response.get_data(as_text=True)
    assert {"closeModal", "configurationsChanged", "toast"} <= set(events(response))
    configuration = configuration_named("Production MDM")
    assert configuration.url == URL
    stored = [(c.subject, c.sha256, c.der, c.position) for c in configuration.certificates]
    assert [s[0] for s in stored] == ["CN=mdm-a.example.com", "CN=other.example.com", "CN=mdm.example.com",
                                      "CN=Example Root CA"]
    assert [s[1] for s in stored] == [sha256(c) for c in (cert_a, other, leaf, root)]
    assert stored[3][2] == der(root) and [s[3] for s in stored] == [0, 1, 2, 3]
    assert configuration.certificates[2].issuer == "CN=Example Root CA"

    page = htmx.get(f"/configurations/{configuration.id}").get_data(as_text=True)
    fp = cert_a.fingerprint(hashes.SHA256()).hex(":").upper()
    assert URL in page and "CN=mdm.example.com" in page and fp in page
    assert page.count(">Valid</span>") == 4
    listing = htmx.get("/configurations").get_data(as_text=True)
    assert "Production MDM" in listing and URL in listing and "No server" in listing
    assert actions() == ["configuration.created"]


def test_pasted_chain_and_duplicates_are_kept_once(htmx, cert_a):
    root, root_key = make_cert("Root")
    leaf, _ = make_cert("leaf", issuer=(root, root_key))
    response = post(htmx, "/configurations/new", files=[("a.pem", pem(cert_a)), ("again.der", der(cert_a))],
                    pasted=(pem(leaf) + pem(root) + pem(cert_a)).decode())
    assert response.status_code == 204
    assert "2 duplicates kept once" in events(response)["toast"]["message"]
    configuration = configuration_named("Production MDM")
    assert [c.sha256 for c in configuration.certificates] == [sha256(cert_a), sha256(leaf), sha256(root)]


def test_certificates_re_saved_by_an_editor_or_pasted_on_one_line_are_read(htmx, cert_a):
    root, root_key = make_cert("Root")
    leaf, _ = make_cert("leaf", issuer=(root, root_key))
    response = post(htmx, "/configurations/new",
                    files=[("a.pem", b"\xef\xbb\xbf" + pem(cert_a).replace(b"\n", b"\r")),
                           ("chain.pem", (pem(leaf) + pem(root)).decode().encode("utf-16"))],
                    pasted=" ".join(pem(root).decode().split("\n")))
    assert response.status_code == 204, response.get_data(as_text=True)
    configuration = configuration_named("Production MDM")
    assert [c.sha256 for c in configuration.certificates] == [sha256(cert_a), sha256(leaf), sha256(root)]


def test_pkcs7_bundles_are_read_and_stored_like_a_chain(htmx, cert_a):
    root, root_key = make_cert("Example Root CA", not_after=NOW + timedelta(days=3650))
    leaf, _ = make_cert("mdm.example.com", issuer=(root, root_key))
    other = make_cert("other.example.com")[0]
    pem_bundle = p7b([other], serialization.Encoding.PEM)
    assert pem_bundle.startswith(b"-----BEGIN PKCS7-----")
    chain = p7b([leaf, root])
    in_file = pkcs7.load_der_pkcs7_certificates(chain)  # a DER SET OF: the serializer may reorder them
    assert sorted(map(sha256, in_file)) == sorted(map(sha256, (leaf, root)))
    response = post(htmx, "/configurations/new", files=[("chain.p7b", chain), ("a.pem", pem(cert_a)),
                                                        ("other.p7c", pem_bundle.replace(b"\n", b"\r\n"))])
    assert response.status_code == 204
    configuration = configuration_named("Production MDM")
    stored = [(c.sha256, c.der, c.position, c.subject, c.issuer) for c in configuration.certificates]
    assert stored == [(sha256(c), der(c), i, c.subject.rfc4514_string(), c.issuer.rfc4514_string())
                      for i, c in enumerate((*in_file, cert_a, other))]
    assert "4 certificates added" in events(response)["toast"]["message"]


def test_a_pasted_pem_pkcs7_bundle_is_read_next_to_certificates(htmx, cert_a):
    root, root_key = make_cert("Root")
    leaf, _ = make_cert("leaf", issuer=(root, root_key))
    bundle = p7b([leaf, root], serialization.Encoding.PEM)
    pasted = pem(cert_a) + b"\n" + bundle.replace(b"PKCS7", b"PKCS #7 SIGNED DATA")  # the label older tools write
    create(htmx, pasted=pasted.decode())
    assert [c.sha256 for c in configuration_named("Production MDM").certificates] == \
        [sha256(c) for c in (cert_a, *pkcs7.load_pem_pkcs7_certificates(bundle))]


def test_configuration_without_certificates_is_allowed(htmx):
    configuration = create(htmx)
    assert configuration.certificates == []
    assert "No certificates" in htmx.get(f"/configurations/{configuration.id}").get_data(as_text=True)


def test_expired_and_not_yet_valid_certificates_are_flagged(htmx, cert_a):
    expired = make_cert("old", not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=5))[0]
    future = make_cert("future", not_before=NOW + timedelta(days=10), not_after=NOW + timedelta(days=400))[0]
    soon = make_cert("soon", not_after=NOW + timedelta(days=7))[0]
    create(htmx, "Future", files=[("f.pem", pem(future)), ("a.pem", pem(cert_a))])
    configuration = create(htmx, files=[("a.pem", pem(cert_a)), ("old.pem", pem(expired)), ("soon.pem", pem(soon))])
    page = htmx.get(f"/configurations/{configuration.id}").get_data(as_text=True)
    assert "badge-error\" title=" in page and ">Expired</span>" in page and ">Expires soon</span>" in page
    listing = htmx.get("/configurations").get_data(as_text=True)
    rows = dict(re.findall(r'<tr id="configuration-\d+">.*?<strong>(.*?)</strong>.*?<td class="nowrap">(.*?)</td>',
                           listing, re.S))
    assert "3" in rows["Production MDM"] and "Expired" in rows["Production MDM"]  # the worst status
    assert "2" in rows["Future"] and "Not yet valid" in rows["Future"]


def test_saving_a_certificate_that_is_not_valid_today_says_so_at_once(htmx, cert_a):
    """"2 certificates added", and nothing more, for a certificate that expired in 2020: the Expired badge showed
    later, on a page the admin had no reason to open, and Configure profile would send it to Apple."""
    expired = make_cert("old", not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=5))[0]
    future = make_cert("future", not_before=NOW + timedelta(days=10), not_after=NOW + timedelta(days=400))[0]
    response = post(htmx, "/configurations/new", name="Production MDM", files=[("a.pem", pem(cert_a)),
                                                                              ("old.pem", pem(expired))])
    toast = events(response)["toast"]
    assert toast["category"] == "warning", toast
    assert (f"This certificate is not valid today: CN=old expired on {NOW - timedelta(days=5):%Y-%m-%d}. Devices will "
            "not trust it: add a current one (and remove it).") in toast["message"]
    configuration = configuration_named("Production MDM")

    # An edit speaks of the certificates it adds only.
    response = post(htmx, f"/configurations/{configuration.id}/edit", name="Production MDM", url=URL,
                    files=[("future.pem", pem(future))])
    toast = events(response)["toast"]
    assert toast["category"] == "warning" and "CN=old" not in toast["message"]
    assert "These certificates are" not in toast["message"]
    assert f"CN=future not valid before {NOW + timedelta(days=10):%Y-%m-%d}" in toast["message"]
    response = post(htmx, f"/configurations/{configuration.id}/edit", name="Renamed", url=URL)
    assert events(response)["toast"]["category"] == "success"
    assert "not valid today" not in events(response)["toast"]["message"]


@pytest.mark.parametrize("case", ["garbage", "private_key_pem", "private_key_der", "empty", "csr", "broken_pem",
                                  "cert_with_key", "truncated_chain", "pasted_garbage", "empty_p7b", "empty_pem_p7b",
                                  "truncated_p7b", "broken_pem_p7b", "encrypted_pkcs7"])
def test_bad_certificates_are_refused_naming_the_file_and_nothing_is_saved(htmx, cert_a, case):
    cert, key = make_cert("with-key")
    files, pasted, field, expected = [("good.pem", pem(cert_a))], "", "certificate_files", "bad.pem"
    if case == "garbage":
        files.append(("bad.pem", b"hello, I am a text file\n"))
    elif case == "private_key_pem":
        files.append(("bad.pem", key_pem(key)))
        expected = "private key"
    elif case == "private_key_der":
        files.append(("bad.pem", key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption())))
        expected = "private key"
    elif case == "empty":
        files.append(("bad.pem", b""))
        expected = "empty"
    elif case == "csr":
        csr = x509.CertificateSigningRequestBuilder().subject_name(cert.subject).sign(key, hashes.SHA256())
        files.append(("bad.pem", csr.public_bytes(serialization.Encoding.PEM)))
        expected = "CERTIFICATE REQUEST"
    elif case == "broken_pem":
        body = pem(cert).split(b"\n")
        files.append(("bad.pem", b"\n".join(body[:3] + [b"AAAA" + body[3][4:]] + body[4:])))
        expected = "damaged"
    elif case == "cert_with_key":
        files.append(("bad.pem", pem(cert) + key_pem(key)))
        expected = "private key"
    elif case == "truncated_chain":  # the second certificate of the chain was cut short when copying
        files.append(("bad.pem", pem(cert) + pem(cert_a)[:200]))
        expected = "incomplete"
    elif case == "pasted_garbage":
        pasted, field, expected = "-----BEGIN CERTIFICATE-----\nnot base64 at all\n", "certificates_pem", "pasted"
    elif case == "empty_p7b":
        files.append(("bad.pem", EMPTY_P7B))
        expected = "PKCS#7 bundle (.p7b) holds no certificates"
    elif case == "empty_pem_p7b":
        body = base64.encodebytes(EMPTY_P7B)
        files.append(("bad.pem", b"-----BEGIN PKCS7-----\n" + body + b"-----END PKCS7-----\n"))
        expected = "PKCS#7 bundle (.p7b) holds no certificates"
    elif case == "truncated_p7b":  # the download was cut short
        files.append(("bad.pem", p7b([cert, cert_a])[:-40]))
        expected = "PKCS#7 bundle (.p7b) is damaged"
    elif case == "broken_pem_p7b":
        files.append(("bad.pem", p7b([cert], serialization.Encoding.PEM).replace(b"\n", b"\n*", 1)))
        expected = "PKCS#7 bundle is damaged"
    elif case == "encrypted_pkcs7":  # e.g. an Apple server token chosen in the wrong field
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        recipient = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.subject)
                     .public_key(rsa_key.public_key()).serial_number(1).not_valid_before(NOW)
                     .not_valid_after(NOW + timedelta(days=1)).sign(rsa_key, hashes.SHA256()))
        files.append(("bad.pem", pkcs7.PKCS7EnvelopeBuilder().set_data(b"secret").add_recipient(recipient)
                      .encrypt(serialization.Encoding.DER, [])))
        expected = "encrypted PKCS#7 message"
    response = post(htmx, "/configurations/new", name="Typed name", url="https://typed.example.com/mdm",
                    files=files, pasted=pasted)
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    message = field_error(html, field)
    assert expected in message, message
    if field == "certificate_files":
        assert "bad.pem" in message and "good.pem" not in message
    assert 'value="Typed name"' in html and 'value="https://typed.example.com/mdm"' in html
    assert count(ServerConfiguration) == 0 and count(TrustedCertificate) == 0
    assert actions() == []


def test_every_bad_file_is_named(htmx):
    response = post(htmx, "/configurations/new", files=[("one.txt", b"junk"), ("two.txt", b"more junk")])
    message = field_error(response.get_data(as_text=True), "certificate_files")
    assert "one.txt" in message and "two.txt" in message


def test_a_bad_file_is_named_together_with_the_other_fields_errors(htmx, cert_a):
    """Files are not kept after an error: a bad one must be named on the first refusal, not after the others are fixed."""
    create(htmx, "Main MDM")
    for path in ("/configurations/new", f"/configurations/{configuration_named('Main MDM').id}/edit"):
        name = "main mdm" if path.endswith("new") else ""
        response = post(htmx, path, name=name, url="http://mdm.example.com/enroll",
                        files=[("good.pem", pem(cert_a)), ("junk.cer", b"junk")], pasted="not a certificate")
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert field_error(page, "name") and "Use https://" in field_error(page, "url"), path
        assert "junk.cer" in field_error(page, "certificate_files") and "good.pem" not in field_error(
            page, "certificate_files"), path
        assert "pasted" in field_error(page, "certificates_pem"), path
    assert count(ServerConfiguration) == 1 and actions() == ["configuration.created"]


@pytest.mark.parametrize("url,expected", [
    ("http://mdm.example.com/enroll", "Use https://"),
    ("not a url", "spaces"),
    ("mdm.example.com/enroll", "starting with https://"),
    ("ftp://mdm.example.com/", "starting with https://"),
    ("https://", "starting with https://"),
    ("https://mdm.example.com/enroll#frag", "#"),
    ("https://user:pw@mdm.example.com/", "password"),
    ("https://mdm.example.com:99999/", "not a valid URL"),
    ("https://mdm.example.com:0/enroll", "Port 0 is not a port"),
    ('https://mdm.example.com/enroll?a=<b>&c="x"', 'cannot hold these characters as typed: " < >'),
    ("https://mdm.example.com/" + "a" * 2000, "at most 2,000"),
    # Apple counts the URL percent-encoded (README, reference §3.6): 24 + 330 × 6 characters
    ("https://mdm.example.com/" + "é" * 330, "The URL is 2,004 characters long; at most 2,000 are allowed. "
                                             "Apple counts the URL percent-encoded"),
    ("", "Enter the MDM server URL"),
    # To a device, these name the device itself: it could never enroll.
    ("https://localhost/enroll", "Devices cannot reach localhost: to each device it means the device itself."),
    ("https://LOCALHOST./enroll", "Devices cannot reach localhost"),
    ("https://mdm.localhost:8443/", "Devices cannot reach mdm.localhost"),
    ("https://127.0.0.1/enroll", "Devices cannot reach 127.0.0.1"),
    ("https://127.1.2.3/enroll", "Devices cannot reach 127.1.2.3"),
    ("https://[::1]:8443/enroll", "Devices cannot reach ::1"),
    ("https://0.0.0.0/enroll", "Devices cannot reach 0.0.0.0"),
])
def test_bad_urls_are_refused_with_a_clear_message(htmx, cert_a, url, expected):
    response = post(htmx, "/configurations/new", url=url, files=[("a.pem", pem(cert_a))])
    assert response.status_code == 422
    assert expected in html.unescape(field_error(response.get_data(as_text=True), "url"))
    assert count(ServerConfiguration) == 0


def test_duplicate_name_is_refused(htmx):
    create(htmx, "Production MDM")
    create(htmx, "Évry MDM")
    for name in ("Production MDM", "production mdm", "  Production MDM ", "ÉVRY mdm"):  # any script's case
        response = post(htmx, "/configurations/new", name=name, url="https://other.example.com/")
        assert response.status_code == 422
        assert "already exists" in field_error(response.get_data(as_text=True), "name")
    assert count(ServerConfiguration) == 2


def test_configuration_names_are_normalised_and_a_clash_names_the_existing_one(htmx):
    create(htmx, "Main MDM")
    for typed in ("main mdm", " Main\u00a0\u00a0MDM ", "MAIN\tMDM"):
        response = post(htmx, "/configurations/new", name=typed, url="https://other.example.com/")
        assert response.status_code == 422
        assert (field_error(response.get_data(as_text=True), "name")
                == "A configuration named “Main MDM” already exists. Choose another name."), typed
    response = post(htmx, "/configurations/new", name="  Other \n MDM ", url="https://other.example.com/")
    assert response.status_code == 204
    other = configuration_named("Other MDM")
    assert other is not None
    response = post(htmx, f"/configurations/{other.id}/edit", name="main  mdm", url="https://other.example.com/")
    assert response.status_code == 422 and "“Main MDM”" in field_error(response.get_data(as_text=True), "name")
    for typed, message in (("Main\u202eMDM\u202c", "Remove the invisible control characters from the name."),
                           ("Main\u2066MDM\u2069", "Remove the invisible control characters from the name."),
                           ("M" * 121, "The name can be at most 120 characters.")):
        response = post(htmx, "/configurations/new", name=typed, url="https://other.example.com/")
        assert response.status_code == 422 and message in field_error(response.get_data(as_text=True), "name")
    # Unicode's composed form: "É" typed as E + combining accent is stored as the single "É", and clashes.
    assert post(htmx, "/configurations/new", name="E\u0301vry MDM", url="https://evry.example.com/").status_code == 204
    assert configuration_named("\u00c9vry MDM") is not None
    response = post(htmx, "/configurations/new", name="\u00c9VRY mdm", url="https://other.example.com/")
    assert response.status_code == 422 and "“\u00c9vry MDM”" in field_error(response.get_data(as_text=True), "name")
    assert count(ServerConfiguration) == 3
    assert configuration_named("Other MDM") is not None


def test_a_garbage_certificate_id_to_remove_is_ignored(htmx, cert_a):
    configuration = create(htmx, files=[("a.pem", pem(cert_a))])
    response = post(htmx, f"/configurations/{configuration.id}/edit", name="Renamed", remove=["abc"])
    assert response.status_code == 204, response.get_data(as_text=True)
    assert configuration_named("Renamed").certificates  # kept: no certificate has that id


# ----- pages with and without htmx, 404 ---------------------------------------------------------

def test_plain_pages_and_redirects_without_htmx(admin_client, cert_a):
    page = admin_client.get("/configurations/new")
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    response = post(admin_client, "/configurations/new", files=[("a.pem", pem(cert_a))])
    configuration = configuration_named("Production MDM")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/configurations/{configuration.id}")
    bad = post(admin_client, "/configurations/new", name="Other", url="http://x.example.com")
    assert bad.status_code == 422 and "<html" in bad.get_data(as_text=True)
    edit = admin_client.get(f"/configurations/{configuration.id}/edit").get_data(as_text=True)
    assert "<html" in edit and 'value="Production MDM"' in edit and "CN=mdm-a.example.com" in edit
    confirm = admin_client.get(f"/configurations/{configuration.id}/delete").get_data(as_text=True)
    assert "<html" in confirm and "cannot be undone" in confirm
    response = admin_client.post(f"/configurations/{configuration.id}/delete")
    assert response.status_code == 302 and response.headers["Location"].endswith("/configurations")
    assert count(ServerConfiguration) == 0 and count(TrustedCertificate) == 0


def test_a_deleted_configuration_id_is_never_given_to_a_new_one(admin_client, cert_a):
    """A stale delete form of a deleted configuration answers 404 instead of deleting the next one created
    (SQLite gave it the same id before AUTOINCREMENT); its certificates' ids are not reused either."""
    old = create(admin_client, name="Old MDM", files=[("a.pem", pem(cert_a))])
    old_id, old_certificate_id = old.id, old.certificates[0].id
    stale_form = admin_client.get(f"/configurations/{old_id}/delete").get_data(as_text=True)
    stale_token = next(filter(None, CSRF_INPUT.search(stale_form).groups()))
    assert admin_client.post(f"/configurations/{old_id}/delete").status_code == 302
    new = create(admin_client, name="New MDM", files=[("a.pem", pem(cert_a))])
    assert new.id > old_id and new.certificates[0].id > old_certificate_id
    stale = admin_client.post(f"/configurations/{old_id}/delete", data={"csrf_token": stale_token}, csrf=False)
    assert stale.status_code == 404 and configuration_named("New MDM") is not None


def test_pop_ups_with_htmx(htmx):
    html = htmx.get("/configurations/new").get_data(as_text=True)
    assert "<html" not in html and 'id="modal-title"' in html and "Create Configuration" in html
    configuration = create(htmx)
    for url in (f"/configurations/{configuration.id}/edit", f"/configurations/{configuration.id}/delete"):
        response = htmx.get(url)
        assert response.status_code == 200 and 'id="modal-title"' in response.get_data(as_text=True)
        assert "HX-Request" in response.headers["Vary"]
    table = htmx.get("/configurations/table").get_data(as_text=True)
    assert "Production MDM" in table and "<html" not in table


@pytest.mark.parametrize("url", ["https://10.0.0.5/enroll", "https://mdm.corp.local:8443/enroll",
                                 "https://[fd00::5]/enroll", "https://localhost-mdm.example.com/"])
def test_addresses_of_a_private_network_are_accepted(htmx, cert_a, url):
    """Devices in Setup Assistant may well reach an intranet MDM server: only loopback addresses are refused."""
    response = post(htmx, "/configurations/new", url=url, files=[("a.pem", pem(cert_a))])
    assert response.status_code in (204, 302), response.get_data(as_text=True)


@pytest.mark.parametrize("url", ["/configurations/999", "/configurations/999/edit", "/configurations/999/delete",
                                 "/servers/999/configuration", "/servers/999/configuration/unassign"])
def test_unknown_ids_give_404(admin_client, url):
    assert admin_client.get(url).status_code == 404
    if url != "/configurations/999":  # the detail page is GET only
        assert admin_client.post(url).status_code == 404


# ----- edit ---------------------------------------------------------------------------------------

def test_edit_renames_adds_and_removes_certificates(htmx, cert_a):
    b, c, d = (make_cert(n)[0] for n in ("b", "c", "d"))
    configuration = create(htmx, files=[("a.pem", pem(cert_a)), ("b.pem", pem(b)), ("c.pem", pem(c))])
    ids = {cert.subject: cert.id for cert in configuration.certificates}
    form = htmx.get(f"/configurations/{configuration.id}/edit").get_data(as_text=True)
    assert f'value="{ids["CN=b"]}"' in form and "checked" not in form
    response = post(htmx, f"/configurations/{configuration.id}/edit", name="Renamed", url="https://new.example.com/mdm",
                    files=[("d.der", der(d)), ("a-again.pem", pem(cert_a))], remove=[ids["CN=b"]])
    assert response.status_code == 204, response.get_data(as_text=True)
    assert "1 certificate added, 1 removed, 1 duplicate kept once" in events(response)["toast"]["message"]
    configuration = configuration_named("Renamed")
    assert configuration.url == "https://new.example.com/mdm"
    assert [x.subject for x in configuration.certificates] == ["CN=mdm-a.example.com", "CN=c", "CN=d"]
    assert count(TrustedCertificate) == 3
    assert actions() == ["configuration.created", "configuration.updated"]
    # The activity log keeps what changed, before and after (it said only "updated (1 removed)").
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "configuration.updated")).scalar_one()
    assert entry.summary == (f"Configuration Renamed updated: renamed from “Production MDM”; MDM server URL {URL} → "
                             "https://new.example.com/mdm; certificate CN=d added; certificate CN=b removed; "
                             "1 duplicate certificate kept once.")
    assert entry.details["removed_subjects"] == ["CN=b"] and entry.details["added_subjects"] == ["CN=d"]


def test_a_certificate_ticked_for_removal_and_uploaded_again_is_logged_as_neither(htmx, cert_a):
    """It stays in the configuration: the activity log said "certificate CN=b removed" all the same."""
    b = make_cert("b")[0]
    configuration = create(htmx, files=[("a.pem", pem(cert_a)), ("b.pem", pem(b))])
    ids = {cert.subject: cert.id for cert in configuration.certificates}
    response = post(htmx, f"/configurations/{configuration.id}/edit", name="Production MDM", url=URL,
                    files=[("b-again.pem", pem(b))], remove=[ids["CN=b"]])
    assert response.status_code == 204, response.get_data(as_text=True)
    assert sorted(x.subject for x in configuration_named("Production MDM").certificates) == ["CN=b",
                                                                                           "CN=mdm-a.example.com"]
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "configuration.updated")).scalar_one()
    assert "removed" not in entry.summary and "added" not in entry.summary, entry.summary
    assert entry.details["removed_subjects"] == [] and entry.details["added_subjects"] == []


def test_edit_with_a_bad_file_changes_nothing_and_keeps_what_was_typed(htmx, cert_a):
    b = make_cert("b")[0]
    configuration = create(htmx, files=[("a.pem", pem(cert_a)), ("b.pem", pem(b))])
    remove_id = configuration.certificates[0].id
    response = post(htmx, f"/configurations/{configuration.id}/edit", name="Typed", url="https://typed.example.com/",
                    files=[("junk.cer", b"\x00\x01garbage")], remove=[remove_id])
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "junk.cer" in field_error(html, "certificate_files")
    assert 'value="Typed"' in html and 'value="https://typed.example.com/"' in html
    assert re.search(rf'value="{remove_id}" id="remove-{remove_id}"\s*checked', html)  # the tick survives too
    configuration = configuration_named("Production MDM")
    assert configuration.url == URL and len(configuration.certificates) == 2
    assert actions() == ["configuration.created"]


def test_edit_from_the_detail_page_reloads_it(htmx):
    configuration = create(htmx)
    page = f"http://localhost/configurations/{configuration.id}"
    response = htmx.post(f"/configurations/{configuration.id}/edit", data=form_data(name="New name"),
                         headers={"HX-Current-URL": page})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == f"/configurations/{configuration.id}"
    assert "New name" in htmx.get(page).get_data(as_text=True)


def test_edit_can_keep_its_own_name(htmx):
    configuration = create(htmx)
    response = post(htmx, f"/configurations/{configuration.id}/edit", url="https://changed.example.com/")
    assert response.status_code == 204
    assert configuration_named("Production MDM").url == "https://changed.example.com/"


# ----- assign / unassign, delete while assigned -------------------------------------------------

def test_assign_unassign_and_delete_refused_while_assigned(htmx, server_row, cert_a):
    configuration = create(htmx, files=[("a.pem", pem(cert_a))])
    popup = htmx.get(f"/servers/{server_row.id}/configuration").get_data(as_text=True)
    assert "Select the Server Configuration" in popup and 'type="radio"' in popup and URL in popup
    response = htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": configuration.id})
    assert response.status_code == 204
    assert {"closeModal", "serversChanged"} <= set(events(response))
    server = server_named("Paris")
    assert server.configuration_id == configuration.id and server.configuration_assigned_at is not None

    row = htmx.get(f"/servers/{server.id}/row").get_data(as_text=True)
    assert "Production MDM" in row and "Unassign Server Configuration" in row
    page = htmx.get(f"/servers/{server.id}").get_data(as_text=True)
    card = page[page.index('id="server-configuration"'):]
    assert "Production MDM" in card and URL in card and "CN=mdm-a.example.com" in card
    assert cert_a.fingerprint(hashes.SHA256()).hex(":").upper() in card
    assert "Paris" in htmx.get(f"/configurations/{configuration.id}").get_data(as_text=True)

    # Delete is refused, naming the server, and nothing breaks.
    confirm = htmx.get(f"/configurations/{configuration.id}/delete").get_data(as_text=True)
    assert "cannot be deleted" in confirm and "Paris" in confirm and 'class="danger"' not in confirm
    refused = htmx.post(f"/configurations/{configuration.id}/delete")
    assert refused.status_code == 422 and "Paris" in refused.get_data(as_text=True)
    htmx.environ_base.pop("HTTP_HX_REQUEST")
    assert htmx.post(f"/configurations/{configuration.id}/delete").status_code == 409
    htmx.environ_base["HTTP_HX_REQUEST"] = "true"
    assert count(ServerConfiguration) == 1

    confirm = htmx.get(f"/servers/{server.id}/configuration/unassign").get_data(as_text=True)
    assert "Existing enrollment profiles are not touched" in confirm and "until another server configuration" in confirm
    # Create Profile keeps working without a configuration (the profile waits, Not configured): only Configure fails.
    assert "Create Profile" not in confirm and "Configure profile fails" in confirm
    response = htmx.post(f"/servers/{server.id}/configuration/unassign")
    assert response.status_code == 204 and "serversChanged" in events(response)
    server = server_named("Paris")
    assert server.configuration_id is None and server.configuration_assigned_at is None
    assert "Unassign Server Configuration" not in htmx.get(f"/servers/{server.id}/row").get_data(as_text=True)
    assert "No server configuration is assigned" in htmx.get(f"/servers/{server.id}").get_data(as_text=True)

    response = htmx.post(f"/configurations/{configuration.id}/delete")
    assert response.status_code == 204 and "configurationsChanged" in events(response)
    assert count(ServerConfiguration) == 0
    assert actions() == ["configuration.created", "server.configuration_assigned",
                         "server.configuration_unassigned", "configuration.deleted"]


def test_assigning_another_configuration_replaces_it(htmx, server_row):
    first, second = create(htmx, "First"), create(htmx, "Second", url="https://second.example.com/")
    htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": first.id})
    popup = htmx.get(f"/servers/{server_row.id}/configuration").get_data(as_text=True)
    assert re.search(rf'checked[^>]*value="{first.id}"|value="{first.id}"[^>]*checked', popup)
    assert "replaces <strong>First</strong>" in popup
    again = htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": first.id})
    assert "already" in events(again)["toast"]["message"]
    response = htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": second.id})
    assert response.status_code == 204
    assert server_named("Paris").configuration_id == second.id
    entry = db.session.execute(select(ActivityEntry).order_by(ActivityEntry.id.desc()).limit(1)).scalar_one()
    assert entry.action == "server.configuration_assigned" and "replacing First" in entry.summary
    assert entry.object_type == "managed_server" and entry.object_id == server_row.id
    # The first one is free again: it can be deleted; the second one cannot.
    assert htmx.post(f"/configurations/{first.id}/delete").status_code == 204
    assert htmx.post(f"/configurations/{second.id}/delete").status_code == 422


def test_assign_needs_a_choice_and_a_configuration_that_still_exists(htmx, server_row):
    configuration = create(htmx)
    response = htmx.post(f"/servers/{server_row.id}/configuration", data={})
    assert response.status_code == 422 and "Select a server configuration" in response.get_data(as_text=True)
    response = htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": configuration.id + 100})
    assert response.status_code == 422 and "no longer exists" in response.get_data(as_text=True)
    assert server_named("Paris").configuration_id is None


def _chosen(popup: str) -> list[str]:
    """The values of the radio buttons Select the Server Configuration shows ticked."""
    return [re.search(r'value="([^"]*)"', tag).group(1) for tag in re.findall(r'<input[^>]*type="radio"[^>]*>', popup)
            if re.search(r"\schecked[\s>=]", tag)]


def test_assign_pop_up_chooses_the_only_configuration_or_the_current_one(htmx, server_row):
    """With one configuration there is nothing to choose: it is ticked. An answer sent back with an error keeps
    what the admin sent; with several, none is ticked until one is assigned, then that one is."""
    only = create(htmx, "Only")
    popup = htmx.get(f"/servers/{server_row.id}/configuration").get_data(as_text=True)
    assert _chosen(popup) == [str(only.id)]
    response = htmx.post(f"/servers/{server_row.id}/configuration", data={})
    assert response.status_code == 422 and _chosen(response.get_data(as_text=True)) == []
    response = htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": only.id + 100})
    assert response.status_code == 422 and "no longer exists" in response.get_data(as_text=True)
    assert _chosen(response.get_data(as_text=True)) == []
    assert server_named("Paris").configuration_id is None  # ticked is not assigned: OK does that

    second = create(htmx, "Second", url="https://second.example.com/")
    assert _chosen(htmx.get(f"/servers/{server_row.id}/configuration").get_data(as_text=True)) == []
    assert htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": second.id}).status_code == 204
    assert _chosen(htmx.get(f"/servers/{server_row.id}/configuration").get_data(as_text=True)) == [str(second.id)]
    # Unassigned, and the other one deleted: the one left is the only choice again.
    assert htmx.post(f"/servers/{server_row.id}/configuration/unassign").status_code == 204
    assert htmx.post(f"/configurations/{only.id}/delete").status_code == 204
    assert _chosen(htmx.get(f"/servers/{server_row.id}/configuration").get_data(as_text=True)) == [str(second.id)]


def test_assign_pop_up_without_configurations_links_to_create_one(htmx, server_row):
    html = htmx.get(f"/servers/{server_row.id}/configuration").get_data(as_text=True)
    assert "There is no MDM server configuration yet" in html
    assert f'href="/configurations/new?server={server_row.id}"' in html  # back to the server after saving
    assert 'type="radio"' not in html


def test_unassign_when_nothing_is_assigned_is_harmless(htmx, server_row):
    assert "nothing to unassign" in htmx.get(f"/servers/{server_row.id}/configuration/unassign").get_data(as_text=True)
    response = htmx.post(f"/servers/{server_row.id}/configuration/unassign")
    assert response.status_code == 204 and events(response)["toast"]["category"] == "info"
    assert actions() == []


def test_assign_and_unassign_without_htmx_redirect_to_the_server_page(admin_client, server_row):
    configuration = create(admin_client)
    page = admin_client.get(f"/servers/{server_row.id}/configuration")
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    response = admin_client.post(f"/servers/{server_row.id}/configuration", data={"configuration": configuration.id})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/servers/{server_row.id}")
    html = admin_client.get(f"/servers/{server_row.id}").get_data(as_text=True)
    assert "assigned to Paris" in html  # the flashed message
    assert "Unassign Server Configuration" in html
    response = admin_client.post(f"/servers/{server_row.id}/configuration/unassign")
    assert response.status_code == 302 and server_named("Paris").configuration_id is None


def test_assign_from_the_server_page_reloads_it(htmx, server_row):
    configuration = create(htmx)
    response = htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": configuration.id},
                         headers={"HX-Current-URL": f"http://localhost/servers/{server_row.id}"})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == f"/servers/{server_row.id}"


def test_configuration_list_shows_servers_using_it(htmx):
    configuration = create(htmx)
    for name in ("Paris", "Lyon"):
        server = _server_row(name)
        htmx.post(f"/servers/{server.id}/configuration", data={"configuration": configuration.id})
    listing = htmx.get("/configurations").get_data(as_text=True)
    assert re.search(r">Lyon</a>, <a[^>]*>Paris</a>", listing)
    confirm = htmx.get(f"/configurations/{configuration.id}/delete").get_data(as_text=True)
    assert "2 managed servers" in confirm and "Lyon" in confirm and "Paris" in confirm


def test_assign_on_a_server_added_through_the_ui(htmx, apple, run_jobs, cert_a):
    identity = Identity()
    token = apple.state.issue_token("Paris MDM", identity.certificate_pem, devices=3)
    assert post_add_server(htmx, "Paris", token, identity.key_pem).status_code == 204
    assert run_jobs() == []
    server = server_named("Paris")
    configuration = create(htmx, files=[("a.pem", pem(cert_a))])
    listing = htmx.get("/servers").get_data(as_text=True)
    assert f'href="/servers/{server.id}/configuration"' in listing
    assert f'/servers/{server.id}/configuration/unassign' not in listing
    htmx.post(f"/servers/{server.id}/configuration", data={"configuration": configuration.id})
    table = htmx.get("/servers/table").get_data(as_text=True)
    assert "Production MDM" in table and f'/servers/{server.id}/configuration/unassign' in table


# ----- configured profiles follow their server configuration --------------------------------------

def _configured_profile(server: ManagedServer, name: str):
    """A profile as Configure profile leaves it: what was sent is the server's configuration now."""
    from portal.models import EnrollmentProfile
    from portal.models.profile import CONFIGURED
    from portal.profiles.services import certificate_fingerprints

    db.session.expire_all()
    configuration = db.session.get(ManagedServer, server.id).configuration
    profile = EnrollmentProfile(server_id=server.id, name=name, status=CONFIGURED, apple_profile_uuid=f"UUID-{name}",
                                configured_url=configuration.url, configured_at=NOW,
                                configured_certificates=certificate_fingerprints(configuration))
    db.session.add(profile)
    db.session.commit()
    return profile


def _status(profile_id: int) -> tuple[str, str | None]:
    from portal.models import EnrollmentProfile

    db.session.expire_all()
    profile = db.session.get(EnrollmentProfile, profile_id)
    return profile.status, profile.status_detail


def test_assigning_another_configuration_marks_configured_profiles_changed(htmx, server_row):
    from portal.models.profile import NOT_CONFIGURED

    first, second = create(htmx, "First"), create(htmx, "Second", url="https://second.example.com/")
    htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": first.id})
    profile = _configured_profile(server_row, "Staff")
    never_sent = _configured_profile(server_row, "Draft")
    never_sent.status, never_sent.apple_profile_uuid = NOT_CONFIGURED, None
    db.session.commit()

    assert htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": second.id}).status_code == 204
    status, detail = _status(profile.id)
    assert status == "changed" and detail == (f"Apple sends its devices to {URL}, while the server configuration "
                                              "Second now says https://second.example.com/.")
    assert _status(never_sent.id) == ("not_configured", None)  # Apple never had it: nothing to redo
    page = htmx.get(f"/profiles/{profile.id}").get_data(as_text=True)
    assert "Changed — configure again" in page and "Changed because Apple sends its devices to" in page
    assert "The server configuration's URL changed" not in page  # said once, by the reason
    assert "profile.configuration_changed" in [a.action for a in db.session.execute(select(ActivityEntry)).scalars()]


def test_unassigning_leaves_profiles_as_they_are_and_a_same_configuration_back_changes_nothing(htmx, server_row):
    """BMC: unassigning "does not impact the existing enrollment profiles"."""
    configuration, other = create(htmx, "First"), create(htmx, "Other", url="https://other.example.com/")
    htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": configuration.id})
    profile = _configured_profile(server_row, "Staff")
    assert htmx.post(f"/servers/{server_row.id}/configuration/unassign").status_code == 204
    assert _status(profile.id) == ("configured", None)
    htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": configuration.id})
    assert _status(profile.id) == ("configured", None)  # Apple has exactly this one
    htmx.post(f"/servers/{server_row.id}/configuration/unassign")
    htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": other.id})
    assert _status(profile.id)[0] == "changed"
    rows = htmx.get(f"/servers/{server_row.id}/profiles").get_data(as_text=True)
    assert "Because Apple sends its devices to" in rows


def test_after_unassign_a_changed_profile_says_the_server_has_no_configuration(htmx, server_row):
    """Its reason named the configuration ("… First now says …"): once unassigned, it says the server has none."""
    first, second = create(htmx, "First"), create(htmx, "Second", url="https://second.example.com/")
    htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": first.id})
    profile = _configured_profile(server_row, "Staff")
    edited = _configured_profile(server_row, "Edited")
    htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": second.id})
    edited_reason = "its settings were edited after it was last configured"
    db.session.get(type(edited), edited.id).status_detail = edited_reason  # changed for another reason
    db.session.commit()

    assert htmx.post(f"/servers/{server_row.id}/configuration/unassign").status_code == 204
    status, detail = _status(profile.id)
    assert status == "changed" and detail == (
        f"its server has no server configuration any more (Second was unassigned), while Apple still sends its "
        f"devices to {URL}: assign a server configuration, then configure again.")
    assert _status(edited.id) == ("changed", edited_reason)
    page = htmx.get(f"/profiles/{profile.id}").get_data(as_text=True)
    status_card = page[page.index('id="profile-status"'):page.index('id="profile-settings"')]
    assert "Changed because its server has no server configuration any more" in status_card
    assert "now says" not in status_card  # (its Activity card still tells what happened before)
    entry = db.session.execute(select(ActivityEntry).where(
        ActivityEntry.action == "server.configuration_unassigned")).scalar_one()
    assert "2 enrollment profiles already out of date at Apple" not in entry.summary
    assert entry.summary.endswith("; 1 enrollment profile already out of date at Apple now needs a server "
                                  "configuration before configuring again")

    # The configuration Apple has assigned again: nothing it was Changed for remains (Apple has its settings with
    # First's URL and certificates), so it is Configured again; the edited one still needs Configure profile.
    htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": first.id})
    assert _status(profile.id) == ("configured", None)
    assert _status(edited.id) == ("changed", edited_reason)


@pytest.mark.parametrize("change, expected", [
    ({"url": "https://moved.example.com/mdm"}, "now says https://moved.example.com/mdm"),
    ({"files": [("extra.pem", pem(make_cert("extra")[0]))]}, "the trusted certificates of the server configuration"),
    ({"remove": "first"}, "the trusted certificates of the server configuration"),
    ({"name": "Renamed"}, None),
    ({"url": "HTTPS://MDM.Example.COM/enroll"}, None),  # host names ignore case: the same server
])
def test_editing_the_configuration_marks_profiles_of_every_server_using_it(htmx, cert_a, change, expected):
    configuration = create(htmx, "Shared", files=[("a.pem", pem(cert_a))])
    servers = [_server_row("Paris"), _server_row("Lyon")]
    for server in servers:
        htmx.post(f"/servers/{server.id}/configuration", data={"configuration": configuration.id})
    profiles = [_configured_profile(server, f"Staff {server.name}") for server in servers]
    if change.get("remove") == "first":
        change = {"remove": [configuration.certificates[0].id]}
    response = post(htmx, f"/configurations/{configuration.id}/edit", **{"name": "Shared", **change})
    assert response.status_code == 204, response.get_data(as_text=True)
    for profile in profiles:
        status, detail = _status(profile.id)
        if expected is None:
            assert (status, detail) == ("configured", None)  # a new name changes nothing at Apple
            db.session.expire_all()
            assert db.session.get(ServerConfiguration, configuration.id).url == URL
        else:
            assert status == "changed" and expected in detail


def test_a_changed_profile_keeps_its_reason_when_edited(htmx, server_row):
    from tests.test_profiles import profile_form

    first, second = create(htmx, "First"), create(htmx, "Second", url="https://second.example.com/")
    htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": first.id})
    profile = _configured_profile(server_row, "Staff")
    htmx.post(f"/servers/{server_row.id}/configuration", data={"configuration": second.id})
    response = htmx.post(f"/profiles/{profile.id}/edit", data=profile_form(name="Staff", department="Field service"))
    assert response.status_code == 204, response.get_data(as_text=True)
    status, detail = _status(profile.id)
    assert status == "changed" and "now says https://second.example.com/" in detail


def test_stored_certificates_can_be_downloaded_as_pem(htmx, cert_a):
    b = make_cert("b")[0]
    configuration = create(htmx, "Prod: EU/1", files=[("a.pem", pem(cert_a)), ("b.der", der(b))])
    page = htmx.get(f"/configurations/{configuration.id}").get_data(as_text=True)
    first, second = configuration.certificates
    one_url = f"/configurations/{configuration.id}/certificates/{second.id}.pem"
    assert one_url in page and f"/configurations/{configuration.id}/certificates.pem" in page
    one = htmx.get(one_url)
    assert one.status_code == 200 and one.data == pem(b)
    assert one.headers["Content-Disposition"] == f'attachment; filename="Prod-EU-1-{second.sha256[:12]}.pem"'
    both = htmx.get(f"/configurations/{configuration.id}/certificates.pem")
    assert both.data == pem(cert_a) + pem(b)
    assert both.headers["Content-Disposition"] == 'attachment; filename="Prod-EU-1.pem"'
    assert htmx.get(f"/configurations/{configuration.id}/certificates/999.pem").status_code == 404
    empty = create(htmx, "Public CA")
    assert htmx.get(f"/configurations/{empty.id}/certificates.pem").status_code == 404


def test_files_must_be_chosen_again_only_when_some_were(htmx, cert_a):
    """After an error the pop-up says chosen files are not kept: only when files were chosen."""
    without = post(htmx, "/configurations/new", url="http://mdm.example.com/enroll")
    assert without.status_code == 422 and "choose them again" not in without.get_data(as_text=True)
    with_file = post(htmx, "/configurations/new", url="http://mdm.example.com/enroll", files=[("a.pem", pem(cert_a))])
    assert with_file.status_code == 422 and "Files are not kept after an error: choose them again." in with_file.get_data(as_text=True)


# ----- editing a configuration that configured profiles depend on ---------------------------------

def _shared_with_two_servers(htmx, cert_a):
    configuration = create(htmx, "Shared", files=[("a.pem", pem(cert_a))])
    servers = [_server_row("Paris"), _server_row("Lyon")]
    for server in servers:
        htmx.post(f"/servers/{server.id}/configuration", data={"configuration": configuration.id})
    profiles = [_configured_profile(server, f"Staff {server.name}") for server in servers]
    return configuration, servers, profiles


def test_the_edit_pop_up_warns_which_configured_profiles_a_new_url_puts_out_of_date(htmx, cert_a):
    configuration, servers, profiles = _shared_with_two_servers(htmx, cert_a)
    popup = " ".join(htmx.get(f"/configurations/{configuration.id}/edit").get_data(as_text=True).split())
    assert ("2 configured enrollment profiles on 2 servers will need <strong>Configure profile</strong> again if you "
            "change the MDM server URL or the certificates") in popup
    assert "Staff Paris" in popup and "Staff Lyon" in popup and "A new name changes nothing at Apple" in popup

    # Nothing configured with it: no warning.
    other = create(htmx, "Unused", url="https://unused.example.com/")
    assert "will need <strong>Configure profile</strong>" not in \
        htmx.get(f"/configurations/{other.id}/edit").get_data(as_text=True)


def test_saving_a_new_url_says_how_many_profiles_became_changed_and_lists_them(htmx, cert_a):
    configuration, servers, profiles = _shared_with_two_servers(htmx, cert_a)
    response = post(htmx, f"/configurations/{configuration.id}/edit", name="Shared",
                    url="https://moved.example.com/mdm", headers={"HX-Current-URL": "http://localhost/configurations"})
    assert response.status_code == 204, response.get_data(as_text=True)
    # From the list too, the admin lands on the configuration's page, where the profiles are listed.
    assert response.headers["HX-Redirect"] == f"/configurations/{configuration.id}"
    page = " ".join(htmx.get(f"/configurations/{configuration.id}").get_data(as_text=True).split())
    assert ("Configuration Shared updated. 2 configured enrollment profiles on 2 servers are now Changed — configure "
            "again") in html.unescape(page)
    assert "Enrollment profiles to configure again (2)" in page
    for profile in profiles:
        assert f'href="/profiles/{profile.id}"' in page and f'hx-get="/profiles/{profile.id}/configure"' in page
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "configuration.updated")
                               .order_by(ActivityEntry.id.desc()).limit(1)).scalar_one()
    assert "2 configured enrollment profiles on 2 servers are now Changed" in entry.summary
    # Now Changed: the pop-up no longer counts them as at stake.
    assert "will need <strong>Configure profile</strong>" not in \
        htmx.get(f"/configurations/{configuration.id}/edit").get_data(as_text=True)


def test_a_profile_changed_already_is_not_counted_as_now_changed(htmx, cert_a):
    """The Edit pop-up warned about the one Configured profile, and the save said both "are now Changed"."""
    from portal.models.profile import CHANGED
    from portal.profiles.services import EDITED

    configuration, servers, (paris, lyon) = _shared_with_two_servers(htmx, cert_a)
    lyon.status, lyon.status_detail = CHANGED, EDITED  # edited since it was configured
    db.session.commit()
    popup = " ".join(htmx.get(f"/configurations/{configuration.id}/edit").get_data(as_text=True).split())
    assert "1 configured enrollment profile on 1 server will need <strong>Configure profile</strong> again" in popup
    response = post(htmx, f"/configurations/{configuration.id}/edit", name="Shared", url="https://moved.example.com/mdm")
    assert response.status_code == 204, response.get_data(as_text=True)
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "configuration.updated")
                               .order_by(ActivityEntry.id.desc()).limit(1)).scalar_one()
    assert "1 configured enrollment profile on 1 server is now Changed" in entry.summary
    assert entry.details["profiles_changed"] == [paris.id]
    db.session.expire_all()
    assert db.session.get(type(lyon), lyon.id).status_detail.startswith(EDITED + ", and")  # its reason says both


def test_a_new_name_alone_says_nothing_about_profiles(htmx, cert_a):
    configuration, servers, profiles = _shared_with_two_servers(htmx, cert_a)
    response = post(htmx, f"/configurations/{configuration.id}/edit", name="Renamed",
                    files=[("a-again.pem", pem(cert_a))])
    assert response.status_code == 204 and "HX-Redirect" not in response.headers
    message = events(response)["toast"]["message"]
    assert message == "Configuration Renamed updated (1 duplicate kept once)."
    assert "to configure again" not in htmx.get(f"/configurations/{configuration.id}").get_data(as_text=True)


def test_a_new_certificate_without_htmx_redirects_with_the_message(admin_client, cert_a):
    configuration, servers, profiles = _shared_with_two_servers(admin_client, cert_a)
    response = post(admin_client, f"/configurations/{configuration.id}/edit", name="Shared",
                    files=[("extra.pem", pem(make_cert("extra")[0]))])
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/configurations/{configuration.id}")
    page = html.unescape(admin_client.get(response.headers["Location"]).get_data(as_text=True))
    assert "(1 certificate added). 2 configured enrollment profiles on 2 servers are now Changed" in page


# ----- Create Configuration reached from a managed server ---------------------------------------

def test_create_configuration_from_a_server_offers_to_assign_it_there(htmx, server_row, cert_a):
    popup = htmx.get(f"/servers/{server_row.id}/configuration").get_data(as_text=True)
    assert f'hx-get="/configurations/new?server={server_row.id}"' in popup  # opens in the same pop-up
    form = htmx.get(f"/configurations/new?server={server_row.id}").get_data(as_text=True)
    assert f'action="/configurations/new?server={server_row.id}"' in form
    assert re.search(r'<input [^>]*checked id="assign" name="assign" type="checkbox" value="y"> Assign to Paris', form)

    page = f"http://localhost/servers/{server_row.id}"
    response = htmx.post(f"/configurations/new?server={server_row.id}", data={**form_data(files=[
        ("a.pem", pem(cert_a))]), "assign": "y"}, content_type="multipart/form-data", headers={"HX-Current-URL": page})
    assert response.status_code == 204, response.get_data(as_text=True)
    assert response.headers["HX-Redirect"] == f"/servers/{server_row.id}"
    configuration = configuration_named("Production MDM")
    assert server_named("Paris").configuration_id == configuration.id
    assert actions() == ["configuration.created", "server.configuration_assigned"]  # as Assign Server Configuration
    html_page = htmx.get(page).get_data(as_text=True)
    assert ("Configuration Production MDM created (1 certificate added). Server configuration Production MDM assigned "
            "to Paris.") in html_page
    assert "Unassign Server Configuration" in html_page


def test_create_configuration_from_a_server_unticked_leads_back_without_assigning(admin_client, server_row):
    response = admin_client.post(f"/configurations/new?server={server_row.id}", data=form_data(),
                                 content_type="multipart/form-data")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/servers/{server_row.id}")
    assert configuration_named("Production MDM") is not None and server_named("Paris").configuration_id is None
    page = html.unescape(admin_client.get(response.headers["Location"]).get_data(as_text=True))
    assert ("Configuration Production MDM created. It is not assigned to Paris: use Assign Server Configuration when "
            "it should be.") in page
    assert actions() == ["configuration.created"]


def test_create_configuration_from_a_server_with_an_error_keeps_the_server(htmx, server_row):
    response = htmx.post(f"/configurations/new?server={server_row.id}", data={**form_data(url="http://x.example/"),
                                                                               "assign": "y"},
                         content_type="multipart/form-data")
    assert response.status_code == 422
    form = response.get_data(as_text=True)
    assert "Use https://" in field_error(form, "url")
    assert f'action="/configurations/new?server={server_row.id}"' in form and "Assign to Paris" in form
    assert count(ServerConfiguration) == 0 and server_named("Paris").configuration_id is None


@pytest.mark.parametrize("server", ["999", "abc", "99999999999999999999"])
def test_create_configuration_with_an_unknown_server_is_a_plain_create(htmx, server):
    form = htmx.get(f"/configurations/new?server={server}").get_data(as_text=True)
    assert "Assign to" not in form
    response = post(htmx, f"/configurations/new?server={server}")
    assert response.status_code == 204 and configuration_named("Production MDM") is not None
