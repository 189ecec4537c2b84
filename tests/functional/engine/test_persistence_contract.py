"""TaskFlow's own persistence contract (``PersistenceTestMixin``) against
vmflow's backend, on SQLite, PostgreSQL and MariaDB; then what the mixin
does not cover: the backend's known-row cache must never hide a write."""
import contextlib
import shutil
import tempfile
import time
import unittest

import pytest
import sqlalchemy
from taskflow import exceptions as tf_exc
from taskflow import states
from taskflow.persistence import models as tf_models
from taskflow.persistence.backends import impl_sqlalchemy
from taskflow.tests.unit.persistence import base as tf_contract

from tests import databases
from vmflow import conf as vmflow_conf
from vmflow.engine import persistence_backend
from vmflow.persistence import api


class _OnPrivateDatabase(tf_contract.PersistenceTestMixin):
    """One private database per class, emptied before each test."""
    KIND = None

    @classmethod
    def setUpClass(cls):
        vmflow_conf.parse(config_files=[])
        cls.folder = tempfile.mkdtemp()
        cls.database = databases.private_database(cls.KIND, cls.folder)
        cls.engine = api.create_engine(cls.database.__enter__())

    @classmethod
    def tearDownClass(cls):
        cls.engine.dispose()
        cls.database.__exit__(None, None, None)
        shutil.rmtree(cls.folder)

    def setUp(self):
        super().setUp()
        self.backend = persistence_backend.ProgressBackend(self.engine)
        with contextlib.closing(self._get_connection()) as connection:
            connection.clear_all()

    def _get_connection(self):
        return self.backend.get_connection()


class TestContractOnSQLite(_OnPrivateDatabase, unittest.TestCase):
    KIND = "sqlite"


class TestContractOnPostgreSQL(_OnPrivateDatabase, unittest.TestCase):
    KIND = "postgresql"


class TestContractOnMariaDB(_OnPrivateDatabase, unittest.TestCase):
    KIND = "mariadb"


# Beyond the mixin: saves that change nothing (or only progress) are not
# sent, and still no write is lost or served stale. What reached the
# database is read back from it (updated_at) or, on SQLite, traced by the
# database library itself.

@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def store(request, tmp_path):
    vmflow_conf.parse(config_files=[])
    with databases.private_database(request.param, tmp_path) as url:
        engine = api.create_engine(url)
        try:
            yield persistence_backend.ProgressBackend(engine), engine
        finally:
            engine.dispose()


@pytest.fixture
def sqlite_statements(tmp_path):
    """(backend, statements SQLite ran) on a private SQLite database."""
    vmflow_conf.parse(config_files=[])
    with databases.private_database("sqlite", tmp_path) as url:
        engine = api.create_engine(url)
        statements = []
        sqlalchemy.event.listen(
            engine, "connect", lambda dbapi_connection, _record:
            dbapi_connection.set_trace_callback(statements.append))
        try:
            yield persistence_backend.ProgressBackend(engine), statements
        finally:
            engine.dispose()


def _saved_book(backend, *atoms):
    book = tf_models.LogBook("book")
    flow = tf_models.FlowDetail("flow", "f-" + book.uuid)
    for atom in atoms:
        flow.add(atom)
    book.add(flow)
    with contextlib.closing(backend.get_connection()) as connection:
        connection.save_logbook(book)
    return book, flow


def _stamp(engine, uuid):
    with engine.connect() as db:
        return db.execute(sqlalchemy.text(
            "SELECT updated_at, state, meta FROM atomdetails WHERE uuid = :u"),
            {"u": uuid}).one()


def test_a_save_that_changes_nothing_writes_nothing(store):
    backend, engine = store
    atom = tf_models.TaskDetail("t", "t-1")
    _saved_book(backend, atom)
    connection = backend.get_connection()
    atom.state = states.RUNNING
    connection.update_atom_details(atom)
    first = _stamp(engine, "t-1")
    assert first.state == states.RUNNING and first.updated_at is not None
    # MariaDB keeps whole seconds: wait for a stamp a write would change.
    time.sleep(1.05 if engine.dialect.name == "mysql" else 0.01)
    connection.update_atom_details(atom.copy())
    assert _stamp(engine, "t-1") == first
    atom.state = states.SUCCESS
    connection.update_atom_details(atom)
    assert _stamp(engine, "t-1").updated_at > first.updated_at


