"""managed servers keep their current device count

Revision ID: e5f6a7b8c9d0
Revises: d4e5f6a7b8c9
Create Date: 2026-12-02 02:00:00

The device lists and the Servers page read managed_server.device_count, kept by the writers of
devices (portal/devices/counts.py), instead of counting every device row on each view. Filled
here from the devices already stored.
"""
from alembic import op
import sqlalchemy as sa


revision = 'e5f6a7b8c9d0'
down_revision = 'd4e5f6a7b8c9'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('managed_server', schema=None) as batch_op:
        batch_op.add_column(sa.Column('device_count', sa.Integer(), server_default='0', nullable=False))
    op.execute("UPDATE managed_server SET device_count = (SELECT count(*) FROM device "
               "WHERE device.server_id = managed_server.id AND device.removed_at IS NULL)")


def downgrade():
    with op.batch_alter_table('managed_server', schema=None) as batch_op:
        batch_op.drop_column('device_count')
