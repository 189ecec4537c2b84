"""Database engines and sessions.

One engine per URL per process. SQLite runs in WAL mode with foreign keys
on and a busy timeout, so the CLI and runners can share the file.
"""
import contextlib
import functools
import os
import threading
import time

import sqlalchemy
from sqlalchemy import event, exc as sa_exc, orm

from vmflow import conf as vmflow_conf
from vmflow import exception

# The optional extra (setup.cfg) that installs each server's driver.
DRIVER_EXTRAS = {"postgresql": "postgresql", "mysql": "mysql",
                 "mariadb": "mysql"}
# {URL or (BOARD_POOL, URL): engine}
_engines = {}
_engines_lock = threading.Lock()
BOARD_POOL = "jobboard"


def _configure_sqlite(engine, synchronous_full, busy_timeout_seconds):
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's "begin" listener issue BEGIN itself, so a write
        # transaction can take the lock up front (see begin_immediate).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=%s"
                       % ("FULL" if synchronous_full else "NORMAL"))
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=%d"
                       % (busy_timeout_seconds * 1000))
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        mode = connection.get_execution_options().get("sqlite_begin",
                                                      "DEFERRED")
        connection.exec_driver_sql("BEGIN %s" % mode)


def create_engine(url, conf=vmflow_conf.CONF):
    url = sqlalchemy.engine.make_url(url)
    if url.get_backend_name() == "sqlite":
        engine = sqlalchemy.create_engine(url)
        _configure_sqlite(engine, conf.database.sqlite_synchronous_full,
                          conf.database.busy_timeout_seconds)
        return engine
    try:
        return sqlalchemy.create_engine(url, pool_pre_ping=True,
                                        pool_size=conf.database.pool_size)
    except ImportError as error:
        extra = DRIVER_EXTRAS.get(url.get_backend_name())
        if extra is None or error.name is None:
            raise
        raise exception.MissingExtra(
            what=f"[database] connection = {url.drivername}://...",
            package=error.name, extra=extra) from error


def display_url(engine):
    """The engine's URL as it may be printed: password masked."""
    return engine.url.render_as_string(hide_password=True)


def _sqlite_file(engine):
    """The SQLite database file of ``engine``, None for other databases."""
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "",
                                                              ":memory:"):
        return None
    return os.path.abspath(url.database)


def create_sqlite_directory(engine):
    """Make the folder of an SQLite file (only ``db sync`` creates one)."""
    path = _sqlite_file(engine)
    if path:
        os.makedirs(os.path.dirname(path), exist_ok=True)


def check_reachable(engine):
    """Raise DatabaseMissing for an SQLite file that does not exist (rather
    than create an empty one), DatabaseUnavailable when the database does
    not answer, with the driver's first line."""
    path = _sqlite_file(engine)
    if path and not os.path.exists(path):
        raise exception.DatabaseMissing(url=display_url(engine))
    try:
        with engine.connect():
            pass
    except sa_exc.DBAPIError as error:
        raise unavailable(engine, error) from None


def unavailable(engine, error):
    """DatabaseUnavailable for a driver error (first line of the driver's
    own message, without SQLAlchemy's SQL dump)."""
    reason = str(getattr(error, "orig", None) or error).strip()
    return exception.DatabaseUnavailable(
        url=display_url(engine), reason=reason.splitlines()[0] if reason
        else type(error).__name__)


def get_engine(conf=vmflow_conf.CONF):
    url = vmflow_conf.database_url(conf)
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = create_engine(url, conf)
        return engine


def get_board_engine(conf=vmflow_conf.CONF):
    """The engine of the SQL job board. On a database server it has a pool
    of its own: a runner's jobs hold the main pool's connections (some
    while they wait for a row lock), and a claim renewal that waited for
    one of them could let the claim expire under a live runner. SQLite
    shares the one engine (a second pool gains nothing there: one writer
    at a time)."""
    url = vmflow_conf.database_url(conf)
    if sqlalchemy.engine.make_url(url).get_backend_name() == "sqlite":
        return get_engine(conf)
    with _engines_lock:
        key = (BOARD_POOL, url)
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = create_engine(url, conf)
        return engine


def dispose_engines():
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextlib.contextmanager
def session_scope(engine=None):
    """A session whose transaction commits on success, rolls back on error."""
    engine = engine or get_engine()
    with orm.Session(engine, expire_on_commit=False) as session:
        with session.begin():
            yield session


# Execution options of a transaction that writes: on SQLite it starts
# BEGIN IMMEDIATE (see writer_scope); other databases ignore them.
WRITER_OPTIONS = {"sqlite_begin": "IMMEDIATE"}


def writer_engine(engine):
    """``engine`` whose transactions start as writers (see writer_scope)."""
    return engine.execution_options(**WRITER_OPTIONS)


def writer_scope(engine=None):
    """A :func:`session_scope` for a transaction that writes.

    On SQLite it starts ``BEGIN IMMEDIATE``: the write lock is taken (or
    waited for, up to ``[database] busy_timeout_seconds``) before the first
    read. A deferred transaction that reads and then writes cannot wait:
    when another connection wrote after its read began, its first write
    fails at once with "database is locked". Other databases are not
    affected.
    """
    return session_scope(writer_engine(engine or get_engine()))


# MySQL/MariaDB's ER_LOCK_DEADLOCK; PostgreSQL's deadlock_detected and
# serialization_failure SQLSTATEs.
DEADLOCK_ERRNO = 1213
DEADLOCK_SQLSTATES = ("40P01", "40001")
DEADLOCK_ATTEMPTS = 5


def is_deadlock(error):
    """Whether DBAPIError ``error`` is a deadlock the server broke by
    rolling this transaction back (it may simply be run again)."""
    original = getattr(error, "orig", None)
    if getattr(original, "pgcode", None) in DEADLOCK_SQLSTATES:
        return True
    arguments = getattr(original, "args", ())
    return bool(arguments) and arguments[0] == DEADLOCK_ERRNO


def retry_on_deadlock(function):
    """Run ``function`` (one whole transaction) again, a few times with a
    short back-off, when the database broke a deadlock by rolling it back
    (InnoDB does under concurrent inserts and updates of one index)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        for attempt in range(DEADLOCK_ATTEMPTS):
            try:
                return function(*args, **kwargs)
            except sa_exc.DBAPIError as error:
                if attempt == DEADLOCK_ATTEMPTS - 1 or not is_deadlock(error):
                    raise
            time.sleep(0.02 * 2 ** attempt)
    return wrapper
