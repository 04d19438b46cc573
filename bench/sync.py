"""Benchmark of the device synchronization against the bundled Apple simulator.

Syncs N devices (default 100,000) from the simulator into a fresh database and prints:

* the time of a bare client-only fetch of the same pages (DEPClient alone, no database),
* the portal's full sync time (portal.servers.sync.run_sync, the worker's code path),
* their ratio (target ≤ 1.3) and the devices per second,
* the peak memory of the worker during the full sync,
* the time of an incremental sync after 1 % of the devices changed (target < 2 s at 100,000),
* whether the portal now holds exactly the simulator's devices,

then one line to paste into the README's benchmark table. Figures are printed, never asserted.

Usage (from the repository root, in the project's virtualenv):

    python bench/sync.py                         # 100,000 devices, fresh SQLite file in a temp dir
    python bench/sync.py --devices 20000
    python bench/sync.py --database-url postgresql://postgres@127.0.0.1:5432/bench

A PostgreSQL database's `public` schema is DROPPED and recreated first (as the test suite does):
point the script at a database that holds nothing you want to keep.

The simulator runs in a child process, as Apple would be on another machine: in this process it
would compete with the sync for the GIL and its allocations would count as the worker's memory.
"""
from __future__ import annotations

import argparse
import gc
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from sqlalchemy import func, select, text

from portal import create_app
from portal.apple.client import DEPClient
from portal.apple.keys import generate_key_pair, load_private_key
from portal.apple.tokens import decrypt_token
from portal.config import database_url as normalise_database_url
from portal.depsim.state import SimState
from portal.extensions import db
from portal.models import Device, SyncRun
from portal.queue import new_job_id
from portal.redis_server import embedded_redis_url, stop_embedded_redis
from portal.servers.services import KeyChoice, add_server, open_token
from portal.servers.sync import PAGE_LIMIT, run_sync

SIM_SERVER = "Bench MDM"        # the simulated Apple MDM server the portal syncs
OTHER_SIM_SERVER = "Other MDM"  # where the incremental step moves some devices to
PORTAL_SERVER = "Bench"
RATIO_TARGET = 1.3
INCREMENTAL_TARGET_S = 2.0  # at 100,000 devices (1 % changed)
MIB = 1024 * 1024

