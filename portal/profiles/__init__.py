"""Profiles: see routes.py (pages), actions.py (forms and Configure profile) and services.py (what they do)."""
from flask import Blueprint

bp = Blueprint("profiles", __name__)

from . import actions, routes  # noqa: E402,F401
