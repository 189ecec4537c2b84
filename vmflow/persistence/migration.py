"""Schema creation and upgrades: vmflow's tables and TaskFlow's."""
import contextlib
import os

from alembic import command, config as alembic_config, migration, script
from sqlalchemy import exc as sa_exc

from vmflow import exception
from vmflow.persistence import api

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")
VERSION_TABLE = "vmflow_alembic_version"


def _alembic_config(connection):
    cfg = alembic_config.Config()
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    cfg.attributes["connection"] = connection
    return cfg


def head_revision():
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
            ctx = migration.MigrationContext.configure(
                connection, opts={"version_table": VERSION_TABLE})
            return ctx.get_current_revision()
    except sa_exc.DBAPIError as error:  # e.g. a file that is no database
        raise api.unavailable(engine, error) from None


def db_sync(engine=None, revision="head"):
    """Create or upgrade every table, TaskFlow's logbook tables included."""
    # Imported here: TaskFlow takes most of a second to import, and every
    # other CLI command only needs check_schema().
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
    with engine.begin() as connection:
        command.downgrade(_alembic_config(connection), revision)


def check_schema(engine=None):
    """Raise DatabaseNotReady unless the schema is at the head revision
    (DatabaseMissing / DatabaseUnavailable when there is none to ask)."""
    engine = engine or api.get_engine()
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        raise exception.DatabaseNotReady(
            url=api.display_url(engine),
            reason=f"at revision {current}, expected {head}")


@contextlib.contextmanager
def ready_session():
    """A writing session on a database at the current schema (the CLI's:
    commands that check and then write must not fail with "database is
    locked" while runners write to the same SQLite file)."""
    check_schema()
    with api.writer_scope() as session:
        yield session
