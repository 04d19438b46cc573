"""Renew a server (and Add Server) against the Apple simulator: tokens they must refuse."""
from __future__ import annotations

import pytest

from portal.models import ManagedServer
from tests.servers_helpers import Identity, field_error, post_add_server, post_renew, server_named

DAY = 86400


@pytest.fixture
def identity():
    return Identity()


def _add(htmx, apple, identity, name: str, apple_server: str, devices: int) -> ManagedServer:
    token = apple.state.issue_token(apple_server, identity.certificate_pem, devices=devices)
    assert post_add_server(htmx, name, token, identity.key_pem).status_code == 204
    return server_named(name)


def _expired_token(apple, identity, apple_server: str) -> bytes:
    """A token whose access-token expiry is past: issued by the simulator 400 days ago."""
    apple.state.advance_clock(-400 * DAY)
    try:
        return apple.state.issue_token(apple_server, identity.certificate_pem, devices=1)
    finally:
        apple.state.advance_clock(400 * DAY)


def test_add_server_refuses_an_expired_token_on_its_field(htmx, apple, identity):
    token = _expired_token(apple, identity, "Paris MDM")
    from portal.apple.tokens import decrypt_token

    expiry = decrypt_token(token, identity.key).access_token_expiry
    response = post_add_server(htmx, "Paris", token, identity.key_pem)
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "token") == (
        f"This token expired on {expiry:%Y-%m-%d}: download a new one for this MDM server in Apple Business Manager.")
    assert 'value="Paris"' in response.get_data(as_text=True)  # the name typed stays
    assert server_named("Paris") is None


def test_renew_refuses_an_expired_token_and_changes_nothing(htmx, apple, identity, run_jobs):
    server = _add(htmx, apple, identity, "Paris", "Paris MDM", 2)
    run_jobs()
    before = (server.token_expiry, server.token_ciphertext)
    response = post_renew(htmx, server.id, _expired_token(apple, identity, "Paris MDM"))
    assert response.status_code == 422
    assert "This token expired on" in field_error(response.get_data(as_text=True), "token")
    assert "renewed" not in response.headers.get("HX-Trigger", "")
    server = server_named("Paris")
    assert (server.token_expiry, server.token_ciphertext) == before


def test_a_token_the_stored_key_cannot_decrypt_does_not_blame_a_key_never_given(htmx, apple, identity, run_jobs):
    server = _add(htmx, apple, identity, "Paris", "Paris MDM", 1)
    other = Identity("new-cert")
    refused = post_renew(htmx, server.id, apple.state.issue_token("Paris MDM", other.certificate_pem))
    message = field_error(refused.get_data(as_text=True), "token")
    assert refused.status_code == 422 and "provided" not in message
    assert "the private key this managed server already has" in message and "new-cert" in message
    assert "Use a new private key" in message
