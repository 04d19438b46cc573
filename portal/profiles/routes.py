"""Enrollment Profiles pages (placeholder, being built)."""
from flask import render_template_string

from . import bp


@bp.route("/profiles")
def index():
    return render_template_string('{% extends "base.html" %}{% block content %}<h1>Enrollment Profiles</h1>{% endblock %}')


@bp.route("/servers/<int:server_id>/profiles")
def server_profiles(server_id: int):
    return index()
