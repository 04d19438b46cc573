"""Fixtures for the DEP simulator tests: a certificate to issue tokens to, and an Apple caller
that talks to the simulator over real HTTP exactly as a DEP client would."""
from __future__ import annotations

import datetime as dt

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from requests_oauthlib import OAuth1

USER_AGENT = "ade-portal-tests/1.0"


@pytest.fixture(scope="session")
def key_and_cert():
    """An RSA key and its self-signed certificate (PEM), like the portal's MDM identity."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "depsim tests")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=365))
            .sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM)


class AppleCaller:
    """Signs /session with OAuth 1.0a and replays the session token the way DEP clients do."""

    def __init__(self, url: str, credentials: dict, *, version: int = 10) -> None:
        self.url = url
        self.credentials = credentials
        self.version = version
        self.token: str | None = None
        self.http = requests.Session()

    def oauth(self, **overrides) -> OAuth1:
        """requests-oauthlib signer for the token (overrides: realm, timestamp, nonce, secrets…)."""
        c = {**self.credentials, **overrides.pop("credentials", {})}
        overrides.setdefault("signature_method", "HMAC-SHA1")
        return OAuth1(c["consumer_key"], c["consumer_secret"], c["access_token"], c["access_secret"],
                      **overrides)

    def session(self, *, headers: dict | None = None, **oauth_overrides) -> requests.Response:
        """GET /session (no Content-Type, as Apple allows)."""
        sent = {"User-Agent": USER_AGENT, "X-Server-Protocol-Version": str(self.version), **(headers or {})}
        return self.http.get(self.url + "/session", auth=self.oauth(**oauth_overrides), headers=sent)

    def login(self) -> str:
        """Open a session and keep its token."""
        response = self.session()
        assert response.status_code == 200, response.text
        self.token = response.json()["auth_session_token"]
        return self.token

    def call(self, method: str, path: str, json=None, *, data=None, version: int | None = None,
             headers: dict | None = None) -> requests.Response:
        """A data call with the current session; adopts a rotated X-ADM-Auth-Session."""
        sent = {"User-Agent": USER_AGENT, "X-Server-Protocol-Version": str(version or self.version)}
        if self.token:
            sent["X-ADM-Auth-Session"] = self.token
        if json is not None:
            sent["Content-Type"] = "application/json;charset=UTF8"
        sent.update(headers or {})
        response = self.http.request(method, self.url + path, json=json, data=data, headers=sent)
        self.token = response.headers.get("X-ADM-Auth-Session", self.token)
        return response

    def all_devices(self, *, limit: int = 1000) -> tuple[list[dict], str]:
        """Run a complete fetch; returns the devices and the final cursor."""
        devices, cursor = [], None
        while True:
            body = {"limit": limit} if cursor is None else {"limit": limit, "cursor": cursor}
            page = self.call("POST", "/server/devices", body).json()
            devices += page["devices"]
            cursor = page["cursor"]
            if not page["more_to_follow"]:
                return devices, cursor


@pytest.fixture
def make_caller(depsim):
    """Factory: a logged-in caller for a (new) server with N devices."""

    def make(server: str = "Test Server", devices: int = 0, *, version: int = 10,
             login: bool = True) -> AppleCaller:
        caller = AppleCaller(depsim.url, depsim.state.issue_credentials(server, devices=devices),
                             version=version)
        if login:
            caller.login()
        return caller

    return make
