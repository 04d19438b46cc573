"""MDM Server Configurations: routes.py (the configuration pages), assign.py (Assign / Unassign Server
Configuration on a managed server), services.py (what they do), certificates.py (reading certificates)."""
from flask import Blueprint

bp = Blueprint("configurations", __name__)

from . import assign, filters, routes  # noqa: E402,F401
