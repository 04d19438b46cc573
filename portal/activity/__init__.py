"""The activity log page."""
from flask import Blueprint

bp = Blueprint("activity", __name__, url_prefix="/activity")

from . import routes  # noqa: E402,F401
