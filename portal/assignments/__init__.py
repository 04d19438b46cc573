"""Assignments: see routes.py (pages) and services.py (what they do)."""
from flask import Blueprint

bp = Blueprint("assignments", __name__)

from . import routes  # noqa: E402,F401
