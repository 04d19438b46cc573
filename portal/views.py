"""Rendering helpers shared by the areas: forms that work as pop-ups and as plain pages."""
from __future__ import annotations

from flask import Response, make_response, redirect, render_template, request

from .htmx import hx_trigger, is_htmx, toast


def render_form(template: str, title: str, *, status: int = 200, **context):
    """A form as a pop-up (htmx GET), as a bare form (htmx POST with errors) or as a full page."""
    if is_htmx():
        name = template if request.method == "POST" else "_dialog.html"
    else:
        name = "form_page.html"
    response = make_response(render_template(name, title=title, body_template=template, **context), status)
    response.headers["Vary"] = "HX-Request"
    return response


def form_done(message: str, fallback_url: str, *events: str, category: str = "success") -> Response:
    """After a successful form: close the pop-up, refresh lists and toast (htmx), or redirect."""
    if is_htmx():
        response = make_response("", 204)
        hx_trigger(response, closeModal=True, **{event: True for event in events})
        return toast(response, message, category)
    from flask import flash

    flash(message, category)
    return redirect(fallback_url)
