"""partial device profile index

Revision ID: c3d4e5f6a7b8
Revises: b7a1c2d3e4f5
Create Date: 2026-11-26 09:20:00

Only devices associated with one of our profiles are indexed by profile: a sync inserting a
fleet of unassigned devices no longer maintains an index entry for each of them.
"""
from alembic import op
import sqlalchemy as sa


revision = 'c3d4e5f6a7b8'
down_revision = 'b7a1c2d3e4f5'
branch_labels = None
depends_on = None

ASSOCIATED = sa.text("profile_id IS NOT NULL")


def upgrade():
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_index('ix_device_profile')
        batch_op.create_index('ix_device_profile', ['profile_id', 'serial_number'], unique=False,
                              sqlite_where=ASSOCIATED, postgresql_where=ASSOCIATED)


def downgrade():
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_index('ix_device_profile')
        batch_op.create_index('ix_device_profile', ['profile_id', 'serial_number'], unique=False)
