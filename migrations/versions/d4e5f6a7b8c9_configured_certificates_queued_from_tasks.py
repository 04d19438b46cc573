"""configured certificates; queued state from tasks

Revision ID: d4e5f6a7b8c9
Revises: c3d4e5f6a7b8
Create Date: 2026-11-26 13:45:00

Profiles record the anchor certificates sent at their last configure, so an edit of their server
configuration can tell whether Apple's copy is out of date. Devices no longer store "queued": a
waiting request is read from its task (portal/devices/pending.py), so the value written by
earlier versions is cleared (the answer it had replaced is gone either way).
"""
from alembic import op
import sqlalchemy as sa


revision = 'd4e5f6a7b8c9'
down_revision = 'c3d4e5f6a7b8'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('enrollment_profile', schema=None) as batch_op:
        batch_op.add_column(sa.Column('configured_certificates', sa.Text(), nullable=True))
    op.execute("UPDATE device SET assignment_state = NULL WHERE assignment_state = 'queued'")


def downgrade():
    with op.batch_alter_table('enrollment_profile', schema=None) as batch_op:
        batch_op.drop_column('configured_certificates')
