"""Run several processes together with interleaved, prefixed logs; Ctrl-C stops them all.

Used by `flask dev` (web, worker, scheduler, Apple simulator) so one command starts a complete
portal on a laptop. The children run in sessions of their own (a Ctrl-C reaches this process
only, which stops them in order), so SIGTERM and SIGHUP (`kill`, a closed terminal, a service
manager) stop them too instead of leaving them running without it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

COLOURS = ["\033[36m", "\033[33m", "\033[35m", "\033[32m", "\033[34m"]
RESET = "\033[0m"


RESTART_DELAYS = (1, 2, 5, 10, 30)  # seconds before starting a crashed process again, then every 30 s
STEADY_S = 60  # a process that ran this long before ending starts again after the first delay


def run_processes(commands: dict[str, list[str]], env: dict[str, str], *, restart: tuple[str, ...] = ()) -> int:
    """Start every command, relay their output line by line, stop all when one ends or on Ctrl-C.

    The processes named in `restart` (the worker and the scheduler of `flask dev`) are started again when they end
    instead: RQ's worker exits on a Redis timeout, and a laptop's Redis stalls (a suspend, a busy disk); the portal
    carries on rather than stopping the web server with it."""
    width = max(len(name) for name in commands)
    colour = sys.stdout.isatty()
    lock = threading.Lock()
    procs: dict[str, subprocess.Popen] = {}
    prefixes: dict[str, str] = {}

    def start(name: str) -> None:
        proc = subprocess.Popen(commands[name], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, start_new_session=True)
        procs[name] = proc
        threading.Thread(target=_relay, args=(proc, prefixes[name], lock), daemon=True).start()

    for i, name in enumerate(commands):
        prefixes[name] = f"{COLOURS[i % len(COLOURS)] if colour else ''}{name:<{width}} |{RESET if colour else ''} "
        start(name)
    started_at = {name: time.monotonic() for name in commands}
    crashes = {name: 0 for name in restart}
    due: dict[str, float] = {}  # restartable processes that ended: when they start again

    exit_code = 0
    previous = {sig: signal.signal(sig, _stop_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            ended = [name for name, p in procs.items() if p.poll() is not None and name not in due]
            final = [name for name in ended if name not in restart]
            if final:
                exit_code = next(procs[name].returncode for name in final) or 0
                _say(lock, f"{', '.join(final)} stopped; stopping the others")
                break
            for name in ended:
                ran = time.monotonic() - started_at[name]
                if ran >= STEADY_S:  # it had been running well: not a crash loop
                    crashes[name] = 0
                delay = RESTART_DELAYS[min(crashes[name], len(RESTART_DELAYS) - 1)]
                crashes[name] += 1
                _say(lock, f"{name} stopped (exit code {procs[name].returncode}); starting it again in {delay} s")
                due[name] = time.monotonic() + delay
            for name, when in list(due.items()):
                if time.monotonic() >= when:
                    del due[name]
                    started_at[name] = time.monotonic()
                    start(name)
            time.sleep(0.2)
    except KeyboardInterrupt:
        _say(lock, "Ctrl-C: stopping everything")
    except _Stopped as stopped:
        _say(lock, f"{stopped}: stopping everything")
    finally:
        _stop_all(procs)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return exit_code


class _Stopped(Exception):
    """SIGTERM or SIGHUP reached the runner."""


def _stop_signal(signum, _frame) -> None:
    raise _Stopped(signal.Signals(signum).name)


def _relay(proc: subprocess.Popen, prefix: str, lock: threading.Lock) -> None:
    for line in proc.stdout:
        with lock:
            sys.stdout.write(prefix + line)
            sys.stdout.flush()


def _say(lock: threading.Lock, message: str) -> None:
    with lock:
        print(f"--- {message}", flush=True)


def _stop_all(procs: dict[str, subprocess.Popen], grace: float = 8.0) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
