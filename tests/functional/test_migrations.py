"""Migrations on SQLite and on the PostgreSQL and MariaDB servers.

Each server test creates its own database and drops it afterwards.
"""
import uuid

import pytest
import sqlalchemy
from alembic import autogenerate, migration as alembic_migration

from vmflow.persistence import api, migration, models

TASKFLOW_TABLES = {"logbooks", "flowdetails", "atomdetails"}
SERVER_URLS = {
    "postgresql": "postgresql+psycopg2://postgres@127.0.0.1:5432/{db}",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/{db}",
}
ADMIN_DB = {"postgresql": "postgres", "mariadb": "mysql"}


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def empty_database(request, tmp_path, conf):
    kind = request.param
    if kind == "sqlite":
        engine = api.create_engine(f"sqlite:///{tmp_path}/migrate.sqlite")
        yield engine
        engine.dispose()
        return
    name = "vmflow_test_" + uuid.uuid4().hex[:12]
    admin = sqlalchemy.create_engine(
        SERVER_URLS[kind].format(db=ADMIN_DB[kind]),
        isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    engine = api.create_engine(SERVER_URLS[kind].format(db=name))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f"DROP DATABASE {name}")
        admin.dispose()


def table_names(engine):
    return set(sqlalchemy.inspect(engine).get_table_names())


def schema_differences(engine):
    """What alembic sees differ between the models and our tables."""
    ours = set(models.Base.metadata.tables)

    def only_our_tables(name, type_, parent_names):
        return type_ != "table" or name in ours

    with engine.connect() as connection:
        context = alembic_migration.MigrationContext.configure(
            connection, opts={"version_table": migration.VERSION_TABLE,
                              "include_name": only_our_tables})
        return autogenerate.compare_metadata(context, models.Base.metadata)


def test_sync_creates_every_table_and_matches_the_models(empty_database):
    revision = migration.db_sync(empty_database)
    assert revision == migration.head_revision()
    tables = table_names(empty_database)
    assert set(models.Base.metadata.tables) <= tables
    assert TASKFLOW_TABLES <= tables
    assert schema_differences(empty_database) == []
    migration.check_schema(empty_database)


def test_sync_twice_is_harmless_and_downgrade_removes_our_tables(
        empty_database):
    migration.db_sync(empty_database)
    migration.db_sync(empty_database)
    migration.db_downgrade(empty_database, "base")
    tables = table_names(empty_database)
    assert not set(models.Base.metadata.tables) & tables
    assert TASKFLOW_TABLES <= tables
    assert migration.current_revision(empty_database) is None
    migration.db_sync(empty_database)
    assert set(models.Base.metadata.tables) <= table_names(empty_database)


def test_unsynced_database_is_reported_not_ready(empty_database):
    with pytest.raises(Exception) as caught:
        migration.check_schema(empty_database)
    assert "vmflow db sync" in str(caught.value)
