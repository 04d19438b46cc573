"""List the activity log, newest first."""
from flask import render_template, request
from sqlalchemy import select

from ..converters import small_int
from ..extensions import db
from ..models import ActivityEntry
from . import bp

# Far beyond the last page, yet its OFFSET still fits the database's integers.
MAX_PAGE = 1_000_000


@bp.route("/")
def index():
    """The activity log, paginated, newest first."""
    page = db.paginate(
        select(ActivityEntry).order_by(ActivityEntry.created_at.desc(), ActivityEntry.id.desc()),
        page=min(request.args.get("page", type=small_int) or 1, MAX_PAGE), per_page=50, error_out=False,
    )
    return render_template("activity/index.html", page=page)
