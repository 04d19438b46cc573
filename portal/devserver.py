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


def run_processes(commands: dict[str, list[str]], env: dict[str, str]) -> int:
    """Start every command, relay their output line by line, stop all when one ends or on Ctrl-C."""
    width = max(len(name) for name in commands)
    colour = sys.stdout.isatty()
    lock = threading.Lock()
    procs: dict[str, subprocess.Popen] = {}
    for i, (name, argv) in enumerate(commands.items()):
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, start_new_session=True)
        procs[name] = proc
        prefix = f"{COLOURS[i % len(COLOURS)] if colour else ''}{name:<{width}} |{RESET if colour else ''} "
        threading.Thread(target=_relay, args=(proc, prefix, lock), daemon=True).start()

    exit_code = 0
    previous = {sig: signal.signal(sig, _stop_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        while all(p.poll() is None for p in procs.values()):
            time.sleep(0.2)
        ended = [name for name, p in procs.items() if p.poll() is not None]
        exit_code = next(p.returncode for p in procs.values() if p.poll() is not None) or 0
        _say(lock, f"{', '.join(ended)} stopped; stopping the others")
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
