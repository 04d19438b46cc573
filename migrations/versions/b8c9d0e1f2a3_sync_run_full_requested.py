"""sync runs can be asked to read every device again (Full synchronization)

Revision ID: b8c9d0e1f2a3
Revises: a7b8c9d0e1f2
Create Date: 2026-12-02 08:00:00

A plain ADD COLUMN (not a batch rebuild): on SQLite a rebuild from reflection would drop the
table's AUTOINCREMENT (a7b8c9d0e1f2).
"""
from alembic import op
import sqlalchemy as sa


revision = 'b8c9d0e1f2a3'
down_revision = 'a7b8c9d0e1f2'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('sync_run', sa.Column('full_requested', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    op.drop_column('sync_run', 'full_requested')  # SQLite 3.35+ drops a column in place, keeping AUTOINCREMENT
