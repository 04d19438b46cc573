"""Ids are never reused on SQLite: the models ask for AUTOINCREMENT, and the migration that rebuilds the
tables with it (a7b8c9d0e1f2) keeps every row, index, constraint and foreign key."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import Column, Integer, MetaData, Table, inspect, select, text

from portal import create_app
from portal.extensions import db
from tests.conftest import _test_config

BEFORE = "f6a7b8c9d0e1"  # the revision before AUTOINCREMENT
AUTOINCREMENT = "a7b8c9d0e1f2"
T = datetime(2026, 1, 1, tzinfo=timezone.utc)


def integer_id_tables() -> set[str]:
    return {t.name for t in db.metadata.sorted_tables if isinstance(getattr(t.c.get("id"), "type", None), Integer)}


def test_every_table_with_an_integer_id_never_reuses_ids(app):
    """A new table with an integer id must ask for AUTOINCREMENT too, and the migrations must give it."""
    tables = integer_id_tables()
    assert len(tables) >= 11 and "setting" not in tables  # keyed by name: nothing to reuse
    assert {t.name for t in db.metadata.sorted_tables if t.dialect_options["sqlite"]["autoincrement"]} == tables
    if db.engine.dialect.name == "sqlite":
        with db.engine.connect() as conn:
            created = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'")).all())
        assert {name for name, sql in created.items() if "AUTOINCREMENT" in sql} == tables


# Rows at the revision before: ids with gaps, devices with tasks, activity entries naming objects (one of
# them a profile deleted before the upgrade, id 9). Columns left out take the models' defaults.
ROWS = {
    "admin": [dict(id=1, username="alice", password_hash="h"), dict(id=2, username="bob", password_hash="h")],
    "server_configuration": [dict(id=1, name="Main", url="https://mdm.example"),
                             dict(id=4, name="Spare", url="https://spare.example")],
    "trusted_certificate": [dict(id=i, configuration_id=c, der=b"der", subject="CN=a", issuer="CN=a", serial="1",
                                 not_before=T, not_after=T, sha256="0" * 64) for i, c in ((1, 1), (3, 4))],
    "managed_server": [dict(id=i, name=name, token_ciphertext=b"t", key_ciphertext=b"k", consumer_key=f"CK{i}",
                            token_expiry=T, configuration_id=c) for i, name, c in ((1, "Paris", 1), (3, "Lyon", None))],
    "pending_key_pair": [dict(id=i, label="key", certificate_pem="pem", key_ciphertext=b"k", not_after=T,
                              used_by_server_id=s) for i, s in ((1, 1), (2, None))],
    "enrollment_profile": [dict(id=1, server_id=1, name="Staff"), dict(id=2, server_id=3, name="Kiosk")],
    "sync_run": [dict(id=1, server_id=1, job_id="j1", trigger="manual"), dict(id=5, server_id=3, job_id="j5",
                                                                              trigger="scheduled")],
    "device": [dict(id=i, server_id=s, serial_number=f"S{i}", profile_id=p, assignment_state=a)
               for i, s, p, a in ((1, 1, 1, "assigned"), (2, 1, None, "failed"), (7, 3, 2, None))],
    "assignment_batch": [dict(id=1, server_id=1, profile_id=1, action="assign"),
                         dict(id=2, server_id=3, profile_id=2, action="assign")],
    "assignment_task": [dict(id=i, batch_id=b, device_id=d, serial_number=f"S{d}")
                        for i, b, d in ((1, 1, 1), (2, 1, 2), (3, 2, 7))],
    "activity_entry": [dict(id=1, action="profile.deleted", object_type="enrollment_profile", object_id=9),
                       dict(id=2, action="device.synchronized", object_type="device", object_id=7)],
}
LOGGED = {"enrollment_profile": 9, "device": 7}  # the highest id the activity log names, per table


def snapshot(conn) -> dict:
    """Rows, columns, foreign keys, unique constraints, constraint names and indexes (partial ones' WHERE
    included), table by table."""
    tables = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                                    "AND name NOT IN ('alembic_version', 'sqlite_sequence')")).all())
    state = {"indexes": conn.execute(text("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' "
                                          "AND sql IS NOT NULL ORDER BY name")).all()}
    for name, sql in tables.items():
        state[name] = {
            "rows": conn.execute(text(f"SELECT * FROM {name} ORDER BY 1")).all(),
            "columns": conn.exec_driver_sql(f"PRAGMA table_info({name})").all(),
            # (table, from, to, on update, on delete, match): the constraints' order may change
            "foreign keys": sorted(row[2:] for row in conn.exec_driver_sql(f"PRAGMA foreign_key_list({name})")),
            "unique": sorted(tuple(c[2] for c in conn.exec_driver_sql(f"PRAGMA index_info('{index[1]}')"))
                             for index in conn.exec_driver_sql(f"PRAGMA index_list({name})") if index[3] == "u"),
            # SQLite wants AUTOINCREMENT on the column itself, so the primary key loses its name (pk_...)
            "named": sorted(n for n in re.findall(r"CONSTRAINT (\w+)", sql) if not n.startswith("pk_")),
        }
    return state


def _as_at_that_revision(conn, table: Table) -> Table:
    """The model's table without the columns a later revision added (their defaults kept for the rest)."""
    present = {column["name"] for column in inspect(conn).get_columns(table.name)}
    return Table(table.name, MetaData(), *[
        Column(c.name, c.type, primary_key=c.primary_key, default=c.default.arg if c.default is not None else None)
        for c in table.columns if c.name in present])


