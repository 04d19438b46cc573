"""List the activity log, newest first."""
from flask import render_template, request
from sqlalchemy import select

from ..extensions import db
from ..models import ActivityEntry
from . import bp


@bp.route("/")
def index():
    """The activity log, paginated, newest first."""
    page = db.paginate(
        select(ActivityEntry).order_by(ActivityEntry.created_at.desc(), ActivityEntry.id.desc()),
        page=request.args.get("page", 1, type=int), per_page=50, error_out=False,
    )
    return render_template("activity/index.html", page=page)
