"""when a synchronization waiting to be retried (Apple unavailable or busy) runs again

Revision ID: 3d4e5f6a7b8c
Revises: 2c3d4e5f6a7b
Create Date: 2026-12-05 01:30:00

A plain ADD COLUMN (not a batch rebuild): on SQLite a rebuild from reflection would drop the
table's AUTOINCREMENT (a7b8c9d0e1f2).
"""
from alembic import op
import sqlalchemy as sa

import portal.models.types


revision = '3d4e5f6a7b8c'
down_revision = '2c3d4e5f6a7b'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('sync_run', sa.Column('retry_at', portal.models.types.UTCDateTime(timezone=True), nullable=True))


def downgrade():
    op.drop_column('sync_run', 'retry_at')  # SQLite 3.35+: in place, AUTOINCREMENT kept
