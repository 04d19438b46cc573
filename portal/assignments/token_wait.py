"""After OK on Add Devices, Remove Devices or Release Devices while the server's token cannot be used
(Terms Not Accepted, expired, revoked…): nothing goes to Apple until the token works again, so the
admin is taken to the request's page, where its status says why it waits, instead of a toast saying
the devices are being sent."""
from __future__ import annotations

from flask import flash, make_response, redirect

from ..htmx import hx_redirect, is_htmx
from ..models import ManagedServer


def token_wait_note(server: ManagedServer) -> str:
    """Why a request made now waits (the token's status and its remedy), or "" when the token works."""
    from ..apple_link import status_of  # imported here: apple_link imports the servers blueprint

    token = status_of(server)
    if token.can_sync:
        return ""
    return (f"Nothing is sent to Apple yet: {server.name}'s token status is {token.label}. {token.remedy} "
            "The devices of this request are sent as soon as a token check succeeds (Check now, or the one "
            "after Renew a server).")


def to_request_page(message: str, url: str, category: str = "warning"):
    """The request's page, pop-up (htmx) or not, with `message` shown on it."""
    flash(message, category)
    return hx_redirect(make_response("", 204), url) if is_htmx() else redirect(url)
