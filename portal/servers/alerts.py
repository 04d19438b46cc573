"""Tokens that need an admin, named on every page (peers.md pain 2: a renewal is easy to forget
when the only sign of it is a badge on a page nobody opens until devices stop enrolling)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import request
from sqlalchemy import select

from ..apple_link import status_of
from ..extensions import db
from ..models import ManagedServer
from ..templating import days_until
from ..token_status import VALID, Status


@dataclass(frozen=True)
class TokenAlert:
    server_id: int
    name: str
    status: Status
    expiry: datetime

    @property
    def days_left(self) -> int:
        """Counted as the server page's "(in N days)" counts them, so both say the same."""
        return days_until(self.expiry)


def token_alerts() -> list[TokenAlert]:
    """Servers whose token is not Valid, errors first, then the soonest expiry.

    Not on Device Assignment (every badge is there), and a server's own page leaves itself out.
    """
    if request.endpoint == "servers.index":
        return []
    own = request.view_args.get("server_id") if request.endpoint == "servers.detail" and request.view_args else None
    alerts = []
    for server in db.session.execute(select(ManagedServer).where(ManagedServer.id != own)
                                     .order_by(ManagedServer.token_expiry, ManagedServer.id)).scalars():
        status = status_of(server)
        if status.key != VALID:
            alerts.append(TokenAlert(server.id, server.name, status, server.token_expiry))
    return sorted(alerts, key=lambda a: a.status.badge != "error")  # stable: expiry order kept within each


def _register() -> None:
    from . import bp

    @bp.app_context_processor
    def _alerts():
        """`token_alerts()` for base.html: called only by the full pages that show the banner."""
        return {"token_alerts": token_alerts}


_register()
