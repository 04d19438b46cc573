"""a task held until the server's token works again is marked by a column, not by its reason's words

Revision ID: 0a1b2c3d4e5f
Revises: f2a3b4c5d6e7
Create Date: 2026-12-03 08:00:00

A successful token check sent such tasks at once by finding queued tasks whose reason started with
"Waiting for the server's token" (assignments.retries.release_token_holds). The queued tasks with that
reason are marked, so an upgrade keeps them released by the next token check. A plain ADD COLUMN (not a
batch rebuild), which keeps SQLite's AUTOINCREMENT (a7b8c9d0e1f2).
"""
from alembic import op
import sqlalchemy as sa


revision = '0a1b2c3d4e5f'
down_revision = 'f2a3b4c5d6e7'
branch_labels = None
depends_on = None

HOLD_REASON = "Waiting for the server's token"  # as assignments.retries.TOKEN_HOLD was then


def upgrade():
    op.add_column('assignment_task', sa.Column('held_for_token', sa.Boolean(), server_default=sa.false(),
                                               nullable=False))
    task = sa.table('assignment_task', sa.column('state', sa.String), sa.column('detail', sa.Text),
                    sa.column('held_for_token', sa.Boolean))
    op.execute(task.update().where(task.c.state == 'queued', task.c.detail.startswith(HOLD_REASON, autoescape=True))
               .values(held_for_token=sa.true()))


def downgrade():
    op.drop_column('assignment_task', 'held_for_token')  # SQLite 3.35+: in place, AUTOINCREMENT kept
