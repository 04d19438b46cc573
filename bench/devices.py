"""Benchmark of the Managed Devices list at scale: pages, search, a deep page and the CSV export.

Seeds N current devices (default 100,000; plus 1 % removed ones) straight into a fresh database
with bulk INSERTs, then times requests through the Flask test client signed in as an admin, so
the figures are the server-side time of a request (routing, SQL, template), without a network:

* the device list's first page (/devices),
* searches and filters (a serial prefix; a model text with an OS filter; "no profile" sorted by
  model, descending; assignment states; "will fail to enroll"),
* a managed server's page, which counts its devices that will not enroll automatically (from
  the index ix_device_enroll: portal/devices/enrollment.py, not_ready_counts); on PostgreSQL also
  right after every device row was rewritten, as a full synchronization does, before a VACUUM
  (autovacuum off meanwhile) sets the visibility map that an index-only scan relies on,
* a deep page: the keyset cursor is followed once from page 1 to page 1,000 (100 rows a page),
  then that page's URL is timed,
* the full CSV export of the list (fewer repetitions; also its peak of Python allocations),
* last, Add Devices of 10,000 devices against the simulator beside the bare client's time for the
  same calls (target ratio ≤ 1.3): bench/assign.py, run in the same database (--assign 0 skips it).

Median and p95 over 50 requests each (after 3 warm-up requests). Targets: p95 under 50 ms for the
list, the searches, the server page and the deep page. Figures are printed, never asserted.

Usage (from the repository root, in the project's virtualenv):

    python bench/devices.py                         # 100,000 devices, fresh SQLite file in a temp dir
    python bench/devices.py --devices 20000
    python bench/devices.py --database-url postgresql://postgres@127.0.0.1:5432/bench

A PostgreSQL database's `public` schema is DROPPED and recreated first (as the test suite does):
point the script at a database that holds nothing you want to keep. After the bulk load the
script runs VACUUM ANALYZE on PostgreSQL, as autovacuum does shortly after a large load, and
ANALYZE device on SQLite, as the portal does after a full fetch.
"""
from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert, text

from portal import create_app
from portal.config import database_url as normalise_database_url
from portal.devices.counts import recount
from portal.extensions import db
from portal.models import Admin, AssignmentBatch, Device, EnrollmentProfile, ManagedServer, ServerConfiguration
from portal.redis_server import embedded_redis_url, stop_embedded_redis

TARGET_MS = 50.0
REPEAT = 50
CSV_REPEAT = 3
WARMUP = 3
ADMIN, PASSWORD = "bench", "bench password 123"
NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
MODELS = [("iPhone 15", "iPhone", "iOS"), ("iPhone 15 Pro", "iPhone", "iOS"), ("iPhone 14", "iPhone", "iOS"),
          ("iPad Air", "iPad", "iPadOS"), ("iPad Pro 11", "iPad", "iPadOS"), ("MacBook Air", "Mac", "OSX"),
          ("MacBook Pro 14", "Mac", "OSX"), ("iMac 24", "Mac", "OSX"), ("Apple TV 4K", "AppleTV", "tvOS"),
          ("Apple Vision Pro", "Vision", "visionOS")]
COLORS = ("SPACE GRAY", "SILVER", "MIDNIGHT", "STARLIGHT", "BLUE")
SERIAL_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ade-devbench-") as tmp:
        work = Path(tmp)
        redis_url = embedded_redis_url(work / "redis")
        try:
            status = run_benchmark(args, work, redis_url)
        finally:
            stop_embedded_redis(work / "redis")
    if args.assign:
        import assign  # bench/assign.py, beside this script

        print()
        status = assign.main(["--devices", str(args.assign)]
                             + (["--database-url", args.database_url] if args.database_url else [])) or status
    return status


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark the Managed Devices list at scale.")
    parser.add_argument("--devices", type=int, default=100_000, metavar="N",
                        help="current devices to seed (default 100,000; 1 %% removed ones are added)")
    parser.add_argument("--database-url", metavar="URL",
                        help="database to seed (default: a fresh SQLite file in a temp dir); "
                             "a PostgreSQL database's public schema is dropped and recreated first")
    parser.add_argument("--repeat", type=int, default=REPEAT, help=f"requests per measurement (default {REPEAT})")
    parser.add_argument("--assign", type=int, default=10_000, metavar="N",
                        help="devices for the Add Devices benchmark afterwards (default 10,000; 0 skips it)")
    args = parser.parse_args(argv)
    if args.devices < 1000:
        parser.error("--devices must be at least 1000")
    return args


