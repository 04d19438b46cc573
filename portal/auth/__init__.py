"""Signing in and out, and an admin's own password."""
from flask import Blueprint

bp = Blueprint("auth", __name__)

from . import account, routes  # noqa: E402,F401
