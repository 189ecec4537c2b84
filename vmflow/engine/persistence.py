"""TaskFlow persistence (logbooks, flow and atom details) on the project
database.

TaskFlow's stock SQLAlchemy backend builds a new ``MetaData`` and rebuilds
its three tables on every ``get_connection()`` -- and the engine asks for a
connection at every atom save, about four times a task (TESTBED.md: 46 ms a
task on SQLite). :class:`ProjectDatabaseBackend` builds the tables once per
backend, runs on vmflow's own SQLAlchemy engine (SQLite in WAL mode with the
busy timeout and synchronous setting of ``[database]``) and is kept once per
process and database by :func:`get_persistence`.

The backend is given the engine object, never the URL: its ``conf`` holds
the URL with the password masked, so nothing TaskFlow logs or stores can
leak the database password.

Its connections also load retry histories correctly: TaskFlow 6.5's
``RetryDetail.from_dict`` reuses one variable for an attempt's value and
its failures, so every attempt that failed comes back from the database
with its last failure (a dict) in place of the value the retry provided.
A runner resuming a build reverted after a host failure would hand
``RetryOnNextHost``'s failure, not the host name, to every task it reverts.

TaskFlow private names used here, and why: :mod:`.taskflow_private`.
"""
import contextlib
import threading

import sqlalchemy
from taskflow.persistence.backends import impl_sqlalchemy
from taskflow.persistence.backends.sqlalchemy import tables as tf_tables
from taskflow.persistence import models as tf_models
from taskflow.types import failure as ft

from vmflow import conf as vmflow_conf
from vmflow.persistence import api

_backends = {}
_backends_lock = threading.Lock()


class _Converter(impl_sqlalchemy._Alchemist):
    """TaskFlow's row converter, decoding retry histories right (see the
    module docstring)."""

    @staticmethod
    def convert_atom_detail(row):
        detail = impl_sqlalchemy._Alchemist.convert_atom_detail(row)
        if isinstance(detail, tf_models.RetryDetail):
            detail.results = [
                (value, {name: ft.Failure.from_dict(failure)
                         for name, failure in failures.items()})
                for value, failures in row["results"] or ()]
        return detail


class _SharedTablesConnection(impl_sqlalchemy.Connection):
    """A stock connection that reuses its backend's table objects.

    The parent ``__init__`` is replaced on purpose: it is exactly these
    four assignments plus the per-connection ``tables.fetch`` we avoid.
    """

    def __init__(self, backend, upgrade_lock):  # noqa: super not called
        self._backend = backend
        self._upgrade_lock = upgrade_lock
        self._engine = backend.engine
        self._metadata = backend.metadata
        self._tables = backend.tables
        self._converter = _Converter(self._tables)


class ProjectDatabaseBackend(impl_sqlalchemy.SQLAlchemyBackend):
    """TaskFlow's SQLAlchemy backend on a given vmflow engine.

    On SQLite every transaction starts ``BEGIN IMMEDIATE``: an atom save is
    a read followed by a write, and a deferred transaction that reads first
    cannot wait for the write lock (SQLITE_BUSY at once when another runner
    or the CLI wrote in between); an immediate one waits up to
    ``[database] busy_timeout_seconds``.
    """

    def __init__(self, engine):
        self.source_engine = engine
        self.metadata = sqlalchemy.MetaData()
        self.tables = tf_tables.fetch(self.metadata)
        masked_url = engine.url.render_as_string(hide_password=True)
        super().__init__({"connection": masked_url},
                         engine=api.writer_engine(engine))

    def get_connection(self):
        connection = _SharedTablesConnection(self, self._upgrade_lock)
        if not self._validated:
            connection.validate(max_retries=self._max_retries)
            self._validated = True
        return connection


def get_persistence(conf=vmflow_conf.CONF, engine=None):
    """The process's TaskFlow backend for ``engine`` (default: the
    configured database). The schema must exist (``vmflow db sync``)."""
    engine = engine or api.get_engine(conf)
    key = engine.url.render_as_string(hide_password=False)
    with _backends_lock:
        backend = _backends.get(key)
        if backend is None or backend.source_engine is not engine:
            backend = _backends[key] = ProjectDatabaseBackend(engine)
        return backend


def forget_persistence():
    """Drop the cached backends (tests that dispose their engines)."""
    with _backends_lock:
        _backends.clear()


@contextlib.contextmanager
def persistence_connection(backend):
    """A TaskFlow persistence connection, closed on exit."""
    with contextlib.closing(backend.get_connection()) as connection:
        yield connection


def get_flow_detail(backend, flow_uuid):
    """The persisted flow detail ``flow_uuid`` with its atom details."""
    with persistence_connection(backend) as connection:
        return connection.get_flow_details(flow_uuid)
