"""a task held until its profile is configured at Apple is marked by a column, so Configure profile sends it

Revision ID: 4e5f6a7b8c9d
Revises: 3d4e5f6a7b8c
Create Date: 2026-12-05 09:00:00

Such tasks waited the end of their few minutes' hold after a successful Configure profile, their reason
("Waiting for the profile “Sales” to be configured at Apple.") no longer true meanwhile. The queued tasks
with those reasons are marked, so an upgrade lets the next Configure profile send them too. A plain ADD
COLUMN (not a batch rebuild), which keeps SQLite's AUTOINCREMENT (a7b8c9d0e1f2).
"""
from alembic import op
import sqlalchemy as sa


revision = '4e5f6a7b8c9d'
down_revision = '3d4e5f6a7b8c'
branch_labels = None
depends_on = None

HOLD_REASONS = ("Waiting for the profile ", "Apple does not know the profile ")  # as assignments.retries.PROFILE_HOLDS


def upgrade():
    op.add_column('assignment_task', sa.Column('held_for_profile', sa.Boolean(), server_default=sa.false(),
                                               nullable=False))
    task = sa.table('assignment_task', sa.column('state', sa.String), sa.column('detail', sa.Text),
                    sa.column('held_for_profile', sa.Boolean))
    op.execute(task.update().where(task.c.state == 'queued', sa.or_(
        *(task.c.detail.startswith(reason, autoescape=True) for reason in HOLD_REASONS)))
        .values(held_for_profile=sa.true()))


def downgrade():
    op.drop_column('assignment_task', 'held_for_profile')  # SQLite 3.35+: in place, AUTOINCREMENT kept