def test_progress_is_written_with_the_next_save_that_matters(store):
    backend, engine = store
    atom, other = tf_models.TaskDetail("t", "t-1"), tf_models.TaskDetail(
        "u", "u-1")
    _book, flow = _saved_book(backend, atom, other)
    connection = backend.get_connection()
    atom.state = states.RUNNING
    connection.update_atom_details(atom)
    atom.meta["progress"] = 0.5
    connection.update_atom_details(atom)
    assert "progress" not in (_stamp(engine, "t-1").meta or "")
    atom.put(states.SUCCESS, "done")
    connection.update_atom_details(atom)
    written = connection.get_atom_details("t-1")
    assert (written.state, written.results, written.meta["progress"]) == (
        states.SUCCESS, "done", 0.5)
    atom.meta["progress"] = 1.0
    connection.update_atom_details(atom)
    assert connection.get_atom_details("t-1").meta["progress"] == 0.5
    flow.state = states.SUCCESS
    connection.update_flow_details(flow)
    assert connection.get_atom_details("t-1").meta["progress"] == 1.0


def test_a_meta_change_beyond_progress_is_written_at_once(store):
    backend, _engine = store
    atom = tf_models.TaskDetail("t", "t-1")
    _saved_book(backend, atom)
    connection = backend.get_connection()
    atom.meta.update(progress=0.5, marker="kept")
    connection.update_atom_details(atom)
    assert connection.get_atom_details("t-1").meta == {
        "progress": 0.5, "marker": "kept"}


def test_a_state_save_is_one_update_of_what_changed(sqlite_statements):
    backend, statements = sqlite_statements
    atom = tf_models.TaskDetail("t", "t-1")
    _saved_book(backend, atom)
    connection = backend.get_connection()
    del statements[:]
    atom.put(states.SUCCESS, {"disk": "/var/lib/x"})
    connection.update_atom_details(atom)
    sent = [s.split()[0] for s in statements]
    assert sent == ["BEGIN", "UPDATE", "COMMIT"], statements
    assert "results" in statements[1] and "state" in statements[1]
    assert "name" not in statements[1] and "meta" not in statements[1]
    del statements[:]
    connection.update_atom_details(atom.copy())
    assert statements == []


def test_another_process_sees_every_write(store):
    """A second backend (another process's) reads what the first wrote,
    and so does TaskFlow's stock backend (same rows, same encoding)."""
    backend, engine = store
    atom = tf_models.TaskDetail("t", "t-1")
    _book, flow = _saved_book(backend, atom)
    connection = backend.get_connection()
    for state in (states.RUNNING, states.SUCCESS):
        atom.state = state
        connection.update_atom_details(atom)
    other = persistence_backend.ProgressBackend(engine).get_connection()
    assert other.get_atom_details("t-1").state == states.SUCCESS
    stock = impl_sqlalchemy.SQLAlchemyBackend({}, engine=engine)
    with contextlib.closing(stock.get_connection()) as stock_connection:
        assert stock_connection.get_atom_details("t-1").state == (
            states.SUCCESS)
        flow.state = states.SUCCESS
        stock_connection.update_flow_details(flow)
    assert other.get_flow_details(flow.uuid).state == states.SUCCESS


def test_a_read_refreshes_what_the_process_knows(store):
    """Another process changed a row this one wrote; after reading it,
    saving the old value again is a real write, not skipped."""
    backend, engine = store
    atom = tf_models.TaskDetail("t", "t-1")
    _saved_book(backend, atom)
    mine = backend.get_connection()
    atom.state = states.RUNNING
    mine.update_atom_details(atom)
    theirs = persistence_backend.ProgressBackend(engine).get_connection()
    their_atom = theirs.get_atom_details("t-1")
    their_atom.state = states.REVERTED
    theirs.update_atom_details(their_atom)
    assert mine.get_atom_details("t-1").state == states.REVERTED
    mine.update_atom_details(atom)
    assert theirs.get_atom_details("t-1").state == states.RUNNING


def test_a_destroyed_logbook_takes_its_flows_and_atoms(store):
    backend, engine = store
    atom = tf_models.TaskDetail("t", "t-1")
    book, _flow = _saved_book(backend, atom)
    connection = backend.get_connection()
    connection.destroy_logbook(book.uuid)
    with pytest.raises(tf_exc.NotFound):
        connection.update_atom_details(atom)
    with engine.connect() as db:
        assert db.execute(sqlalchemy.text(
            "SELECT COUNT(*) FROM atomdetails")).scalar() == 0


@pytest.mark.parametrize("store", ["sqlite", "postgresql"], indirect=True)
def test_atoms_come_back_in_the_order_they_were_added(store):
    """Reads order atoms by creation (PostgreSQL moves a row it updates;
    MariaDB's DATETIME keeps whole seconds, so it has no such order)."""
    backend, _engine = store
    atoms = [tf_models.TaskDetail(f"t{n}", f"t-{n}") for n in range(30)]
    _book, flow = _saved_book(backend, *atoms)
    connection = backend.get_connection()
    for atom in reversed(atoms[::2]):
        atom.state = states.SUCCESS
        connection.update_atom_details(atom)
    names = [atom.name for atom in atoms]
    assert [a.name for a in connection.get_flow_details(flow.uuid)] == names
    assert [a.name for a in connection.get_atoms_for_flow(flow.uuid)] == (
        names)