@pytest.fixture
def old_database(tmp_path, redis_url):
    """An app on a SQLite file at the revision before, with ROWS in it."""
    app = create_app(_test_config(tmp_path, f"sqlite:///{tmp_path / 'old.db'}", redis_url))
    with app.app_context():
        upgrade(revision=BEFORE)
        with db.engine.begin() as conn:
            for table in db.metadata.sorted_tables:
                if table.name in ROWS:
                    conn.execute(_as_at_that_revision(conn, table).insert(), ROWS[table.name])
        yield app
        db.engine.dispose()


def test_the_autoincrement_migration_keeps_everything_and_ids_are_never_reused(old_database):
    with db.engine.connect() as conn:
        before = snapshot(conn)
    assert before["device"]["rows"] and before["assignment_task"]["rows"] and len(before["indexes"]) > 15
    assert any("WHERE" in sql for _, _, sql in before["indexes"])  # the partial device indexes

    upgrade(revision=AUTOINCREMENT)
    with db.engine.connect() as conn:
        after = snapshot(conn)
        sequences = dict(conn.execute(text("SELECT name, seq FROM sqlite_sequence")).all())
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        # migrations/env.py turned them off for the rebuild; the pooled connection has them on again
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert after == before  # nothing cascaded away when the tables they reference were dropped
    tables = integer_id_tables()
    assert sequences == {t: max([r["id"] for r in ROWS[t]] + [LOGGED.get(t, 0)]) for t in tables}

    downgrade(revision=BEFORE)  # back to plain rowids, everything else as it was
    with db.engine.connect() as conn:
        assert snapshot(conn) == before
        assert "AUTOINCREMENT" not in conn.execute(text("SELECT group_concat(sql) FROM sqlite_master")).scalar()
    upgrade()  # to the newest revision: the later ones keep AUTOINCREMENT too (checked below)

    # Delete the newest row of every table (children first, so each new row's parents still exist) and
    # add it again: it gets a new id, above the deleted one and above any id the activity log names.
    with db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            if table.name in tables:
                newest = conn.execute(select(table).order_by(table.c.id.desc()).limit(1)).mappings().one()
                conn.execute(table.delete().where(table.c.id == newest["id"]))
                values = {k: v for k, v in newest.items() if k != "id"}
                new_id = conn.execute(table.insert().values(values)).inserted_primary_key[0]
                assert new_id == max(newest["id"], LOGGED.get(table.name, 0)) + 1, table.name
        # ON DELETE CASCADE still works through the rebuilt tables.
        conn.execute(text("DELETE FROM managed_server WHERE name = 'Paris'"))
        assert conn.execute(text("SELECT count(*) FROM device WHERE serial_number IN ('S1', 'S2')")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM assignment_task WHERE serial_number = 'S1'")).scalar() == 0


def test_a_migration_run_in_process_leaves_the_portals_loggers_enabled(tmp_path, redis_url):
    """Alembic's logging set-up once disabled every logger that existed (fileConfig's default):
    after the demo or a benchmark migrated, the portal's own messages were silently lost."""
    import logging

    import portal.apple.client  # noqa: F401 - its logger exists before the migration runs

    app = create_app(_test_config(tmp_path, f"sqlite:///{tmp_path / 'fresh.db'}", redis_url))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    assert not logging.getLogger("portal.apple.client").disabled


def _tasks_marked_by_upgrade(before: str, after: str, tasks, column: str) -> dict[int, bool]:
    """Upgrade to `before`, store one task per (id, state, detail) of `tasks` (with the rows they need), upgrade
    to `after`, and return each task's `column`."""
    upgrade(revision=before)
    with db.engine.begin() as conn:
        for table in ("server_configuration", "managed_server", "enrollment_profile", "device", "assignment_batch"):
            model = db.metadata.tables[table]
            conn.execute(_as_at_that_revision(conn, model).insert(), ROWS[table][:1])
        task = _as_at_that_revision(conn, db.metadata.tables["assignment_task"])
        conn.execute(task.insert(), [dict(id=i, batch_id=1, device_id=1, serial_number="S1", state=state,
                                          detail=detail) for i, state, detail in tasks])
    upgrade(revision=after)
    with db.engine.connect() as conn:
        return {row[0]: bool(row[1]) for row in conn.execute(text(f"SELECT id, {column} FROM assignment_task"))}


def test_an_upgrade_keeps_the_holds_for_apples_wait_that_were_found_by_their_words(tmp_path, redis_url):
    """d0e1f2a3b4c5: a queued task whose reason starts with the words a hold for Apple's wait had is marked
    held; a task with any other reason, or no longer queued, is not."""
    app = create_app(_test_config(tmp_path, f"sqlite:///{tmp_path / 'holds.db'}", redis_url))
    hold = "Apple asked to wait before this device is sent again: an earlier request was answered FAILED."
    tasks = [(1, "queued", hold), (2, "superseded", hold), (3, "queued", "Waiting for the server's token"),
             (4, "queued", None), (5, "done", "Apple assigned the profile.")]
    with app.app_context():
        held = _tasks_marked_by_upgrade("c9d0e1f2a3b4", "d0e1f2a3b4c5", tasks, "held_for_apple_wait")
        assert held == {1: True, 2: False, 3: False, 4: False, 5: False}
        upgrade()
        db.engine.dispose()


def test_an_upgrade_keeps_the_holds_for_the_token_that_were_found_by_their_words(tmp_path, redis_url):
    """0a1b2c3d4e5f: a queued task whose reason starts with the words a hold for the token had is marked held
    for it; a task with any other reason, or no longer queued, is not. Downgrading drops the column only."""
    app = create_app(_test_config(tmp_path, f"sqlite:///{tmp_path / 'holds.db'}", redis_url))
    hold = "Waiting for the server's token (Terms Not Accepted): accept the terms in Apple Business Manager."
    tasks = [(1, "queued", hold), (2, "superseded", hold), (3, "queued", "Apple asked to wait before this device "
             "is sent again"), (4, "queued", None), (5, "done", "Apple assigned the profile.")]
    with app.app_context():
        held = _tasks_marked_by_upgrade("f2a3b4c5d6e7", "0a1b2c3d4e5f", tasks, "held_for_token")
        assert held == {1: True, 2: False, 3: False, 4: False, 5: False}
        downgrade(revision="f2a3b4c5d6e7")
        with db.engine.connect() as conn:
            columns = {row[1] for row in conn.execute(text("PRAGMA table_info(assignment_task)"))}
        assert "held_for_token" not in columns and "held_for_apple_wait" in columns
        upgrade()
        db.engine.dispose()


def test_an_upgrade_marks_the_holds_for_a_profile_that_were_found_by_their_words(tmp_path, redis_url):
    """4e5f6a7b8c9d: a queued task whose reason says it waits for its profile to be configured is marked held for it,
    so the next Configure profile sends it; a task with any other reason, or no longer queued, is not."""
    app = create_app(_test_config(tmp_path, f"sqlite:///{tmp_path / 'holds.db'}", redis_url))
    tasks = [(1, "queued", "Waiting for the profile “Sales” to be configured at Apple."),
             (2, "queued", "Apple does not know the profile “Sales” any more: waiting for it to be configured again "
                           "(Configure profile)."),
             (3, "superseded", "Waiting for the profile “Sales” to be configured at Apple."),
             (4, "queued", "Waiting for the server's token (Terms Not Accepted)."), (5, "queued", None)]
    with app.app_context():
        held = _tasks_marked_by_upgrade("3d4e5f6a7b8c", "4e5f6a7b8c9d", tasks, "held_for_profile")
        assert held == {1: True, 2: True, 3: False, 4: False, 5: False}
        downgrade(revision="3d4e5f6a7b8c")
        with db.engine.connect() as conn:
            columns = {row[1] for row in conn.execute(text("PRAGMA table_info(assignment_task)"))}
        assert "held_for_profile" not in columns and "held_for_token" in columns
        upgrade()
        db.engine.dispose()
