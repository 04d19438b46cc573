"""The ADE admin portal: a Flask app built by create_app()."""
from __future__ import annotations

import os
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None) -> Flask:
    """Build the portal: defaults, then the environment, then `config` (tests), then the parts."""
    instance = (config or {}).get("INSTANCE_PATH") or os.environ.get("PORTAL_INSTANCE_PATH") or str(ROOT / "instance")
    app = Flask(
        __name__,
        instance_path=str(Path(instance).resolve()),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    from .config import load_config

    app.config.update(load_config(app.instance_path))
    if config:
        app.config.update(config)
    register_url_converters(app)

    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_template_helpers(app)
    register_cli(app)
    return app


def register_url_converters(app: Flask) -> None:
    """`<int:...>` ids in URLs: a number too large for the database is a 404, not a 500 (see converters.py)."""
    from .converters import DatabaseIdConverter

    app.url_map.converters["int"] = DatabaseIdConverter


def register_extensions(app: Flask) -> None:
    """Bind the database, migrations, CSRF, login and Redis to the app; guard forms against a repeated POST."""
    from . import form_once, queue, security
    from .extensions import csrf, db, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True, compare_type=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    queue.init_app(app)
    security.init_app(app)
    form_once.init_app(app)  # after the CSRF check and the login gate, whose before_request hooks run first


def register_blueprints(app: Flask) -> None:
    """Attach one blueprint per area of the UI."""
    from .activity import bp as activity_bp
    from .areas import bp as areas_bp
    from .assignments import bp as assignments_bp
    from .configurations import bp as configurations_bp
    from .auth import bp as auth_bp
    from .devices import bp as devices_bp
    from .profiles import bp as profiles_bp
    from .servers import bp as servers_bp
    from .settings import bp as settings_bp
    from .system import bp as system_bp

    for bp in (auth_bp, areas_bp, servers_bp, configurations_bp, profiles_bp, assignments_bp, devices_bp,
               settings_bp, activity_bp, system_bp):
        app.register_blueprint(bp)


def register_error_handlers(app: Flask) -> None:
    """Friendly 4xx/5xx pages (fragments for htmx)."""
    from .errors import init_app

    init_app(app)


def register_template_helpers(app: Flask) -> None:
    """Filters and globals used by the templates."""
    from .templating import init_app

    init_app(app)


def register_cli(app: Flask) -> None:
    """Flask commands: create-admin, worker, scheduler, dev, rotate-keys, depsim, ..."""
    from .cli import init_app

    init_app(app)
