"""Benchmark of the device synchronization against the bundled Apple simulator.

Syncs N devices (default 100,000) from the simulator into a fresh database and prints:

* the time of a bare client-only fetch of the same pages (DEPClient alone, nothing stored),
* the portal's full sync time (portal.servers.sync.run_sync, the worker's code path),
* their ratio (target ≤ 1.3) and the devices per second: --runs pairs (default 3), each pair back
  to back and each full sync into a fresh schema, and the median ratio, since the speed of this
  kind of machine drifts by ±15 % from one run to the next,
* the peak memory of the worker during the full sync,
* the time of an incremental sync after 1 % of the devices changed (target < 2 s at 100,000),
* whether the portal then holds exactly the simulator's devices,

and last a line to paste into bench/README.md's table. Figures are printed, never asserted.

Usage (from the repository root, in the project's virtualenv):

    python bench/sync.py                         # 100,000 devices, fresh SQLite file in a temp dir
    python bench/sync.py --devices 20000 --runs 1
    python bench/sync.py --database-url postgresql://postgres@127.0.0.1:5432/bench

A PostgreSQL database's `public` schema is DROPPED and recreated first (as the test suite does), and
a SQLite file given with --database-url is deleted and recreated: point the script at a database
that holds nothing you want to keep.

How it measures:

* The simulator runs in a child process, as Apple runs on another machine: in this process it
  would compete with the sync for the GIL, and its allocations would count as the worker's.
  The child also generates the fleet, so this process's memory high-water mark stays low.
* run_sync() runs here, in an app context ended by session.remove() as the RQ worker does.
* tracemalloc slows allocation-heavy code several-fold, so the timed full sync runs without it
  (its memory figures: the resident set sampled every 10 ms, and ru_maxrss, whose high-water mark
  is often set by the imports already); a second, untimed full sync of the same simulated server
  into another portal server measures the peak of Python allocations.
"""
from __future__ import annotations

import argparse
import gc
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
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
from portal.models import Device, ManagedServer, SyncRun
from portal.queue import new_job_id
from portal.redis_server import embedded_redis_url, stop_embedded_redis
from portal.servers.services import KeyChoice, add_server, open_token
from portal.servers.sync import PAGE_LIMIT, run_sync

SIM_SERVER = "Bench MDM"        # the simulated Apple MDM server
OTHER_SIM_SERVER = "Other MDM"  # where the incremental step moves some devices to
PORTAL_SERVER = "Bench"
RATIO_TARGET = 1.3
INCREMENTAL_TARGET_S = 2.0      # at 100,000 devices, 1 % of them changed
MIB = 1024 * 1024

