"""SQLite never reuses ids: AUTOINCREMENT on every table with an integer id

Revision ID: a7b8c9d0e1f2
Revises: f6a7b8c9d0e1
Create Date: 2026-12-03 10:00:00

Without AUTOINCREMENT SQLite gives a new row max(id) + 1, so deleting the newest profile (server,
configuration, admin...) and creating another gave the new one the deleted one's id: bookmarks,
stale forms, queued jobs, sessions and activity entries then reached the wrong object.
PostgreSQL sequences never go back, so there is nothing to do there.

Each table is rebuilt from its reflected definition (columns, constraints, foreign keys and
indexes, partial ones included) with its rows copied, ids and all. migrations/env.py turns
SQLite's foreign keys off first: dropping the old copy of a table must not cascade to the rows
that reference it.
"""
from alembic import op
import sqlalchemy as sa


revision = 'a7b8c9d0e1f2'
down_revision = 'f6a7b8c9d0e1'
branch_labels = None
depends_on = None

# Every table with an integer id (setting is keyed by name).
TABLES = ('admin', 'managed_server', 'pending_key_pair', 'server_configuration', 'trusted_certificate',
          'enrollment_profile', 'sync_run', 'device', 'assignment_batch', 'assignment_task', 'activity_entry')


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return
    # Copying rows with explicit ids into an AUTOINCREMENT table starts its sqlite_sequence at the
    # highest id copied.
    _rebuild_tables(sqlite_autoincrement=True)
    # Objects deleted before this upgrade are gone from their tables but named in the activity log
    # (object_type is the table name): new rows start above those ids too, so an old link to a
    # deleted object stays a 404.
    for table in TABLES:
        logged = bind.execute(sa.text('SELECT max(object_id) FROM activity_entry WHERE object_type = :t'),
                              {'t': table}).scalar()
        if logged is None:
            continue
        if bind.execute(sa.text('SELECT 1 FROM sqlite_sequence WHERE name = :t'), {'t': table}).first():
            bind.execute(sa.text('UPDATE sqlite_sequence SET seq = max(seq, :n) WHERE name = :t'),
                         {'t': table, 'n': logged})
        else:
            bind.execute(sa.text('INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :n)'), {'t': table, 'n': logged})


def downgrade():
    if op.get_bind().dialect.name != 'sqlite':
        return
    _rebuild_tables()  # the reflected tables do not carry AUTOINCREMENT: plain rowids again


def _rebuild_tables(**table_kwargs):
    """Recreate every table of TABLES from its reflected definition, rows included."""
    if op.get_bind().exec_driver_sql('PRAGMA foreign_keys').scalar():
        # Dropping the old managed_server would delete every device, profile and sync run with it.
        raise RuntimeError('foreign keys must be off to rebuild tables (migrations/env.py turns them off)')
    for table in TABLES:
        with op.batch_alter_table(table, recreate='always', table_kwargs=table_kwargs):
            pass
