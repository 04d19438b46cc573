"""sign-in sessions kept on the server, so that signing out ends every copy of the cookie

Revision ID: e1f2a3b4c5d6
Revises: d0e1f2a3b4c5
Create Date: 2026-12-02 18:00:00

A new table only. Admins signed in before the upgrade have no row and sign in again once.
"""
from alembic import op
import sqlalchemy as sa

import portal.models.types


revision = 'e1f2a3b4c5d6'
down_revision = 'd0e1f2a3b4c5'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('admin_session',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('admin_id', sa.Integer(), nullable=False),
    sa.Column('created_at', portal.models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['admin_id'], ['admin.id'], name=op.f('fk_admin_session_admin_id_admin'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_admin_session'))
    )
    op.create_index('ix_admin_session_admin', 'admin_session', ['admin_id'], unique=False)


def downgrade():
    op.drop_index('ix_admin_session_admin', table_name='admin_session')
    op.drop_table('admin_session')
