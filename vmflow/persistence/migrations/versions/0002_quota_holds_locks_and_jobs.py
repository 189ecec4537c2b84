"""quota holds, locks and jobs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('instance_locks',
    sa.Column('instance_uuid', sa.String(length=36), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('job_uuid', sa.String(length=36), nullable=False),
    sa.Column('request_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('instance_uuid', name=op.f('pk_instance_locks'))
    )
    with op.batch_alter_table('instance_locks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_locks_job_uuid'), ['job_uuid'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('board', sa.String(length=63), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('book_uuid', sa.String(length=64), nullable=True),
    sa.Column('book_name', sa.String(length=255), nullable=True),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=255), nullable=True),
    sa.Column('claim_expires_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('uuid', name=op.f('uq_jobs_uuid'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_board_state', ['board', 'state'], unique=False)

    op.create_table('project_locks',
    sa.Column('project', sa.String(length=63), nullable=False),
    sa.PrimaryKeyConstraint('project', name=op.f('pk_project_locks'))
    )
    op.create_table('quota_holds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('consumer_uuid', sa.String(length=36), nullable=False),
    sa.Column('project', sa.String(length=63), nullable=False),
    sa.Column('instances', sa.Integer(), nullable=False),
    sa.Column('cores', sa.Integer(), nullable=False),
    sa.Column('ram', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quota_holds')),
    sa.UniqueConstraint('consumer_uuid', name=op.f('uq_quota_holds_consumer_uuid'))
    )
    with op.batch_alter_table('quota_holds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quota_holds_project'), ['project'], unique=False)


def downgrade():
    for table in ("quota_holds", "project_locks", "jobs", "instance_locks"):
        op.drop_table(table)
