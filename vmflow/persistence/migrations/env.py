"""Alembic environment for vmflow's own tables.

The version table has its own name so it never collides with the
``alembic_version`` table of TaskFlow's migrations in the same database.
"""
from alembic import context

from vmflow.persistence import models

VERSION_TABLE = "vmflow_alembic_version"

config = context.config
connection = config.attributes["connection"]


def only_vmflow_tables(name, type_, parent_names):
    """Autogenerate must never touch TaskFlow's tables in the same DB."""
    return type_ != "table" or name in models.Base.metadata.tables


context.configure(connection=connection,
                  target_metadata=models.Base.metadata,
                  version_table=VERSION_TABLE,
                  include_name=only_vmflow_tables,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
