"""Assignments (Add Devices / Remove Devices): profile_views.py and routes.py (pages),
services.py (requests), runner.py (the job that calls Apple), retries.py (the retry queue)."""
from flask import Blueprint

bp = Blueprint("assignments", __name__)

from . import profile_views, routes  # noqa: E402,F401