# The child generates the fleet and writes a token for our certificate (argv: state dir, devices,
# certificate file, token file), prints its URL, then serves until we close its stdin.
SIMULATOR_CHILD = f"""
import sys
from pathlib import Path
from portal.depsim.state import SimState
from portal.depsim.testing import running_simulator
state_dir, devices, cert, token = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
state = SimState(state_dir)
token.write_bytes(state.issue_token({SIM_SERVER!r}, cert.read_bytes(), devices=devices))
state.create_server({OTHER_SIM_SERVER!r})
with running_simulator(state_dir) as sim:
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
    parser = argparse.ArgumentParser(description="Benchmark the device sync against the bundled Apple simulator.")
    parser.add_argument("--devices", type=int, default=100_000, metavar="N",
                        help="devices on the simulated server (default 100,000)")
    parser.add_argument("--database-url", metavar="URL",
                        help="database to sync into (default: a fresh SQLite file in a temp dir); "
                             "a PostgreSQL database's public schema is dropped and recreated first")
    parser.add_argument("--runs", type=int, default=3, metavar="R",
                        help="bare fetch / full sync pairs, each full sync into a fresh schema; the ratio "
                             "reported is their median (default 3: one run's ratio varies by ±15 %% here)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.devices < 400:
        parser.error("--devices must be at least 400 (the incremental step changes 1 % in four ways)")
    return args


def run_benchmark(args: argparse.Namespace, work: Path, redis_url: str) -> int:
    n = args.devices
    started = time.perf_counter()
    pair = generate_key_pair(common_name="ade-bench", days=365)

    t = time.perf_counter()
    app = make_app(work, args.database_url, redis_url)
    database_label = prepare_schema(app)
    schema_s = time.perf_counter() - t

    t = time.perf_counter()
    with SimulatorProcess(work, n, pair.certificate_pem) as sim:
        fleet_s = time.perf_counter() - t
        app.config["APPLE_DEP_URL"] = sim.url
        print(f"ADE sync benchmark: {n:,} devices, {database_label}, simulator in a child process")
        print(f"  setup ....................... schema migrated in {schema_s:.1f} s, "
              f"simulator fleet generated in {fleet_s:.1f} s")

        # (1)-(3) The floor (the same pages fetched by the client alone, nothing stored) and the
        # portal's full sync as the worker runs it, in pairs: the machine's speed drifts between
        # runs, so each pair is measured back to back and the median ratio is the figure.
        pairs = []
        for number in range(1, args.runs + 1):
            if number > 1:
                prepare_schema(app)  # every full sync starts from an empty database
            fetch = bare_fetch(app, sim.token_file, pair.private_key_pem)
            add_portal_server(app, PORTAL_SERVER, sim.token_file, pair.private_key_pem)
            full = timed_sync(app, new_run(app, PORTAL_SERVER))
            if full["status"] != "succeeded":
                return report_failure("full sync", full)
            pairs.append((fetch, full))
            print(f"  run {number} of {args.runs} .................. bare client fetch {fetch['seconds']:.2f} s "
                  f"({fetch['pages']} pages, {fetch['devices']:,} devices), portal full sync "
                  f"{full['seconds']:.2f} s ({full['pages']} pages, {full['added']:,} added): "
                  f"ratio {full['seconds'] / fetch['seconds']:.2f}")
        ratios = sorted(full["seconds"] / fetch["seconds"] for fetch, full in pairs)
        ratio = statistics.median(ratios)
        full = pairs[0][1]  # memory figures: the first sync of this process (later ones start from its high-water mark)
        rate = statistics.median(f["devices_seen"] / f["seconds"] for _, f in pairs)
        spread = f" (runs: {ratios[0]:.2f}–{ratios[-1]:.2f})" if len(ratios) > 1 else ""
        print(f"  ratio sync / bare fetch ..... {ratio:.2f} median{spread} (target ≤ {RATIO_TARGET}) "
              f"{verdict(ratio <= RATIO_TARGET)}")
        print(f"  throughput .................. {rate:,.0f} devices/s")
        print(f"  worker memory, RSS .......... peak {full['rss_peak'] / MIB:.0f} MiB during the sync, "
              f"+{full['rss_peak_growth'] / MIB:.1f} MiB over the {full['rss_start'] / MIB:.0f} MiB before it "
              f"(sampled every 10 ms)")
        print(f"  worker memory, ru_maxrss .... +{full['maxrss_growth'] / MIB:.1f} MiB high-water growth "
              f"({full['maxrss_before'] / MIB:.0f} → {full['maxrss_after'] / MIB:.0f} MiB)")

        # (4) 1 % of the fleet changes in Apple Business Manager, then an incremental sync.
        changed = change_one_percent(sim.state, n)
        print(f"  changes in the simulator .... {changed['added']} added, {changed['modified']} modified, "
              f"{changed['released']} released, {changed['moved']} moved to another server")
        inc = timed_sync(app, new_run(app, PORTAL_SERVER))
        if inc["status"] != "succeeded":
            return report_failure("incremental sync", inc)
        inc_ok = verdict(inc["seconds"] < INCREMENTAL_TARGET_S) if n >= 100_000 else "(target applies at 100,000)"
        print(f"  incremental sync ............ {inc['seconds']:.2f} s, {inc['kind']} "
              f"(target < {INCREMENTAL_TARGET_S:.0f} s) {inc_ok}")
        expected = {"added": changed["added"], "updated": changed["modified"],
                    "removed": changed["released"] + changed["moved"]}
        got = {key: inc[key] for key in expected}
        print(f"  incremental counts .......... {got['added']} added, {got['updated']} updated, "
              f"{got['removed']} removed {verdict(got == expected, f'MISMATCH (expected {expected})')}")
        portal_count, sim_count = device_counts(app, sim.state)
        print(f"  device count check .......... portal {portal_count:,}, simulator {sim_count:,} "
              f"{verdict(portal_count == sim_count, 'MISMATCH')}")

        # (5) Python allocations, in a run of its own since tracemalloc distorts timings (into an
        # empty database again: one Apple MDM server is connected to one managed server at most).
        prepare_schema(app)
        add_portal_server(app, PORTAL_SERVER, sim.token_file, pair.private_key_pem)
        traced = timed_sync(app, new_run(app, PORTAL_SERVER), trace_memory=True)
        if traced["status"] != "succeeded":
            return report_failure("traced full sync", traced)
        print(f"  worker memory, Python ....... {traced['traced_peak'] / MIB:.1f} MiB peak of Python allocations "
              f"(tracemalloc, separate full sync: {traced['seconds']:.0f} s with tracing)")

    print(f"  whole benchmark ............. {time.perf_counter() - started:.0f} s")
    print("README row: | Database | Devices | Bare fetch | Full sync | Ratio | Devices/s "
          "| Worker memory (RSS growth / Python peak) | Incremental 1 % |")
    bare_s = statistics.median(f["seconds"] for f, _ in pairs)
    full_s = statistics.median(f["seconds"] for _, f in pairs)
    print(f"| {database_label} | {n:,} | {bare_s:.1f} s | {full_s:.1f} s | {ratio:.2f}{spread} "
          f"| {rate:,.0f} | +{full['rss_peak_growth'] / MIB:.0f} / {traced['traced_peak'] / MIB:.0f} MiB "
          f"| {inc['seconds']:.2f} s |")
    return 0


# --- setup -----------------------------------------------------------------------------------
def make_app(work: Path, url: str | None, redis_url: str):
    instance = work / "instance"
    url = url or f"sqlite:///{work / 'portal-bench.db'}"
    return create_app({  # APPLE_DEP_URL is set once the simulator listens
        "INSTANCE_PATH": str(instance),
        "SQLALCHEMY_DATABASE_URI": normalise_database_url(url, instance),
        "REDIS_URL": redis_url,
        "DEPSIM_STATE_DIR": str(work / "depsim"),
    })


def prepare_schema(app) -> str:
    """Migrate a fresh schema; returns a label such as 'PostgreSQL 15.2' or 'SQLite 3.40.1'."""
    from flask_migrate import upgrade

    with app.app_context():
        postgres = db.engine.dialect.name == "postgresql"
        if postgres:
            with db.engine.begin() as conn:  # fresh, whatever a previous run left behind
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        else:
            _empty_sqlite_file()
        upgrade()
        with db.engine.connect() as conn:
            if postgres:
                label = "PostgreSQL " + conn.execute(text("SHOW server_version")).scalar_one().split()[0]
            else:
                label = "SQLite " + conn.execute(text("SELECT sqlite_version()")).scalar_one()
        db.session.remove()
    return label


def _empty_sqlite_file() -> None:
    """Delete the SQLite database file (and its WAL) so the next migration starts from nothing."""
    path = db.engine.url.database
    db.session.remove()
    db.engine.dispose()
    if path and path != ":memory:":
        for suffix in ("", "-wal", "-shm"):
            Path(path + suffix).unlink(missing_ok=True)


class SimulatorProcess:
    """The simulator in a child process: `.url`, `.token_file`, and `.state` to change its fleet."""

    def __init__(self, work: Path, devices: int, certificate_pem: bytes):
        self.state_dir = work / "depsim"
        self.devices = devices
        self.cert_path = work / "bench-cert.pem"
        self.cert_path.write_bytes(certificate_pem)
        self.token_path = work / "bench-token.p7m"

    def __enter__(self) -> "SimulatorProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SIMULATOR_CHILD, str(self.state_dir), str(self.devices),
             str(self.cert_path), str(self.token_path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("http://"):
            self.__exit__()
            raise RuntimeError("the simulator process did not start (see its error above)")
        self.token_file = self.token_path.read_bytes()
        # The state lives in one SQLite file: changes made here are what the child serves.
        self.state = SimState(self.state_dir)
        return self

    def __exit__(self, *exc) -> None:
        self.proc.stdin.close()  # the child's stdin.read() returns and it shuts its server down
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def add_portal_server(app, name: str, token_file: bytes, key_pem: bytes) -> None:
    """Add the server as the Add Server form does (without the jobs that follow it)."""
    with app.app_context():
        add_server(name, open_token(token_file, KeyChoice(data=key_pem)))
        db.session.commit()
        db.session.remove()


def new_run(app, server_name: str) -> int:
    """A queued SyncRun as start_sync() creates it, not enqueued: this process runs it."""
    with app.app_context():
        server = db.session.execute(select(ManagedServer).where(ManagedServer.name == server_name)).scalar_one()
        run = SyncRun(server_id=server.id, job_id=new_job_id(), trigger="manual", actor="bench")
        db.session.add(run)
        db.session.commit()
        run_id = run.id
        db.session.remove()
    return run_id


def change_one_percent(state: SimState, n: int) -> dict:
    """Change 1 % of the fleet in the simulator: a quarter each added, modified, released, moved.

    The changed devices are spread over the whole fleet (every k-th one), so the portal's lookups
    touch the whole index rather than one warm corner of it.
    """
    quarter = n // 100 // 4
    # The simulator's own database: its API has no "list every serial" call.
    current = [row["serial"] for row in state.db.query(
        "SELECT d.serial FROM devices d JOIN servers s ON s.id = d.server_id"
        " WHERE s.name = ? AND d.removed = 0 ORDER BY d.id", (SIM_SERVER,))]
    picked = current[::len(current) // (3 * quarter)][:3 * quarter]
    modify, release, move = picked[:quarter], picked[quarter:2 * quarter], picked[2 * quarter:]
    # Assigning a profile is the most common modification of a device in practice.
    results, _ = state.assign_profile(state.server(SIM_SERVER)["id"], "BENCH0000PROFILE0000000000000001",
                                      modify, throttled_allowed=False)
    state.release_devices(release)
    state.move_devices(move, OTHER_SIM_SERVER)
    state.add_devices(SIM_SERVER, count=quarter)
    return {"added": quarter, "modified": list(results.values()).count("SUCCESS"),
            "released": len(release), "moved": len(move)}


def device_counts(app, state: SimState) -> tuple[int, int]:
    """Devices currently assigned to the benchmark server, in the portal and in the simulator."""
    with app.app_context():
        portal = db.session.execute(
            select(func.count()).select_from(Device).join(ManagedServer, ManagedServer.id == Device.server_id)
            .where(ManagedServer.name == PORTAL_SERVER, Device.removed_at.is_(None))).scalar_one()
        db.session.remove()
    return portal, state.server(SIM_SERVER)["device_count"]


# --- measurements ----------------------------------------------------------------------------
def bare_fetch(app, token_file: bytes, key_pem: bytes) -> dict:
    """Every page of a full fetch by the client alone, configured as client_for() configures it."""
    token = decrypt_token(token_file, load_private_key(key_pem))
    config = app.config
    pages = devices = 0
    t = time.perf_counter()
    client = DEPClient(token, config["APPLE_DEP_URL"], protocol_version=config["DEP_PROTOCOL_VERSION"],
                       max_retries=config["APPLE_MAX_RETRIES"], backoff=config["APPLE_RETRY_BACKOFF"])
    for page in client.iter_fetch(limit=PAGE_LIMIT):  # until more_to_follow is false
        pages += 1
        devices += len(page.devices)
    return {"pages": pages, "devices": devices, "seconds": time.perf_counter() - t}


def timed_sync(app, run_id: int, *, trace_memory: bool = False) -> dict:
    """run_sync(run_id) timed, with this process's memory during it."""
    gc.collect()
    maxrss_before = _max_rss()
    if trace_memory:
        tracemalloc.start()
    t = time.perf_counter()
    with RSSSampler() as rss, app.app_context():  # as the RQ worker runs a job (portal.worker)
        try:
            run_sync(run_id)
        finally:
            db.session.remove()
    seconds = time.perf_counter() - t
    traced_peak = 0
    if trace_memory:
        traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    maxrss_after = _max_rss()
    with app.app_context():
        run = db.session.get(SyncRun, run_id)
        result = {name: getattr(run, name) for name in ("status", "kind", "pages", "devices_seen", "added",
                                                        "updated", "removed", "error_code", "error_message")}
        db.session.remove()
    return {**result, "seconds": seconds, "traced_peak": traced_peak,
            "rss_start": rss.start, "rss_peak": rss.peak, "rss_peak_growth": rss.peak - rss.start,
            "maxrss_before": maxrss_before, "maxrss_after": maxrss_after,
            "maxrss_growth": maxrss_after - maxrss_before}


def _max_rss() -> int:
    """This process's resident-memory high-water mark in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class RSSSampler:
    """The largest resident set seen while the block runs (Linux /proc; 0 elsewhere).

    ru_maxrss cannot show the sync's own peak when the imports set a higher mark earlier.
    """

    INTERVAL = 0.01

    def __enter__(self) -> "RSSSampler":
        self.start = self.peak = self._current()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._current())

    def _sample(self) -> None:
        while not self._stop.wait(self.INTERVAL):
            self.peak = max(self.peak, self._current())

    @staticmethod
    def _current() -> int:
        try:
            with open("/proc/self/statm") as statm:
                return int(statm.read().split()[1]) * resource.getpagesize()
        except OSError:
            return 0


# --- output ----------------------------------------------------------------------------------
def verdict(ok: bool, bad: str = "ABOVE TARGET") -> str:
    return "OK" if ok else bad


def report_failure(what: str, run: dict) -> int:
    print(f"  {what} FAILED: {run['error_code']}: {run['error_message']}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
