"""Apple DEP simulator: a stand-in for https://mdmenrollment.apple.com, its own small Flask app.

State (servers, tokens, devices, sessions, clock) lives in <state_dir>/depsim.sqlite3 so the CLI
and the running simulator share it. See app.py (Apple endpoints), control.py (/_sim/ JSON API),
web.py (HTML page) and testing.py (`running_simulator` for tests).
"""
from __future__ import annotations

import os

from flask import Flask, g
from werkzeug.exceptions import MethodNotAllowed, NotFound

from .responses import ApiError, error_response
from .state import SimState

__all__ = ["create_depsim_app", "SimState"]


def create_depsim_app(state_dir: str | os.PathLike) -> Flask:
    """The simulator WSGI app over the state kept in `state_dir`."""
    from . import app as apple_routes, control, web

    app = Flask(__name__)
    app.config["DEPSIM_STATE_DIR"] = str(state_dir)
    app.extensions["depsim_state"] = SimState(state_dir)
    app.register_blueprint(apple_routes.bp)
    app.register_blueprint(control.bp)
    app.register_blueprint(web.bp)
    register_error_handlers(app)
    return app


def register_error_handlers(app: Flask) -> None:
    """Apple-style bodies: bare tokens, empty 405, quoted when the server's quote_errors fault is on."""

    @app.errorhandler(ApiError)
    def api_error(error: ApiError):
        return error_response(error, quoted=g.get("quote_errors", False))

    @app.errorhandler(MethodNotAllowed)
    def wrong_method(error: MethodNotAllowed):
        allow = {"Allow": ", ".join(error.valid_methods)} if error.valid_methods else None
        return error_response(ApiError(405, headers=allow))

    @app.errorhandler(NotFound)
    def unknown_path(error: NotFound):
        return error_response(ApiError(404, "NOT_FOUND"))
