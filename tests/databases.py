"""Private test databases on SQLite and on the PostgreSQL and MariaDB
servers running on loopback (TESTBED.md): each is created for its user
and dropped afterwards; private job board namespaces on the machine's
Redis, whose keys are deleted afterwards."""
import contextlib
import uuid

import sqlalchemy

from vmflow.engine import persistence as engine_persistence
from vmflow.persistence import api, migration, models

SERVER_URLS = {
    "postgresql": "postgresql+psycopg2://postgres@127.0.0.1:5432/{db}",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/{db}",
}
ADMIN_DB = {"postgresql": "postgres", "mariadb": "mysql"}
DROP = {"postgresql": "DROP DATABASE {db} WITH (FORCE)",
        "mariadb": "DROP DATABASE {db}"}


@contextlib.contextmanager
def private_database(kind, folder, sync=True):
    """The URL of a new database (at the current schema unless ``sync`` is
    False); a server database is dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{folder}/vmflow-test.sqlite"
        if sync:
            sync_schema(url)
        yield url
        return
    name = "vmflow_test_" + uuid.uuid4().hex[:12]
    admin = sqlalchemy.create_engine(
        SERVER_URLS[kind].format(db=ADMIN_DB[kind]),
        isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f"CREATE DATABASE {name}")
    url = SERVER_URLS[kind].format(db=name)
    try:
        if sync:
            sync_schema(url)
        yield url
    finally:
        api.dispose_engines()
        engine_persistence.forget_persistence()
        with admin.connect() as connection:
            connection.exec_driver_sql(DROP[kind].format(db=name))
        admin.dispose()


def sync_schema(url):
    """``vmflow db sync`` on ``url``."""
    engine = api.create_engine(url)
    try:
        migration.db_sync(engine)
    finally:
        engine.dispose()


def add_flavor_and_image(session, ram_mb=128):
    """A flavor ``tiny`` and an image ``img`` rows (no file behind it), for
    tests that write instance rows directly; returns their ids."""
    flavor = models.Flavor(name="tiny", vcpus=1, ram_mb=ram_mb, disk_gb=1)
    image = models.Image(name="img", file="/srv/img", disk_format="raw",
                         size_bytes=1, virtual_size_bytes=1)
    session.add_all([flavor, image])
    session.flush()
    return {"flavor_id": flavor.id, "image_id": image.id}
