"""Schema creation and upgrades: vmflow's tables and TaskFlow's.

Every command checks the schema (:func:`check_schema`) with a plain query
and :data:`HEAD_REVISION`; alembic, a tenth of a second to import, is
imported only by what creates, upgrades or lists the migrations.
"""
import contextlib
import os

import sqlalchemy
from sqlalchemy import exc as sa_exc

from vmflow import exception
from vmflow.persistence import api

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")
VERSION_TABLE = "vmflow_alembic_version"
# The newest script's revision under migrations/versions (a new script
# changes it too: tests/functional/test_migrations.py compares the two).
HEAD_REVISION = "0005"


def _alembic_config(connection):
    from alembic import config as alembic_config
    cfg = alembic_config.Config()
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    cfg.attributes["connection"] = connection
    return cfg


def head_revision():
    """The head revision of the migration scripts, as alembic finds it."""
    from alembic import script
    head = script.ScriptDirectory(MIGRATIONS_DIR).get_current_head()
    if head is None:  # an install that left the migration scripts out
        raise exception.VmflowError(
            f"no schema migrations found under {MIGRATIONS_DIR}: this "
            "vmflow installation is incomplete")
    return head


def current_revision(engine):
    """The schema revision of a database that exists and answers (see
    :func:`api.check_reachable`)."""
    api.check_reachable(engine)
    try:
        with engine.connect() as connection:
            if not sqlalchemy.inspect(connection).has_table(VERSION_TABLE):
                return None
            revisions = connection.scalars(sqlalchemy.text(
                f"SELECT version_num FROM {VERSION_TABLE}")).all()
    except sa_exc.DBAPIError as error:  # e.g. a file that is no database
        raise api.unavailable(engine, error) from None
    # one row, or none after a downgrade to base
    return ", ".join(sorted(revisions)) or None


def db_sync(engine=None, revision="head"):
    """Create or upgrade every table, TaskFlow's logbook tables included."""
    # Imported here: TaskFlow takes most of a second to import, and every
    # other CLI command only needs check_schema().
    from alembic import command
    from taskflow.persistence.backends.sqlalchemy import \
        migration as taskflow_migration

    engine = engine or api.get_engine()
    head_revision()
    api.create_sqlite_directory(engine)
    try:
        with engine.begin() as connection:
            command.upgrade(_alembic_config(connection), revision)
        with engine.begin() as connection:
            taskflow_migration.db_sync(connection)
    except sa_exc.DBAPIError as error:
        raise api.unavailable(engine, error) from None
    return current_revision(engine)


def db_downgrade(engine, revision="base"):
    """Downgrade vmflow's own tables (used by the migration tests)."""
    from alembic import command
    with engine.begin() as connection:
        command.downgrade(_alembic_config(connection), revision)


def check_schema(engine=None):
    """Raise DatabaseNotReady unless the schema is at the head revision
    (DatabaseMissing / DatabaseUnavailable when there is none to ask)."""
    engine = engine or api.get_engine()
    current = current_revision(engine)
    if current != HEAD_REVISION:
        raise exception.DatabaseNotReady(
            url=api.display_url(engine),
            reason=f"at revision {current}, expected {HEAD_REVISION}")


@contextlib.contextmanager
def ready_session():
    """A writing session on a database at the current schema (the CLI's:
    commands that check and then write must not fail with "database is
    locked" while runners write to the same SQLite file)."""
    check_schema()
    with api.writer_scope() as session:
        yield session
