"""The Flask commands: create-admin, worker, and the process runner behind `dev`."""
import sys
from pathlib import Path

import pytest

from sqlalchemy import select

from portal.devserver import run_processes
from portal.extensions import db
from portal.models import ActivityEntry, Admin
from portal.queue import enqueue


def test_create_admin_reads_the_password_from_stdin(app, runner):
    result = runner.invoke(args=["create-admin", "carol"], input="a long password\n")
    assert result.exit_code == 0, result.output
    admin = db.session.execute(select(Admin).where(Admin.username == "carol")).scalar_one()
    assert admin.check_password("a long password")


def test_create_admin_refuses_short_passwords_and_duplicates(app, runner):
    assert "at least 8" in runner.invoke(args=["create-admin", "dave"], input="short\n").output
    assert runner.invoke(args=["create-admin", "dave"], input="long enough pw\n").exit_code == 0
    again = runner.invoke(args=["create-admin", "dave"], input="another password\n")
    assert again.exit_code != 0 and "already exists" in again.output
    updated = runner.invoke(args=["create-admin", "dave", "--update"], input="another password\n")
    assert updated.exit_code == 0
    db.session.expire_all()
    assert db.session.execute(select(Admin).where(Admin.username == "dave")).scalar_one().check_password("another password")


def test_create_admin_names_are_the_same_whatever_their_case_and_spacing(app, runner):
    assert runner.invoke(args=["create-admin", "  Erin  Smith "], input="long enough pw\n").exit_code == 0
    assert db.session.execute(select(Admin.username)).scalars().all() == ["Erin Smith"]
    again = runner.invoke(args=["create-admin", "erin smith"], input="another password\n")
    assert again.exit_code != 0 and "'Erin Smith' already exists" in again.output
    updated = runner.invoke(args=["create-admin", "ERIN SMITH", "--update"], input="another password\n")
    assert updated.exit_code == 0 and "'Erin Smith' updated" in updated.output
    db.session.expire_all()
    assert db.session.execute(select(Admin)).scalar_one().check_password("another password")
    assert runner.invoke(args=["create-admin", "   "], input="long enough pw\n").exit_code != 0


@pytest.mark.parametrize("mode", [["--simple"], []], ids=["in-process", "forking"])
def test_worker_command_burst_runs_queued_jobs(app, runner, mode):
    enqueue("jobs.maintenance.heartbeat", "from-cli")
    result = runner.invoke(args=["worker", "--burst", *mode])
    assert result.exit_code == 0, result.output
    entry = db.session.execute(select(ActivityEntry).where(ActivityEntry.action == "system.heartbeat")).scalar_one()
    assert entry.details["job_id"] == "from-cli"


def test_process_runner_prefixes_output_and_stops_the_others(capfd):
    code = run_processes({
        "short": [sys.executable, "-c", "print('hello from short')"],
        "long": [sys.executable, "-c", "import time; print('long started', flush=True); time.sleep(60)"],
    }, env={})
    out = capfd.readouterr().out
    assert code == 0
    assert "short | hello from short" in out
    assert "stopping the others" in out


def test_process_runner_starts_a_restartable_process_again_when_it_ends(capfd, tmp_path):
    """RQ's worker exits on a Redis timeout: `flask dev` starts it again instead of stopping the web server with it."""
    runs = tmp_path / "runs"
    crashy = ("import pathlib, sys, time; p = pathlib.Path(sys.argv[1]); n = len(p.read_text()) if p.exists() else 0; "
              "p.write_text('x' * (n + 1)); print(f'run {n + 1}', flush=True); "
              "sys.exit(3) if n == 0 else time.sleep(60)")
    code = run_processes({
        "worker": [sys.executable, "-c", crashy, str(runs)],
        "web": [sys.executable, "-c", "import time; time.sleep(4)"],
    }, env={}, restart=("worker",))
    out = capfd.readouterr().out
    assert "worker stopped (exit code 3); starting it again in 1 s" in out
    assert "worker | run 2" in out and runs.read_text() == "xx"
    assert "web stopped; stopping the others" in out and code == 0


