"""partial index for the device lists' Assignment filter

Revision ID: f6a7b8c9d0e1
Revises: e5f6a7b8c9d0
Create Date: 2026-12-02 02:30:00

Filtering the Managed Devices list by an answer of Apple (failed, throttled, not accessible,
assigned) and counting the matches read most of the device table. Devices without an answer
(all of them after a first sync) stay out of the index.
"""
from alembic import op
import sqlalchemy as sa


revision = 'f6a7b8c9d0e1'
down_revision = 'e5f6a7b8c9d0'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_device_assignment_state', 'device', ['assignment_state', 'removed_at'], unique=False,
                    sqlite_where=sa.text('assignment_state IS NOT NULL'),
                    postgresql_where=sa.text('assignment_state IS NOT NULL'))


def downgrade():
    op.drop_index('ix_device_assignment_state', table_name='device')
