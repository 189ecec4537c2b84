"""hypervisor-neutral power states in instance rows

Rows written before vmflow.power_states may hold libvirt's own words; they
become the neutral names the libvirt driver now maps them to. The words are
spelled out here, not imported: a migration must not change when the code
does.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

LIBVIRT_WORDS = {'blocked': 'running', 'shutoff': 'shutdown',
                 'pmsuspended': 'suspended'}


def upgrade():
    instances = sa.table('instances', sa.column('power_state', sa.String))
    for libvirt_word, neutral in LIBVIRT_WORDS.items():
        op.execute(instances.update()
                   .where(instances.c.power_state == libvirt_word)
                   .values(power_state=neutral))


def downgrade():
    # The neutral names are valid at 0002 too: nothing to undo.
    pass