def test_process_runner_stopped_by_sigterm_stops_its_children(tmp_path):
    """`kill` (or a service manager) stops the runner: its children must not keep running alone."""
    import os
    import signal
    import subprocess
    import time

    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    runner_code = ("import sys; from portal.devserver import run_processes; "
                   f"sys.exit(run_processes({{'child': [sys.executable, '-c', {child!r}]}}, env={{}}))")
    parent = subprocess.Popen([sys.executable, "-c", runner_code], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child_pid = int(pid_file.read_text())
    parent.send_signal(signal.SIGTERM)
    out, _ = parent.communicate(timeout=20)
    deadline = time.monotonic() + 10
    outlived = True
    while outlived and time.monotonic() < deadline:
        try:
            os.kill(child_pid, 0)
            time.sleep(0.05)
        except ProcessLookupError:
            outlived = False
    if outlived:
        os.kill(child_pid, signal.SIGKILL)  # not left running by the test either
    assert not outlived, "the child outlived the runner"
    assert "SIGTERM: stopping everything" in out


def test_rotate_keys_reencrypts_every_secret_with_the_first_key(app, runner):
    from datetime import datetime, timedelta, timezone

    from cryptography.fernet import Fernet

    from portal import vault
    from portal.models import ManagedServer, PendingKeyPair
    from portal.models.setting import get_setting, set_setting

    old = app.config["ENCRYPTION_KEYS"]
    server = ManagedServer(name="S", token_ciphertext=vault.encrypt(b"token json"), key_ciphertext=vault.encrypt(b"key"),
                           consumer_key="CK_1", token_expiry=datetime.now(timezone.utc) + timedelta(days=9))
    pending = PendingKeyPair(label="k", certificate_pem="-", key_ciphertext=vault.encrypt(b"pending key"),
                             not_after=datetime.now(timezone.utc))
    db.session.add_all([server, pending])
    set_setting("smtp_password", vault.encrypt("smtp password").decode())
    db.session.commit()

    new = Fernet.generate_key().decode()
    app.config["ENCRYPTION_KEYS"] = [new, *old]
    result = runner.invoke(args=["rotate-keys"])
    assert result.exit_code == 0 and "Re-encrypted 4 secret(s)" in result.output

    db.session.expire_all()
    server, pending = db.session.get(ManagedServer, server.id), db.session.get(PendingKeyPair, pending.id)
    assert vault.decrypt(server.token_ciphertext, [new]) == b"token json"
    assert vault.decrypt(server.key_ciphertext, [new]) == b"key"
    assert vault.decrypt(pending.key_ciphertext, [new]) == b"pending key"
    assert vault.decrypt(get_setting("smtp_password").encode(), [new]) == b"smtp password"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_dev_until_up_then_sigterm(instance, command=("dev", "--no-simulator"), also_up: str | None = None,
                                   wait_until=None) -> str:
    """`flask dev` (no simulator) in its own instance folder: wait for the web page (and `also_up`),
    then SIGTERM (once `wait_until()` holds, when given); its output.

    The port comes from `_free_port`, which another process may take before the web process binds
    it: that start is tried again on a new port, since the race is the test's, not the portal's."""
    for _attempt in range(3):
        out = _try_dev_until_up_then_sigterm(instance, command, also_up, wait_until)
        if out is not None:
            return out
    raise AssertionError("flask dev found its port taken three times in a row")


def _try_dev_until_up_then_sigterm(instance, command, also_up: str | None, wait_until) -> str | None:
    """One start of `flask dev`; None when its web port was taken before it could bind it."""
    import os
    import signal
    import subprocess
    import time
    import urllib.error
    import urllib.request
    from pathlib import Path

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["PORTAL_INSTANCE_PATH"] = str(instance)
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", *command, "--port", str(port)],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120  # a loaded CI machine starts four Python processes slowly
        for url in (f"http://127.0.0.1:{port}/login", also_up):
            while url:
                try:
                    urllib.request.urlopen(url, timeout=2)
                    break
                except urllib.error.HTTPError as error:  # it answered, wrongly: no point in waiting
                    raise AssertionError(f"{url} answered {error.code}:\n{_output_after_kill(proc)}") from None
                except OSError:
                    if proc.poll() is not None:  # it ended (say, its port was taken): say why
                        out = proc.stdout.read()
                        if "Address already in use" in out:
                            return None
                        raise AssertionError(f"flask dev ended before {url} answered:\n{out[-3000:]}")
                    if time.monotonic() > deadline:
                        raise AssertionError(f"{url} never answered:\n{_output_after_kill(proc)}")
                    time.sleep(0.2)
        while wait_until and not wait_until():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"flask dev never got there:\n{_output_after_kill(proc)}")
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    return out


def _output_after_kill(proc) -> str:
    """The last of a still-running `flask dev`'s output, for a failure message."""
    import signal

    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=30)
    except Exception:  # noqa: BLE001 - a failure message must not hide the failure
        proc.kill()
        out, _ = proc.communicate()
    return out[-3000:]


def test_dev_stops_the_embedded_redis_it_started(tmp_path):
    from portal.redis_server import embedded_redis_running, stop_embedded_redis

    instance = tmp_path / "instance"
    try:
        out = _run_dev_until_up_then_sigterm(instance)
        assert "SIGTERM: stopping everything" in out, out[-2000:]
        assert not embedded_redis_running(instance / "redis")  # nothing left running after Ctrl-C or kill
    finally:
        stop_embedded_redis(instance / "redis")


def test_dev_on_a_fresh_instance_migrates_so_its_scheduler_stays_up(tmp_path):
    """A fresh instance folder has an empty database. The scheduler used to die on its first query
    (no such table) and take web and worker down with it, sometimes before the page had answered."""
    import redis

    from portal.redis_server import stop_embedded_redis

    instance = tmp_path / "instance"

    def periodic_jobs_scheduled() -> bool:
        try:
            return bool(redis.Redis(unix_socket_path=str(instance / "redis" / "redis.sock"))
                        .zcard("rq:scheduler:scheduled_jobs"))
        except (redis.ConnectionError, FileNotFoundError):
            return False

    try:
        out = _run_dev_until_up_then_sigterm(instance, wait_until=periodic_jobs_scheduled)
        assert "Periodic jobs: " in out and "SIGTERM: stopping everything" in out, out[-3000:]
        assert "Traceback" not in out and "stopping the others" not in out, out[-3000:]
    finally:
        stop_embedded_redis(instance / "redis")


