"""serials waiting to be queued for the server's default profile

Revision ID: c9d0e1f2a3b4
Revises: b8c9d0e1f2a3
Create Date: 2026-12-02 11:30:00

Written with the synchronization page that found the devices, cleared with the Add Devices request
queued for them: a worker killed in between no longer loses them. A plain ADD COLUMN (not a batch
rebuild), which keeps SQLite's AUTOINCREMENT (a7b8c9d0e1f2).
"""
from alembic import op
import sqlalchemy as sa


revision = 'c9d0e1f2a3b4'
down_revision = 'b8c9d0e1f2a3'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('managed_server', sa.Column('awaiting_default_profile', sa.JSON(), nullable=True))


def downgrade():
    op.drop_column('managed_server', 'awaiting_default_profile')
