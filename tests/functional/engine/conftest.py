"""Fixtures of the engine tests.

``database_url`` is one private database per test module and kind (SQLite
file, or a PostgreSQL/MariaDB database created and dropped here); each
test gets its own job board namespace on it, so tests do not see each
other's jobs.
"""
import pytest

from tests.functional.engine import helpers
from vmflow.engine import jobboard
from vmflow.engine import persistence as engine_persistence


def _database(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("engine-db")
    return helpers.private_database(request.param, folder)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    with _database(request, tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "mariadb"])
def any_database_url(request, tmp_path_factory):
    with _database(request, tmp_path_factory) as url:
        yield url


@pytest.fixture
def db(conf, database_url):
    """The SQLAlchemy engine of the test's database (SQLite, PostgreSQL);
    CONF points at it with a fresh job board namespace."""
    yield helpers.configure_database(conf, database_url)
    engine_persistence.forget_persistence()


@pytest.fixture
def any_db(conf, any_database_url):
    """As ``db``, on SQLite, PostgreSQL and MariaDB."""
    yield helpers.configure_database(conf, any_database_url)
    engine_persistence.forget_persistence()


@pytest.fixture
def board(conf, db):
    board = jobboard.get_jobboard(
        conf, engine_persistence.get_persistence(conf, db))
    yield board
    board.close()


@pytest.fixture
def trace_file(tmp_path):
    return str(tmp_path / "trace")
