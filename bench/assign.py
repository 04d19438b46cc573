"""Benchmark of Add Devices against the bundled Apple simulator.

Assigns a profile to N devices (default 10,000) and prints:

* the time of the bare client (DEPClient.assign_profile for the same serials, in calls of 1000),
* the portal's time through its job path: the request (batch and tasks created from the device
  table, as "Select all N devices" does), then the RQ job run by a burst worker, which sends the
  calls of 1000 and stores every device's answer,
* their ratio (target ≤ 1.3): --runs pairs (default 3), each to new profiles (the portal's moves
  every device from the previous run's profile), and the median ratio,
* whether every device ended up associated with the profile.

Figures are printed, never asserted.

Usage (from the repository root, in the project's virtualenv):

    python bench/assign.py                       # 10,000 devices, fresh SQLite file in a temp dir
    python bench/assign.py --devices 50000
    python bench/assign.py --database-url postgresql://postgres@127.0.0.1:5432/bench
    python bench/assign.py --apple-latency 150     # each answer of the simulator delayed by 150 ms

The simulator answers a call of 1,000 serials in 20-40 ms, on the same two cores as the portal.
--apple-latency adds a delay to every answer (the simulator's `latency` fault), for both the bare
client and the portal, to show the ratio when Apple's answers take as long as over the Internet;
the target is measured without it.

A PostgreSQL database's `public` schema is DROPPED and recreated first: point the script at a
database that holds nothing you want to keep. The simulator runs in a child process (see
bench/sync.py, whose setup this reuses).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select  # noqa: E402

from bench.sync import (PORTAL_SERVER, SIM_SERVER, SimulatorProcess, add_portal_server, make_app,  # noqa: E402
                        new_run, prepare_schema, timed_sync)
from portal.apple.client import DEPClient  # noqa: E402
from portal.apple.keys import generate_key_pair, load_private_key  # noqa: E402
from portal.apple.tokens import decrypt_token  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import AssignmentBatch, Device, EnrollmentProfile, ManagedServer  # noqa: E402
from portal.models.profile import CONFIGURED  # noqa: E402
from portal.redis_server import embedded_redis_url, stop_embedded_redis  # noqa: E402

RATIO_TARGET = 1.3
PROFILE_URL = "https://mdm.example.com/enroll"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark Add Devices against the bundled Apple simulator.")
    parser.add_argument("--devices", type=int, default=10_000, metavar="N", help="devices to assign (default 10,000)")
    parser.add_argument("--database-url", metavar="URL", help="database (default: a fresh SQLite file in a temp dir)")
    parser.add_argument("--runs", type=int, default=3, metavar="R",
                        help="bare / portal pairs, each to a profile of its own; the ratio reported is their "
                             "median (default 3)")
    parser.add_argument("--apple-latency", type=float, default=0, metavar="MS",
                        help="delay every answer of the simulator by MS milliseconds (default 0)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not 0 <= args.apple_latency <= 10_000:
        parser.error("--apple-latency must be between 0 and 10,000 ms")
    with tempfile.TemporaryDirectory(prefix="ade-bench-assign-") as tmp:
        work = Path(tmp)
        redis_url = embedded_redis_url(work / "redis")
        try:
            return run(args, work, redis_url)
        finally:
            stop_embedded_redis(work / "redis")


def run(args, work: Path, redis_url: str) -> int:
    n = args.devices
    pair = generate_key_pair(common_name="ade-bench", days=365)
    app = make_app(work, args.database_url, redis_url)
    label = prepare_schema(app)
    with SimulatorProcess(work, n, pair.certificate_pem) as sim:
        app.config["APPLE_DEP_URL"] = sim.url
        print(f"ADE Add Devices benchmark: {n:,} devices, {label}, simulator in a child process")
        add_portal_server(app, PORTAL_SERVER, sim.token_file, pair.private_key_pem)
        synced = timed_sync(app, new_run(app, PORTAL_SERVER))
        print(f"  setup ....................... {synced['added']:,} devices synchronized in {synced['seconds']:.1f} s")
        if args.apple_latency:
            sim.state.set_fault(SIM_SERVER, "latency", args.apple_latency / 1000)
            print(f"  Apple latency ............... every answer delayed by {args.apple_latency:g} ms")

        client = bare_client(app, sim.token_file, pair.private_key_pem)
        serials = [row["serial"] for row in sim.state.db.query(
            "SELECT d.serial FROM devices d JOIN servers s ON s.id = d.server_id WHERE s.name = ? AND d.removed = 0"
            " ORDER BY d.serial", (SIM_SERVER,))]
        ratios, ok = [], True
        for number in range(1, args.runs + 1):  # each pair back to back: the machine's speed drifts
            bare_uuid = client.define_profile({"profile_name": f"Bare client {number}", "url": PROFILE_URL})["profile_uuid"]
            t = time.perf_counter()
            result = client.assign_profile(bare_uuid, serials)
            bare_s = time.perf_counter() - t
            bare_ok = list(result.devices.values()).count("SUCCESS")

            portal_uuid = client.define_profile({"profile_name": f"Portal {number}", "url": PROFILE_URL})["profile_uuid"]
            timing = portal_assign(app, portal_uuid, f"Portal {number}")
            portal_s = timing["request_s"] + timing["job_s"]
            ratios.append(portal_s / bare_s)
            print(f"  run {number} of {args.runs} .................. bare client {bare_s:.2f} s ({bare_ok:,} SUCCESS, "
                  f"{-(-len(serials) // 1000)} calls); portal {portal_s:.2f} s (request {timing['request_s']:.2f} s, "
                  f"job {timing['job_s']:.2f} s; {timing['succeeded']:,} assigned, batch {timing['status']}): "
                  f"ratio {ratios[-1]:.2f}")
            if not (timing["associated"] == n and timing["succeeded"] == n):
                ok = False
                print(f"  association check ........... {timing['associated']:,} of {n:,} devices associated MISMATCH")
        ratio = statistics.median(ratios)
        spread = f" (runs: {min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else ""
        print(f"  ratio portal / bare client .. {ratio:.2f} median{spread} (target ≤ {RATIO_TARGET}) "
              f"{'OK' if ratio <= RATIO_TARGET else 'ABOVE TARGET'}")
        if ok:
            print(f"  association check ........... {n:,} of {n:,} devices associated with the profile in every run OK")
    return 0 if ok else 1


def bare_client(app, token_file: bytes, key_pem: bytes) -> DEPClient:
    """The client alone, configured as portal.apple_link.client_for() configures it."""
    config = app.config
    return DEPClient(decrypt_token(token_file, load_private_key(key_pem)), config["APPLE_DEP_URL"],
                     protocol_version=config["DEP_PROTOCOL_VERSION"], max_retries=config["APPLE_MAX_RETRIES"],
                     backoff=config["APPLE_RETRY_BACKOFF"])


def portal_assign(app, uuid: str, name: str) -> dict:
    """Select all devices → OK (request_matching), then the job in a burst RQ worker, both timed."""
    from portal.assignments.services import request_matching
    from portal.worker import make_worker

    with app.app_context():
        server = db.session.execute(select(ManagedServer).where(ManagedServer.name == PORTAL_SERVER)).scalar_one()
        profile = EnrollmentProfile(server_id=server.id, name=name, status=CONFIGURED, apple_profile_uuid=uuid,
                                    configured_at=datetime.now(timezone.utc))
        db.session.add(profile)
        db.session.commit()
        t = time.perf_counter()
        batch = request_matching(server, profile, [], actor="bench")
        request_s = time.perf_counter() - t
        batch_id, profile_id = batch.id, profile.id
        db.session.remove()
    t = time.perf_counter()
    make_worker(app, ["default"], simple=True).work(burst=True, with_scheduler=False)
    job_s = time.perf_counter() - t
    with app.app_context():
        batch = db.session.get(AssignmentBatch, batch_id)
        associated = db.session.execute(select(func.count()).select_from(Device).where(
            Device.profile_id == profile_id)).scalar_one()
        result = {"request_s": request_s, "job_s": job_s, "succeeded": batch.succeeded, "status": batch.status,
                  "associated": associated}
        db.session.remove()
    return result


if __name__ == "__main__":
    sys.exit(main())
