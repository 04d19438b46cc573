"""a task held for Apple's retry wait on its device is marked by a column, not by its reason's words

Revision ID: d0e1f2a3b4c5
Revises: c9d0e1f2a3b4
Create Date: 2026-12-02 17:30:00

A later request kept such holds by finding tasks whose reason started with "Apple asked to wait before
this device is sent again" (services._keep_apple_waits). The queued tasks with that reason are marked, so
an upgrade keeps their holds. A plain ADD COLUMN (not a batch rebuild), which keeps SQLite's
AUTOINCREMENT (a7b8c9d0e1f2).
"""
from alembic import op
import sqlalchemy as sa


revision = 'd0e1f2a3b4c5'
down_revision = 'c9d0e1f2a3b4'
branch_labels = None
depends_on = None

HOLD_REASON = "Apple asked to wait before this device is sent again"  # as services.APPLE_WAIT_HOLD was then


def upgrade():
    op.add_column('assignment_task', sa.Column('held_for_apple_wait', sa.Boolean(), server_default=sa.false(),
                                               nullable=False))
    task = sa.table('assignment_task', sa.column('state', sa.String), sa.column('detail', sa.Text),
                    sa.column('held_for_apple_wait', sa.Boolean))
    op.execute(task.update().where(task.c.state == 'queued',
                                   task.c.detail.startswith(HOLD_REASON, autoescape=True))
               .values(held_for_apple_wait=sa.true()))


def downgrade():
    op.drop_column('assignment_task', 'held_for_apple_wait')  # SQLite 3.35+: in place, AUTOINCREMENT kept
