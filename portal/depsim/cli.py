"""`flask depsim …` commands: run the simulator, issue a token file from the command line.

The lead registers `depsim_cli` on the portal app; the state directory comes from the app's
`DEPSIM_STATE_DIR` setting (default <instance>/depsim) so CLI and simulator share state.
"""
from __future__ import annotations

import os
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

depsim_cli = AppGroup("depsim", help="The bundled Apple DEP simulator.")


def state_dir() -> str:
    """DEPSIM_STATE_DIR, or <instance>/depsim."""
    return current_app.config.get("DEPSIM_STATE_DIR") or os.path.join(current_app.instance_path, "depsim")


@depsim_cli.command("run")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5050, show_default=True, type=int, help="TCP port.")
def run(host: str, port: int) -> None:
    """Serve the simulator (Apple endpoints, /_sim/ control API and the page at /)."""
    from werkzeug.serving import run_simple

    from . import create_depsim_app

    directory = state_dir()
    click.echo(f"DEP simulator on http://{host}:{port}/ (state in {directory})")
    run_simple(host, port, create_depsim_app(directory), threaded=True, use_reloader=False)


@depsim_cli.command("issue-token")
@click.option("--cert", "cert", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The MDM server's public certificate (PEM).")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the .p7m token file.")
@click.option("--server", "server", default="ADE Portal Test Server", show_default=True,
              help="Simulated MDM server name (created if missing).")
@click.option("--devices", default=100, show_default=True, type=click.IntRange(min=0),
              help="Devices to generate when the server is new.")
def issue_token(cert: Path, out: Path, server: str, devices: int) -> None:
    """Write a token file for SERVER encrypted to CERT (a new token replaces the old one)."""
    from .state import SimState

    state = SimState(state_dir())
    existed = any(s["name"] == server for s in state.servers())
    try:
        data = state.issue_token(server, cert.read_bytes(), devices=devices)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    out.write_bytes(data)
    summary = state.server(server)
    action = "Issued a new token for" if existed else f"Created server with {devices} devices and a token for"
    click.echo(f"{action} {server!r} (uuid {summary['uuid']}, {summary['device_count']} devices).")
    click.echo(f"Wrote {out} (Apple would name it {state.token_filename(server)}); "
               f"expires {summary['token_expiry']}.")