# The child process serves the simulator until we close its stdin (no signals, no pid hunting).
SIMULATOR_CHILD = """
import sys
from portal.depsim.testing import running_simulator
with running_simulator(sys.argv[1]) as sim:
    print(sim.url, flush=True)
    sys.stdin.read()
"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ade-bench-") as tmp:
        work = Path(tmp)
        redis_url = embedded_redis_url(work / "redis")
        try:
            return run_benchmark(args, work, redis_url)
        finally:
            stop_embedded_redis(work / "redis")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=100_000, help="devices on the simulated server (default 100,000)")
    parser.add_argument("--database-url", default=None,
                        help="database to sync into (default: a fresh SQLite file in a temp dir); "
                             "a PostgreSQL database's public schema is dropped first")
    args = parser.parse_args(argv)
    if args.devices < 100:
        parser.error("--devices must be at least 100 (the incremental step changes 1 %)")
    return args


def run_benchmark(args: argparse.Namespace, work: Path, redis_url: str) -> int:
    n = args.devices
    started = time.perf_counter()

    # --- the simulated Apple side: a server with N devices and a token for our key pair
    t = time.perf_counter()
    pair = generate_key_pair(common_name="ade-bench", days=365)
    state = SimState(work / "depsim")
    token_file = state.issue_token(SIM_SERVER, pair.certificate_pem, devices=n)
    state.create_server(OTHER_SIM_SERVER)
    fleet_s = time.perf_counter() - t

    # --- the portal: a fresh schema through the real migrations
    t = time.perf_counter()
    app = make_app(work, args.database_url, redis_url)
    database_label = prepare_schema(app)
    schema_s = time.perf_counter() - t

    with simulator_process(work / "depsim") as sim_url:
        app.config["APPLE_DEP_URL"] = sim_url
        print(f"ADE sync benchmark: {n:,} devices, {database_label}, simulator in a child process")
        print(f"  setup ....................... fleet generated in {fleet_s:.1f} s, schema migrated in {schema_s:.1f} s")

        # (1) The floor: the same pages fetched by the client alone, nothing stored.
        fetch = bare_fetch(app, token_file, pair.private_key_pem)
        print(f"  bare client fetch ........... {fetch['pages']} pages, {fetch['devices']:,} devices "
              f"in {fetch['seconds']:.2f} s")

        # (2) The portal's full sync, measured as the worker runs it.
        run_id = add_portal_server(app, token_file, pair.private_key_pem)
        full = timed_sync(app, run_id, trace_memory=True)
        if full["status"] != "succeeded":
            return report_failure("full sync", full)
        print(f"  portal full sync ............ {full['pages']} pages, {full['added']:,} added "
              f"in {full['seconds']:.2f} s")

        # (3) How much the database work costs on top of the fetch.
        ratio = full["seconds"] / fetch["seconds"]
        rate = full["devices_seen"] / full["seconds"]
        print(f"  ratio sync / bare fetch ..... {ratio:.2f} (target ≤ {RATIO_TARGET}) {verdict(ratio <= RATIO_TARGET)}")
        print(f"  throughput .................. {rate:,.0f} devices/s")
        print(f"  worker peak memory .......... {full['traced_peak'] / MIB:.1f} MiB Python allocations "
              f"(tracemalloc peak during the sync)")
        print(f"                                +{full['rss_growth'] / MIB:.1f} MiB process high-water mark "
              f"(ru_maxrss growth during the sync; {full['rss_after'] / MIB:.0f} MiB in all)")

        # (4) 1 % of the fleet changes in Apple Business Manager, then an incremental sync.
        expected = change_one_percent(state, n)
        run_id = new_run(app, PORTAL_SERVER)
        inc = timed_sync(app, run_id, trace_memory=False)
        if inc["status"] != "succeeded":
            return report_failure("incremental sync", inc)
        got = {k: inc[k] for k in ("added", "updated", "removed")}
        inc_target = f"target < {INCREMENTAL_TARGET_S:.0f} s at 100,000"
        inc_ok = verdict(inc["seconds"] < INCREMENTAL_TARGET_S) if n >= 100_000 else "(below 100,000: no target)"
        print(f"  changes in the simulator .... {expected['added']} added, {expected['modified']} modified, "
              f"{expected['released']} released, {expected['moved']} moved to another server")
        print(f"  incremental sync ({inc['kind']}) .. {got['added']} added, {got['updated']} updated, "
              f"{got['removed']} removed in {inc['seconds']:.2f} s ({inc_target}) {inc_ok}")
        counts_match = got == {"added": expected["added"], "updated": expected["modified"],
                               "removed": expected["released"] + expected["moved"]}
        print(f"  incremental counts .......... {verdict(counts_match, 'MISMATCH')} "
              "(added = added, updated = modified, removed = released + moved)")

        portal_count, sim_count = device_counts(app, state)
        print(f"  device count check .......... portal {portal_count:,} / simulator {sim_count:,} "
              f"{verdict(portal_count == sim_count, 'MISMATCH')}")

    print(f"  whole benchmark ............. {time.perf_counter() - started:.0f} s")
    print("README row (| Database | Devices | Bare fetch | Full sync | Ratio | Devices/s | Peak memory "
          "(tracemalloc / RSS growth) | Incremental 1 % |):")
    print(f"| {database_label} | {n:,} | {fetch['seconds']:.1f} s | {full['seconds']:.1f} s | {ratio:.2f} "
          f"| {rate:,.0f} | {full['traced_peak'] / MIB:.0f} / {full['rss_growth'] / MIB:.0f} MiB "
          f"| {inc['seconds']:.2f} s |")
    return 0


# --- setup -----------------------------------------------------------------------------------
def make_app(work: Path, url: str | None, redis_url: str):
    instance = work / "instance"
    instance.mkdir()
    url = url or f"sqlite:///{work / 'portal-bench.db'}"
    return create_app({
        "INSTANCE_PATH": str(instance),
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(url, instance),
        "REDIS_URL": redis_url,
        "DEPSIM_STATE_DIR": str(work / "depsim"),
    })


def prepare_schema(app) -> str:
    """Migrate a fresh schema; returns a label such as 'PostgreSQL 16.4' or 'SQLite 3.45.1'."""
    from flask_migrate import upgrade

    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:  # fresh, whatever a previous run left behind
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade()
        with db.engine.connect() as conn:
            if db.engine.dialect.name == "postgresql":
                version = conn.execute(text("SHOW server_version")).scalar_one().split()[0]
                label = f"PostgreSQL {version}"
            else:
                label = f"SQLite {conn.execute(text('select sqlite_version()')).scalar_one()}"
        db.session.remove()
    return label


class simulator_process:
    """Serve the simulator state in a child process; yields its base URL."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir

    def __enter__(self) -> str:
        self.proc = subprocess.Popen([sys.executable, "-c", SIMULATOR_CHILD, str(self.state_dir)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        url = self.proc.stdout.readline().strip()
        if not url.startswith("http://"):
            self.__exit__()
            raise RuntimeError("the simulator process did not start")
        return url

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()  # the child's stdin.read() returns and it shuts the server down
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- measurements ----------------------------------------------------------------------------
def bare_fetch(app, token_file: bytes, key_pem: bytes) -> dict:
    """Every page of a full fetch by the client alone, configured as client_for() configures it."""
    token = decrypt_token(token_file, load_private_key(key_pem))
    config = app.config
    pages = devices = 0
    t = time.perf_counter()
    client = DEPClient(token, config["APPLE_DEP_URL"], protocol_version=config["DEP_PROTOCOL_VERSION"],
                       max_retries=config["APPLE_MAX_RETRIES"], backoff=config["APPLE_RETRY_BACKOFF"])
    for page in client.iter_fetch(limit=PAGE_LIMIT):  # stops when more_to_follow is false
        pages += 1
        devices += len(page.devices)
    return {"pages": pages, "devices": devices, "seconds": time.perf_counter() - t}


def add_portal_server(app, token_file: bytes, key_pem: bytes) -> int:
    """Add the server as the Add Server form does; returns a queued SyncRun's id."""
    with app.app_context():
        opened = open_token(token_file, KeyChoice(data=key_pem))
        add_server(PORTAL_SERVER, opened)
        db.session.commit()
        db.session.remove()
    return new_run(app, PORTAL_SERVER)


def new_run(app, server_name: str) -> int:
    """A queued SyncRun, as start_sync() creates it (without enqueueing: we run it ourselves)."""
    from portal.models import ManagedServer

    with app.app_context():
        server = db.session.execute(select(ManagedServer).where(ManagedServer.name == server_name)).scalar_one()
        run = SyncRun(server_id=server.id, job_id=new_job_id(), trigger="manual", actor="bench")
        db.session.add(run)
        db.session.commit()
        run_id = run.id
        db.session.remove()
    return run_id


def timed_sync(app, run_id: int, *, trace_memory: bool) -> dict:
    """run_sync() in an app context that ends with session.remove(), as the RQ worker does."""
    gc.collect()
    rss_before = _max_rss()
    if trace_memory:
        tracemalloc.start()
    t = time.perf_counter()
    with app.app_context():
        try:
            run_sync(run_id)
        finally:
            db.session.remove()
    seconds = time.perf_counter() - t
    traced_peak = 0
    if trace_memory:
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    rss_after = _max_rss()
    with app.app_context():
        run = db.session.get(SyncRun, run_id)
        result = {name: getattr(run, name) for name in ("status", "kind", "pages", "devices_seen", "added",
                                                        "updated", "removed", "error_code", "error_message")}
        db.session.remove()
    return {**result, "seconds": seconds, "traced_peak": traced_peak,
            "rss_growth": rss_after - rss_before, "rss_after": rss_after}


def _max_rss() -> int:
    """This process's resident-memory high-water mark in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def change_one_percent(state: SimState, n: int) -> dict:
    """Change 1 % of the fleet in the simulator: a quarter each added, modified, released, moved.

    The devices changed are spread over the whole fleet (every k-th device), so the portal's
    lookups hit the whole index rather than one warm corner of it.
    """
    changes = n // 100
    quarter = changes // 4
    current = [row["serial"] for row in state.db.query(
        "SELECT d.serial FROM devices d JOIN servers s ON s.id = d.server_id"
        " WHERE s.name = ? AND d.removed = 0 ORDER BY d.id", (SIM_SERVER,))]
    step = len(current) // (3 * quarter)
    picked = current[::step][:3 * quarter]
    modify, release, move = picked[:quarter], picked[quarter:2 * quarter], picked[2 * quarter:]
    added = changes - 3 * quarter  # the remainder goes to additions
    sim_server_id = state.server(SIM_SERVER)["id"]
    # A profile assignment is what most often modifies a device in practice.
    results, _ = state.assign_profile(sim_server_id, "BENCH-PROFILE-0001", modify, throttled_allowed=False)
    state.release_devices(release)
    state.move_devices(move, OTHER_SIM_SERVER)
    state.add_devices(SIM_SERVER, count=added)
    return {"added": added, "modified": sum(1 for r in results.values() if r == "SUCCESS"),
            "released": len(release), "moved": len(move)}


def device_counts(app, state: SimState) -> tuple[int, int]:
    """Devices currently assigned to the server, in the portal and in the simulator."""
    with app.app_context():
        portal = db.session.execute(
            select(func.count()).select_from(Device).where(Device.removed_at.is_(None))).scalar_one()
        db.session.remove()
    return portal, state.server(SIM_SERVER)["device_count"]


# --- output ----------------------------------------------------------------------------------
def verdict(ok: bool, bad: str = "ABOVE TARGET") -> str:
    return "OK" if ok else bad


def report_failure(what: str, run: dict) -> int:
    print(f"  {what} FAILED: {run['error_code']}: {run['error_message']}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
