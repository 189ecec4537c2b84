"""resources of both flavors in migration records

A resize copies what the old and the new flavor hold into its migration
record, as instances copy their flavor's, so a revert and the audit still
know them after a flavor is deleted.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

COLUMNS = ('old_vcpus', 'old_memory_mb', 'old_disk_gb', 'new_vcpus',
           'new_memory_mb', 'new_disk_gb')


def upgrade():
    with op.batch_alter_table('migrations') as batch:
        for column in COLUMNS:
            batch.add_column(sa.Column(column, sa.Integer, nullable=False,
                                       server_default='0'))


def downgrade():
    with op.batch_alter_table('migrations') as batch:
        for column in COLUMNS:
            batch.drop_column(column)