def test_scheduler_on_an_unmigrated_database_says_what_to_run(tmp_path):
    import os
    import subprocess

    from portal.redis_server import stop_embedded_redis

    instance = tmp_path / "instance"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["PORTAL_INSTANCE_PATH"] = str(instance)
    try:
        done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "scheduler"], env=env,
                              cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=60)
    finally:
        stop_embedded_redis(instance / "redis")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "the database is not ready" in done.stderr and "db upgrade" in done.stderr, done.stderr


def test_dev_leaves_alone_an_embedded_redis_it_found_running(tmp_path):
    from portal.redis_server import embedded_redis_running, embedded_redis_url, stop_embedded_redis

    instance = tmp_path / "instance"
    embedded_redis_url(instance / "redis")  # started by someone else (another flask worker, say)
    try:
        out = _run_dev_until_up_then_sigterm(instance)
        assert "SIGTERM: stopping everything" in out, out[-2000:]
        assert embedded_redis_running(instance / "redis")
    finally:
        stop_embedded_redis(instance / "redis")


def test_demo_runs_its_simulator_on_the_port_asked_for(tmp_path):
    """Two demos on one machine (a tester's beside a colleague's) need different simulator ports."""
    from portal.redis_server import stop_embedded_redis

    instance, sim_port = tmp_path / "instance", _free_port()
    try:
        out = _run_dev_until_up_then_sigterm(instance, ("demo", "--simulator-port", str(sim_port)),
                                             also_up=f"http://127.0.0.1:{sim_port}/")
        assert f"Apple simulator: http://127.0.0.1:{sim_port}/" in out and "Demo admin:" in out, out[-2000:]
        assert "SIGTERM: stopping everything" in out, out[-2000:]
    finally:
        stop_embedded_redis(instance / "redis")


def test_the_readme_names_every_option_of_demo_and_dev():
    """An admin reading Commands learns every option (the demo's --simulator-port was missing)."""
    from pathlib import Path

    from portal.cli import demo, dev

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = {line.split("`")[1].split()[0]: line for line in readme.splitlines() if line.startswith("| `")}
    for command in (demo, dev):
        for option in command.params:
            for name in option.opts + option.secondary_opts:
                assert name in rows[command.name], f"README's row of {command.name} does not name {name}"


def test_dev_keeps_running_through_a_redis_restart(tmp_path):
    """Redis away: the worker (RQ exits on a failed Redis call) or the scheduler used to die on it, and `flask dev`
    stopped everything with it ("… stopped; stopping the others"). The ended worker is started again, and starting
    brings the embedded Redis back (portal.queue.get_redis), often before the scheduler's next poll notices the
    outage: the scheduler's own ride through an outage is tested in tests/test_scheduler_outage.py."""
    import time
    from datetime import datetime, timezone

    import redis
    from rq_scheduler import Scheduler

    from portal.redis_server import embedded_redis_url, stop_embedded_redis

    instance = tmp_path / "instance"
    socket_path = str(instance / "redis" / "redis.sock")
    state = {"phase": "up"}
    OUTAGE_S = 25  # noqa: N806 - a constant of this test

    def through_a_restart() -> bool:
        """Once the scheduler runs: stop Redis for longer than a poll (5 s) and than redis-py's own retries (since
        redis-py 8 a command is tried again 10 times, up to a second apart: an outage of 12 s was sometimes ridden out
        without the worker or the scheduler meeting it, and this test then saw nothing to check), start it again,
        then wait until the scheduler moves a due job (its loop runs again)."""
        conn = redis.Redis(unix_socket_path=socket_path)
        if state["phase"] == "up":
            if not conn.zcard("rq:scheduler:scheduled_jobs"):
                return False
            stop_embedded_redis(instance / "redis")
            state.update(phase="down", since=time.monotonic())
        if state["phase"] == "down":
            if time.monotonic() - state["since"] < OUTAGE_S:
                return False
            embedded_redis_url(instance / "redis")
            job = Scheduler(connection=conn).enqueue_at(datetime.now(timezone.utc), "jobs.maintenance.heartbeat", "x")
            state.update(phase="back", job=job.id)
        return conn.zscore("rq:scheduler:scheduled_jobs", state["job"]) is None

    try:
        out = _run_dev_until_up_then_sigterm(instance, wait_until=through_a_restart)
        restarted = "worker stopped (exit code 1); starting it again in 1 s" in out
        noticed = "Redis cannot be reached" in out and "Redis answers again" in out
        assert restarted or noticed, out[-3000:]  # the outage was met, and ridden out
        assert "SIGTERM: stopping everything" in out and "stopping the others" not in out, out[-3000:]
    finally:
        stop_embedded_redis(instance / "redis")