def run_benchmark(args: argparse.Namespace, work: Path, redis_url: str) -> int:
    started = time.perf_counter()
    app = make_app(work, args.database_url, redis_url)
    label = prepare_schema(app)
    t = time.perf_counter()
    seed(app, args.devices)
    seed_s = time.perf_counter() - t
    print(f"Managed Devices benchmark: {args.devices:,} current devices (+{args.devices // 100:,} removed), "
          f"{label}, {args.repeat} requests per measurement")
    print(f"  setup: {args.devices + args.devices // 100:,} devices bulk-inserted in {seed_s:.1f} s")

    client = signed_in_client(app)
    results = []
    for name, url in [("list, first page", "/devices"),
                      ("search: serial prefix", f"/devices?q={app.config['BENCH_PREFIX']}"),
                      ("search: model text + OS", "/devices?q=pad+air&os=iPadOS"),
                      ("filter: no profile, model desc", "/devices?profile=none&sort=model&direction=desc"),
                      ("filter: assignment queued", "/devices?assignment=queued"),
                      ("filter: assignment failed", "/devices?assignment=failed&sort=assigned"),
                      ("server list, assigned date", f"/servers/{app.config['BENCH_SERVER']}/devices?sort=assigned"),
                      ("filter: will fail to enroll", "/devices?enroll=no")]:
        results.append((name, url, time_requests(client, url, args.repeat), TARGET_MS))
    server_page = f"/servers/{app.config['BENCH_SERVER']}"
    results.append(("server page (enroll counts)", server_page, time_requests(client, server_page, args.repeat),
                    TARGET_MS))

    pages = args.devices // 100
    deep_number = min(1000, pages)
    t = time.perf_counter()
    deep_url = follow_pages(client, "/devices", deep_number)
    follow_s = time.perf_counter() - t
    results.append((f"deep page {deep_number:,}", deep_url, time_requests(client, deep_url, args.repeat), TARGET_MS))

    csv_times, rows, size = [], 0, 0
    for _ in range(CSV_REPEAT):
        t = time.perf_counter()
        body = client.get("/devices.csv").get_data()
        csv_times.append(time.perf_counter() - t)
        rows, size = body.count(b"\n") - 1, len(body)
    del body
    tracemalloc.start()
    response = client.get("/devices.csv")
    streamed = sum(len(chunk) for chunk in response.response)  # consumed chunk by chunk, never joined
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        results.append(("server page, rows just rewritten", server_page,
                        time_unvacuumed(app, client, server_page, args.repeat), TARGET_MS))

    print(f"  deep page reached by following the Next cursor {deep_number - 1:,} times in {follow_s:.1f} s")
    print()
    print(f"  {'measurement':34} {'median':>9} {'p95':>9} {'target p95':>11}  result")
    for name, _url, times, target in results:
        median, p95 = statistics.median(times) * 1000, percentile(times, 95) * 1000
        verdict = "(no target)" if target is None else f"{'< ' + format(target, '.0f') + ' ms':>11}  " + (
            "OK" if p95 < target else "MISSED")
        print(f"  {name:34} {median:7.1f} ms {p95:6.1f} ms {verdict}")
    print(f"  {'CSV export, full':34} {statistics.median(csv_times):8.2f} s  "
          f"({CSV_REPEAT} runs: {', '.join(f'{s:.2f}' for s in csv_times)} s; {rows:,} rows, {size / 2**20:.1f} MiB, "
          f"{rows / statistics.median(csv_times):,.0f} rows/s)")
    print(f"  {'CSV export, Python peak':34} {peak / 2**20:8.1f} MiB while streaming {streamed / 2**20:.1f} MiB "
          f"(tracemalloc)")
    print()
    for name, url, _times, _target in results:
        print(f"  {name}: {url if len(url) < 90 else url[:87] + '...'}")
    print(f"  whole benchmark: {time.perf_counter() - started:.0f} s")
    return 0


# --- setup -----------------------------------------------------------------------------------
def make_app(work: Path, url: str | None, redis_url: str):
    instance = work / "instance"
    url = url or f"sqlite:///{work / 'portal-devbench.db'}"
    return create_app({"INSTANCE_PATH": str(instance), "SQLALCHEMY_DATABASE_URI": normalise_database_url(url, instance),
                       "REDIS_URL": redis_url, "WTF_CSRF_ENABLED": True})


def prepare_schema(app) -> str:
    """Migrate a fresh schema; returns a label such as 'PostgreSQL 15.2' or 'SQLite 3.40.1'."""
    from flask_migrate import upgrade

    with app.app_context():
        postgres = db.engine.dialect.name == "postgresql"
        if postgres:
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade()
        with db.engine.connect() as conn:
            if postgres:
                label = "PostgreSQL " + conn.execute(text("SHOW server_version")).scalar_one().split()[0]
            else:
                label = "SQLite " + conn.execute(text("SELECT sqlite_version()")).scalar_one()
        db.session.remove()
    return label


