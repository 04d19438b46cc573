"""The activity log, newest first: filtered from the URL, each object linked, exportable as CSV."""
from datetime import datetime, timezone

from flask import Response, render_template, request, stream_with_context, url_for
from sqlalchemy import and_, or_

from ..converters import small_int
from ..csv_stream import CsvChunks, safe_cell
from ..downloads import attachment, download
from ..extensions import db
from ..models import ActivityEntry
from . import bp
from .labels import ACTION_LABELS
from .query import KINDS, LEVELS, ActivityQuery, actors, object_links, request_links

# Far beyond the last page, yet its OFFSET still fits the database's integers.
MAX_PAGE = 1_000_000
CSV_CHUNK = 1000


@bp.route("/")
def index():
    """The activity log, paginated, newest first."""
    query = ActivityQuery.from_args(request.args)
    page = db.paginate(query.statement(), page=min(request.args.get("page", type=small_int) or 1, MAX_PAGE),
                       per_page=50, error_out=False)
    others = {key: value for key, value in query.to_args().items() if key != "object"}
    return render_template("activity/index.html", page=page, query=query, filters=query.to_args(),
                           without_object_url=url_for("activity.index", **others),
                           actors=actors(), levels=LEVELS, kinds=KINDS, links=object_links(page.items),
                           actions=sorted(ACTION_LABELS.items(), key=lambda item: item[1].lower()),
                           requests=request_links(page.items))


@bp.route("/activity.csv")
@download
def export_csv():
    """The filtered log as CSV, newest first (streamed a thousand entries at a time)."""
    query = ActivityQuery.from_args(request.args)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M")
    name = f"activity-{'filtered' if query.is_filtered else 'all'}-{stamp}.csv"
    response = Response(stream_with_context(_csv_lines(query)), mimetype="text/csv")
    response.headers["Content-Disposition"] = attachment(name, "activity")
    return response


def _csv_lines(query: ActivityQuery):
    out = CsvChunks()
    out.row(("time_utc", "who", "action", "level", "object_type", "object_id", "object", "what_happened"))
    yield out.take()
    statement, after = query.statement(), None
    while True:
        chunk = statement if after is None else statement.where(or_(
            ActivityEntry.created_at < after.created_at,
            and_(ActivityEntry.created_at == after.created_at, ActivityEntry.id < after.id)))
        # Keyset, not OFFSET: entries recorded during the download never shift it (no line twice).
        entries = db.session.execute(chunk.limit(CSV_CHUNK)).scalars().all()
        for e in entries:
            out.row([e.created_at.strftime("%Y-%m-%d %H:%M:%S"), safe_cell(e.actor or "system"),
                             e.action, e.level, e.object_type or "", e.object_id or "",
                             safe_cell(e.object_label), safe_cell(e.summary)])
        yield out.take()
        if len(entries) < CSV_CHUNK:
            return
        after = entries[-1]
        db.session.expunge_all()  # a long log never piles up in the session
