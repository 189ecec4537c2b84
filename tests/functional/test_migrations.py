"""Migrations on SQLite and on the PostgreSQL and MariaDB servers.

Each server test creates its own database and drops it afterwards.
"""
import pytest
import sqlalchemy
from alembic import autogenerate, migration as alembic_migration

from tests import databases
from vmflow.persistence import api, migration, models

TASKFLOW_TABLES = {"logbooks", "flowdetails", "atomdetails"}


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def empty_database(request, tmp_path, conf):
    with databases.private_database(request.param, tmp_path,
                                    sync=False) as url:
        engine = api.create_engine(url)
        yield engine
        engine.dispose()


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


def test_the_head_every_command_checks_for_is_alembics():
    # check_schema compares with HEAD_REVISION so as not to import alembic
    assert migration.HEAD_REVISION == migration.head_revision()


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


def test_upgrade_maps_libvirt_power_states_to_neutral_ones(empty_database):
    migration.db_sync(empty_database, "0002")
    with api.session_scope(empty_database) as session:
        rows = databases.add_flavor_and_image(session, ram_mb=64)
        for name, state in (("a", "blocked"), ("b", "shutoff"),
                            ("c", "pmsuspended"), ("d", "paused")):
            session.add(models.Instance(
                name=name, project="p", vcpus=1, memory_mb=64, disk_gb=1,
                vm_state="active", power_state=state, **rows))
    migration.db_sync(empty_database)
    with api.session_scope(empty_database) as session:
        states = dict(session.execute(sqlalchemy.select(
            models.Instance.name, models.Instance.power_state)).all())
    assert states == {"a": "running", "b": "shutdown", "c": "suspended",
                      "d": "paused"}