def seed(app, n: int) -> None:
    """Three servers (one with a server configuration), a few profiles, n current + n/100 removed devices."""
    from portal import vault

    rng = random.Random(6)
    with app.app_context():
        admin = Admin(username=ADMIN)
        admin.set_password(PASSWORD)
        config = ServerConfiguration(name="Bench MDM", url="https://mdm.example.com/enroll")
        db.session.add_all([admin, config])
        db.session.flush()
        servers = [ManagedServer(name=f"Bench {i}", token_ciphertext=vault.encrypt("{}"),
                                 key_ciphertext=vault.encrypt("k"), consumer_key=f"CK_{i}",
                                 token_expiry=NOW + timedelta(days=300),
                                 configuration_id=config.id if i == 0 else None) for i in range(3)]
        db.session.add_all(servers)
        db.session.flush()
        profiles = [EnrollmentProfile(server_id=s.id, name=f"Profile {j}", status="configured" if j else "changed",
                                      apple_profile_uuid=f"{rng.getrandbits(128):032X}")
                    for s in servers for j in range(3)]
        db.session.add_all(profiles)
        db.session.flush()
        serials = set()
        while len(serials) < n + n // 100:
            serials.add("".join(rng.choices(SERIAL_CHARS, k=12)))
        batch = []
        for i, serial in enumerate(sorted(serials, key=lambda _: rng.random())):
            server = servers[0] if i % 10 < 6 else servers[1 + i % 2]
            model, family, os_name = rng.choice(MODELS)
            profile = rng.choice([p for p in profiles if p.server_id == server.id]) if rng.random() < 0.6 else None
            batch.append({
                "server_id": server.id, "serial_number": serial,
                "model": None if rng.random() < 0.01 else model, "description": f"{model.upper()} {rng.choice((64, 128, 256))}GB",
                "color": rng.choice(COLORS), "asset_tag": f"A-{i}" if rng.random() < 0.3 else None,
                "os": os_name, "device_family": family,
                # Apple holds the associated profile's UUID (2 % removed outside the portal since: drift).
                "profile_status": (("removed" if rng.random() < 0.02 else rng.choice(("assigned", "pushed")))
                                   if profile else rng.choice(("empty", "empty", "removed"))),
                "profile_uuid": profile.apple_profile_uuid if profile else None,
                "device_assigned_date": None if rng.random() < 0.05 else NOW - timedelta(days=rng.randrange(0, 700)),
                "device_assigned_by": "admin@example.com", "first_seen_at": NOW, "updated_at": NOW,
                "removed_at": NOW if i >= n else None, "last_op_type": "added", "fetch_generation": 1,
                "profile_id": profile.id if profile else None,
                "assignment_state": "assigned" if profile else rng.choice((None, None, "failed", "throttled")),
                "extra": {"imei": [f"35{i:013d}"]} if family == "iPhone" else None,
            })
            if len(batch) == 5000:
                db.session.execute(insert(Device), batch)
                batch = []
        if batch:
            db.session.execute(insert(Device), batch)
        queue_requests(servers)
        for server in servers:  # what a full fetch leaves behind (devices/counts.py)
            recount(server.id)
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        else:  # what the portal runs after a full fetch (devices/store.py, mark_missing_removed)
            db.session.execute(text("ANALYZE device"))
            db.session.commit()
        app.config["BENCH_SERVER"] = servers[0].id
        app.config["BENCH_PREFIX"] = sorted(serials)[n // 2][:2]
        db.session.remove()


def queue_requests(servers) -> None:
    """A request waiting to be sent for a quarter of the devices without a profile (about 10 %):
    they show as queued, and every other Assignment filter leaves them out."""
    for server in servers:
        request = AssignmentBatch(server_id=server.id, action="assign", actor=ADMIN, status="queued", created_at=NOW)
        db.session.add(request)
        db.session.flush()
        db.session.execute(text(
            "INSERT INTO assignment_task (batch_id, device_id, serial_number, state, attempts, updated_at) "
            "SELECT :batch, id, serial_number, 'queued', 0, updated_at FROM device "
            "WHERE server_id = :server AND removed_at IS NULL AND profile_id IS NULL AND id % 4 = 0"),
            {"batch": request.id, "server": server.id})


def signed_in_client(app):
    client = app.test_client()
    html = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    response = client.post("/login", data={"username": ADMIN, "password": PASSWORD, "csrf_token": token})
    if response.status_code != 302:
        raise RuntimeError("could not sign in")
    return client


# --- measurements ----------------------------------------------------------------------------
def time_requests(client, url: str, repeat: int) -> list[float]:
    for _ in range(WARMUP):
        check(client.get(url), url)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - t)
        check(response, url)
    return times


def time_unvacuumed(app, client, url: str, repeat: int) -> list[float]:
    """Time `url` after every device row was rewritten (as by a full sync's upserts), before any VACUUM."""
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE device SET (autovacuum_enabled = false)"))
            conn.execute(text("UPDATE device SET updated_at = updated_at"))
        try:
            return time_requests(client, url, repeat)
        finally:
            with db.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.execute(text("ALTER TABLE device RESET (autovacuum_enabled)"))
                conn.execute(text("VACUUM ANALYZE device"))
            db.session.remove()


def follow_pages(client, url: str, pages: int) -> str:
    """The URL of page `pages`, reached by following each page's Next link."""
    for _ in range(pages - 1):
        html = client.get(url).get_data(as_text=True)
        match = re.search(r'<a rel="next" href="([^"]+)"', html)
        if not match:
            raise RuntimeError(f"no Next link on {url}")
        url = match.group(1).replace("&amp;", "&")
    return url


def check(response, url: str) -> None:
    if response.status_code != 200:
        raise RuntimeError(f"{url} answered {response.status_code}")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))]


if __name__ == "__main__":
    sys.exit(main())
