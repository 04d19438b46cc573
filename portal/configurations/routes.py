"""MDM Server Configurations pages (placeholder, being built)."""
from flask import render_template_string

from . import bp


@bp.route("/configurations")
def index():
    return render_template_string('{% extends "base.html" %}{% block content %}<h1>MDM Server Configurations</h1>{% endblock %}')
