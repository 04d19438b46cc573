"""the last token expiry reminder sent for each managed server

Revision ID: 1b2c3d4e5f6a
Revises: 0a1b2c3d4e5f
Create Date: 2026-12-03 08:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '1b2c3d4e5f6a'
down_revision = '0a1b2c3d4e5f'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('managed_server', sa.Column('token_reminded', sa.String(length=40), nullable=True))


def downgrade():
    op.drop_column('managed_server', 'token_reminded')  # SQLite 3.35+: in place, AUTOINCREMENT kept
