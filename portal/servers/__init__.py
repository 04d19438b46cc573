"""Device Assignment: managed servers, their tokens and synchronization."""
from flask import Blueprint

bp = Blueprint("servers", __name__, url_prefix="/servers")

from . import alerts, keys, routes, sync_notices  # noqa: E402,F401
