"""Background processing status: Redis, workers, scheduler, and a test job."""
from flask import Blueprint

bp = Blueprint("system", __name__, url_prefix="/system")

from . import routes  # noqa: E402,F401
