"""Flask commands: create-admin, worker, scheduler, rotate-keys, dev, demo and the simulator's."""
from __future__ import annotations

import os
import secrets
import socket
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError


def init_app(app: Flask) -> None:
    """Register every command on the app."""
    from .depsim.cli import depsim_cli

    for command in (create_admin, worker, scheduler, rotate_keys, dev, demo, depsim_cli):
        app.cli.add_command(command)


@click.command("create-admin")
@click.argument("name")
@click.option("--update", is_flag=True, help="Change the password of an existing admin (and lift a sign-in lock on the name).")
@with_appcontext
def create_admin(name: str, update: bool) -> None:
    """Create an admin; the password comes from standard input, or is prompted for twice."""
    from .auth.sessions import end_all as end_all_sessions
    from .auth.throttle import clear_name
    from .extensions import db
    from .models import Admin
    from .models.admin import find_admin

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise click.ClickException("the password must have at least 8 characters")
    name = " ".join(name.split())  # as sign-in reads it (find_admin): "Alice " is "Alice"
    if not name or len(name) > 80:
        raise click.ClickException("the user name must have 1 to 80 characters")
    admin = find_admin(name)
    if admin is not None and not update:
        raise click.ClickException(f"an admin named {admin.username!r} already exists "
                                   "(names differing only in case or spacing are the same; "
                                   "use --update to change the password)")
    created = admin is None
    if created:
        admin = Admin(username=name)
        db.session.add(admin)
    admin.set_password(password)
    ended = 0 if created else end_all_sessions(admin.id)  # whoever knew the old password is signed out
    db.session.commit()
    if update:
        clear_name(admin.username)  # a new password also lifts a sign-in lock on the name
    ended_text = f" ({ended} signed-in session{'s' if ended != 1 else ''} ended)" if ended else ""
    click.echo(f"Admin {admin.username!r} {'created' if created else 'updated'}{ended_text}.")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Run every queued job, then exit.")
@click.option("--queue", "queues", multiple=True, help="Queue to listen on (repeatable).")
@click.option("--simple", is_flag=True, help="Run jobs in this process instead of forking.")
@with_appcontext
def worker(burst: bool, queues: tuple[str, ...], simple: bool) -> None:
    """Run an RQ worker; every job runs inside the portal's app context."""
    from .worker import make_worker

    from jobs.schedule import REDIS_AWAY

    app = current_app._get_current_object()
    try:
        w = make_worker(app, list(queues) or app.config["RQ_QUEUES"], simple=simple,
                        name=f"{socket.gethostname()}-{os.getpid()}")
        w.work(burst=burst, with_scheduler=False)
    except REDIS_AWAY as error:
        # RQ's worker ends on a failed Redis call: one line that says why, not a traceback. A process manager (or
        # `flask dev`) starts it again; a job it was running is marked abandoned by RQ and sent again by the portal.
        raise click.ClickException(f"Redis cannot be reached or does not answer ({error}): the worker stopped. "
                                   "Start it again once Redis answers (check REDIS_URL).") from None


@click.command("scheduler")
@click.option("--poll", default=5, show_default=True, help="Seconds between checks for due jobs.")
@with_appcontext
def scheduler(poll: int) -> None:
    """Run rq-scheduler after reconciling the periodic jobs declared in jobs/schedule.py (and every minute)."""
    from jobs.schedule import REDIS_AWAY, PortalScheduler, reconcile_now

    from .queue import get_redis

    try:
        report = reconcile_now()
    except DBAPIError as error:
        raise click.ClickException(f"the database is not ready ({error.orig}); "
                                   "run `flask --app wsgi db upgrade` first") from None
    except REDIS_AWAY as error:
        # Started before Redis (a machine booting, services in any order): it waits for Redis like after an outage,
        # and reconciles the periodic jobs at its first poll once Redis answers.
        click.echo(f"Redis cannot be reached or does not answer ({error}): the periodic jobs are scheduled once it "
                   "does.", err=True)
        report = None
    else:
        click.echo("Periodic jobs: " + ", ".join(f"{k}: {', '.join(v) or '-'}" for k, v in report.items()))
    PortalScheduler(queue_name="default", connection=get_redis(), interval=poll, wanted=_periodic_jobs_now,
                    reconciled=report is not None).run()


def _periodic_jobs_now():
    """The periodic jobs wanted now, read without leaving a transaction open in this long-lived process."""
    from jobs.schedule import periodic_jobs

    from .extensions import db

    try:
        return periodic_jobs()
    finally:
        db.session.remove()


@click.command("rotate-keys")
@with_appcontext
def rotate_keys() -> None:
    """Re-encrypt every stored secret with the first encryption key."""
    from .extensions import db
    from .vault import rotate

    count = 0
    for mapper in db.Model.registry.mappers:
        model = mapper.class_
        columns = getattr(model, "__encrypted__", ())
        if not columns:
            continue
        for row in db.session.execute(select(model)).scalars():
            for column in columns:
                value = getattr(row, column)
                if value is not None:
                    setattr(row, column, rotate(value))
                    count += 1
    count += _rotate_secret_settings(rotate)
    db.session.commit()
    click.echo(f"Re-encrypted {count} secret(s) with the first key.")


