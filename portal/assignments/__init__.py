"""Assignments (Add Devices / Remove Devices / Release Devices): profile_views.py, device_views.py, release_views.py
and routes.py (pages), services.py (requests), runner.py (the job that calls Apple), retries.py (the retry queue)."""
from flask import Blueprint

bp = Blueprint("assignments", __name__)

from . import device_views, profile_views, release_views, routes  # noqa: E402,F401
