"""The home page."""
from flask import Blueprint, current_app, redirect, send_from_directory, url_for

bp = Blueprint("areas", __name__)


@bp.route("/")
def home():
    """The portal opens on Device Assignment, as the product does."""
    return redirect(url_for("servers.index"))


@bp.route("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico whatever the page links: answer with the SVG icon, signed in or not."""
    return send_from_directory(current_app.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400)
