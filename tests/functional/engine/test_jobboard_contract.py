"""TaskFlow's own job board contract, ``BoardTestMixin``, run against both
of vmflow's boards as :func:`vmflow.engine.jobboard.get_jobboard` builds
them from CONF: the SQL board on SQLite, PostgreSQL and MariaDB (one private
database per class, a fresh namespace per test) and the Redis board on
127.0.0.1:6379 (a private namespace per test, its keys deleted after).

The mixin's tests are TaskFlow's ``unittest`` methods; pytest runs them and
hands them CONF through an autouse fixture. Each board is built unconnected
(the mixin connects and closes it) and owns its client, as in production:
closing the board is what ends its connection.

Two tests of vmflow's own follow the mixin's on every board: what TaskFlow
checks of its Redis board beyond the mixin (a claim with an expiry lapses;
an owner cannot claim its own job twice) and vmflow's runners rely on.
"""
import time

import pytest
from taskflow import exceptions as tf_exc
from taskflow import states
from taskflow import test as tf_test
from taskflow.tests.unit.jobs import base as board_contract

from tests.functional.engine import helpers
from vmflow.engine import jobboard
from vmflow.persistence import api


@pytest.fixture(scope="class")
def class_database(request, tmp_path_factory):
    """A private database of the class's ``DATABASE`` kind, at the current
    schema, as ``cls.database_url``."""
    folder = tmp_path_factory.mktemp("board-contract")
    with helpers.private_database(request.cls.DATABASE, folder) as url:
        request.cls.database_url = url
        yield


class BoardContract(board_contract.BoardTestMixin):
    """The mixin's tests on a board built by ``get_jobboard``; subclasses
    set CONF up for their backend in :meth:`configure`."""

    # oslotest's per-test timeout: the mixin's waiter thread has none.
    DEFAULT_TIMEOUT = 60

    @pytest.fixture(autouse=True)
    def configured(self, conf):
        self.conf = conf
        yield from self.configure(conf)

    def configure(self, conf):
        raise NotImplementedError

    def setUp(self):
        super().setUp()
        self.client, self.board = self.create_board()

    def create_board(self, persistence=None):
        board = jobboard.get_jobboard(self.conf, persistence=persistence,
                                      connect=False)
        self.addCleanup(board.close)
        return self.client_of(board), board

    def client_of(self, board):
        raise NotImplementedError

    def test_a_claim_lapses_after_its_expiry(self):
        with board_contract.connect_close(self.board):
            job = self.board.post("job")
            self.board.claim(job, "runner-a", expiry=1)
            self.assertEqual(states.CLAIMED, job.state)
            self.assertEqual("runner-a", self.board.find_owner(job))
            self.assertEqual(
                [], list(self.board.iterjobs(only_unclaimed=True)))
            time.sleep(1.1)
            self.assertEqual(states.UNCLAIMED, job.state)
            self.assertIsNone(self.board.find_owner(job))
            self.assertEqual([job.uuid], [
                unclaimed.uuid
                for unclaimed in self.board.iterjobs(only_unclaimed=True)])

    def test_an_owner_cannot_claim_its_job_twice(self):
        # A runner's claim loop must not take again a job it is running.
        with board_contract.connect_close(self.board):
            job = self.board.post("job")
            self.board.claim(job, "runner-a")
            self.assertRaises(tf_exc.UnclaimableJob, self.board.claim, job,
                              "runner-a")
            self.assertEqual("runner-a", self.board.find_owner(job))


@pytest.mark.usefixtures("class_database")
class SQLBoardContract(BoardContract):

    def configure(self, conf):
        helpers.configure_database(conf, self.database_url)
        yield

    def client_of(self, board):
        # The board's engine; the mixin's close_client is left a no-op:
        # disposing of an engine does not stop it (it reconnects).
        return api.get_engine(self.conf)


class TestSQLBoardOnSQLite(SQLBoardContract, tf_test.TestCase):
    DATABASE = "sqlite"


class TestSQLBoardOnPostgreSQL(SQLBoardContract, tf_test.TestCase):
    DATABASE = "postgresql"


class TestSQLBoardOnMariaDB(SQLBoardContract, tf_test.TestCase):
    DATABASE = "mariadb"


class TestRedisBoard(BoardContract, tf_test.TestCase):

    def configure(self, conf):
        with helpers.redis_namespace() as namespace:
            helpers.configure_redis_board(conf, namespace)
            yield

    def client_of(self, board):
        # The board makes its client at connect() and closes it at close()
        # (get_jobboard passes none): there is no client of the test's own.
        return None
