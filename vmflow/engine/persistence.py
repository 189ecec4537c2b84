"""TaskFlow persistence (logbooks, flow and atom details) on the project
database: one :class:`~vmflow.engine.persistence_backend.ProgressBackend`
per process and database (:func:`get_persistence`).
"""
import contextlib
import threading

from vmflow import conf as vmflow_conf
from vmflow.engine import persistence_backend
from vmflow.persistence import api

_backends = {}
_backends_lock = threading.Lock()


def get_persistence(conf=vmflow_conf.CONF, engine=None):
    """The process's TaskFlow backend for ``engine`` (default: the
    configured database). The schema must exist (``vmflow db sync``)."""
    engine = engine or api.get_engine(conf)
    key = engine.url.render_as_string(hide_password=False)
    with _backends_lock:
        backend = _backends.get(key)
        if backend is None or backend.source_engine is not engine:
            backend = _backends[key] = persistence_backend.ProgressBackend(
                engine)
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
