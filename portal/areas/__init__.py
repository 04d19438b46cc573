"""The home page."""
from flask import Blueprint, redirect, url_for

bp = Blueprint("areas", __name__)


@bp.route("/")
def home():
    """The portal opens on Device Assignment, as the product does."""
    return redirect(url_for("servers.index"))
