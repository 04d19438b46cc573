"""Run the simulator on a free localhost port in a background thread (tests and local demos)."""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

from . import create_depsim_app
from .state import SimState


class _QuietHandler(WSGIRequestHandler):
    """No access log lines: test output stays readable."""

    def log_request(self, *args, **kwargs) -> None:
        pass


@dataclass
class Simulator:
    """A running simulator: its base URL (use as the DEP client's base_url) and its state."""

    url: str
    state: SimState
    app: Flask


@contextmanager
def running_simulator(state_dir: str | os.PathLike) -> Iterator[Simulator]:
    """Serve the simulator over real HTTP on 127.0.0.1:<free port> until the block ends."""
    app = create_depsim_app(state_dir)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    # A short poll interval keeps shutdown (once per test) from costing half a second.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="depsim", daemon=True)
    thread.start()
    try:
        yield Simulator(url=f"http://127.0.0.1:{server.server_port}",
                        state=app.extensions["depsim_state"], app=app)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
