"""Managed Devices: the devices Apple assigned to managed servers."""
from flask import Blueprint

bp = Blueprint("devices", __name__)

from . import routes  # noqa: E402,F401
