"""Rendering helpers shared by the areas: forms that work as pop-ups and as plain pages."""
from __future__ import annotations

from flask import Response, make_response, redirect, render_template, request

from .htmx import current_path, hx_redirect, hx_trigger, is_htmx, toast


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
    """After a successful form: close the pop-up, refresh lists and toast (htmx), or redirect.

    A form opened as a page of its own (a pop-up's link opened in a tab: form_page.html) still posts with htmx;
    there is no pop-up to close, and the filled form would stay on screen inviting a second send: it goes to
    `fallback_url` as without htmx."""
    if is_htmx() and current_path() == request.path.rstrip("/"):
        from flask import flash

        flash(message, category)
        return hx_redirect(make_response("", 204), fallback_url)
    if is_htmx():
        response = make_response("", 204)
        hx_trigger(response, closeModal=True, **{event: True for event in events})
        return toast(response, message, category)
    from flask import flash

    flash(message, category)
    return redirect(fallback_url)