def _rotate_secret_settings(rotate) -> int:
    """Secrets kept as settings (the SMTP password) rotate with the rest; how many there were."""
    from .email_settings import PASSWORD_SETTING
    from .models.setting import get_setting, set_setting

    stored = get_setting(PASSWORD_SETTING)
    if not stored:
        return 0
    set_setting(PASSWORD_SETTING, rotate(stored.encode()).decode("ascii"))
    return 1


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--simulator/--no-simulator", default=True, show_default=True,
              help="Start the Apple simulator and point the portal at it.")
@click.option("--simulator-port", default=5050, show_default=True)
@with_appcontext
def dev(host: str, port: int, simulator: bool, simulator_port: int) -> None:
    """Migrate, then start web, worker, scheduler and the Apple simulator together; Ctrl-C stops them all."""
    from flask_migrate import upgrade

    from .devserver import run_processes
    from .queue import get_redis
    from .redis_server import embedded_redis_running, stop_embedded_redis

    # A fresh instance folder has an empty database: the scheduler would die on its first query
    # and take the others down with it. Alembic skips what is already applied.
    upgrade()
    redis_dir = None if current_app.config["REDIS_URL"] else current_app.config["EMBEDDED_REDIS_DIR"]
    own_redis = redis_dir is not None and not embedded_redis_running(redis_dir)
    get_redis()  # start the embedded Redis once, before the others race for it
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", PORTAL_INSTANCE_PATH=current_app.instance_path)
    commands = {
        "web": flask + ["run", "--host", host, "--port", str(port), "--no-reload"],
        "worker": flask + ["worker"],
        "scheduler": flask + ["scheduler"],
    }
    if simulator:
        commands["apple-sim"] = flask + ["depsim", "run", "--host", "127.0.0.1", "--port", str(simulator_port)]
        env["APPLE_DEP_URL"] = f"http://127.0.0.1:{simulator_port}"
        click.echo(f"Apple simulator: http://127.0.0.1:{simulator_port}/ (the portal talks to it instead of Apple)")
    click.echo(f"Portal: http://{host}:{port}/")
    try:
        code = run_processes(commands, env, restart=("worker", "scheduler"))
    finally:
        if own_redis:  # started for this command, so stopped with it (its queue saved for the next start)
            stop_embedded_redis(redis_dir)
    raise SystemExit(code)


@click.command("demo")
@click.option("--port", default=5000, show_default=True)
@click.option("--simulator-port", default=5050, show_default=True)
@click.pass_context
@with_appcontext
def demo(ctx: click.Context, port: int, simulator_port: int) -> None:
    """Migrate, create a demo admin (printing its credentials) and start everything."""
    from flask_migrate import upgrade

    upgrade()
    instance = Path(current_app.instance_path)
    username, password = _ensure_demo_admin(instance)
    token_file = _ensure_demo_token(instance)
    click.echo("")
    click.echo("=" * 72)
    click.echo(f"  Demo admin:  {username}")
    click.echo(f"  Password:    {password}")
    click.echo(f"  Open:        http://127.0.0.1:{port}/")
    if token_file:
        click.echo("  Try it:      Add Server, with the token file")
        click.echo(f"               {token_file}")
        click.echo("               and the private key “Generated here: Demo key”.")
    click.echo("=" * 72)
    click.echo("")
    ctx.invoke(dev, port=port, simulator_port=simulator_port)


def _ensure_demo_token(instance: Path) -> Path | None:
    """A generated key pair and a simulator token for it, so the demo starts with Add Server."""
    from .depsim.state import SimState
    from .extensions import db
    from .models import ManagedServer
    from .servers.key_pairs import create_key_pair

    demo_dir = instance / "demo"
    existing = sorted(demo_dir.glob("*_smime.p7m")) if demo_dir.exists() else []
    if existing:
        return existing[-1]
    if db.session.execute(select(ManagedServer.id)).first():
        return None  # the admin already has servers: leave them alone
    pending = create_key_pair("Demo key", 365)
    db.session.commit()
    sim = SimState(current_app.config["DEPSIM_STATE_DIR"])
    token = sim.issue_token("Demo MDM", pending.certificate_pem.encode(), devices=1500)
    demo_dir.mkdir(parents=True, exist_ok=True)
    path = demo_dir / sim.token_filename("Demo MDM")
    path.write_bytes(token)
    return path


def _ensure_demo_admin(instance: Path) -> tuple[str, str]:
    """Create the demo admin once; its password is kept in an owner-only file to show it again."""
    from .extensions import db
    from .models import Admin

    secret_file = instance / "demo-admin-password"
    username = "admin"
    admin = db.session.execute(select(Admin).where(Admin.username == username)).scalar_one_or_none()
    if admin is not None and secret_file.exists():
        return username, secret_file.read_text().strip()
    password = secrets.token_urlsafe(12)
    if admin is None:
        admin = Admin(username=username)
        db.session.add(admin)
    admin.set_password(password)
    db.session.commit()
    fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return username, password
