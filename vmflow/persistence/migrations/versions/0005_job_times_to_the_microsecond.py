"""job board times to the microsecond on MySQL/MariaDB

A plain DATETIME there keeps whole seconds: a claim's expiry lost up to a
second (a sub-second claim was often over the moment it was made). SQLite
and PostgreSQL already keep microseconds: nothing changes there.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

COLUMNS = {'claim_expires_at': True, 'created_at': False,
           'updated_at': False}  # name: nullable


def _on_mysql():
    return op.get_bind().dialect.name in ('mysql', 'mariadb')


def _retype(old_type, new_type):
    for column, nullable in COLUMNS.items():
        op.alter_column('jobs', column, type_=new_type,
                        existing_type=old_type, existing_nullable=nullable)


def upgrade():
    if _on_mysql():
        _retype(sa.DateTime(), mysql.DATETIME(fsp=6))


def downgrade():
    if _on_mysql():
        _retype(mysql.DATETIME(fsp=6), sa.DateTime())
