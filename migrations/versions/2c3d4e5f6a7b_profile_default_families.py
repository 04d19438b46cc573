"""the device families a default enrollment profile is the default for (NULL: every family)

Revision ID: 2c3d4e5f6a7b
Revises: 1b2c3d4e5f6a
Create Date: 2026-12-03 13:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '2c3d4e5f6a7b'
down_revision = '1b2c3d4e5f6a'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('enrollment_profile', sa.Column('default_families', sa.JSON(none_as_null=True), nullable=True))


def downgrade():
    op.drop_column('enrollment_profile', 'default_families')  # SQLite 3.35+: in place, AUTOINCREMENT kept
