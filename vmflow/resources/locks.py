"""Write transactions that serialise on a row.

PostgreSQL and MariaDB lock one row with ``SELECT ... FOR UPDATE``: every
transaction that checks a limit and then writes against it takes the same
row lock first, so two of them never both see room for one more. SQLite
has no row locks; there the transaction starts with ``BEGIN IMMEDIATE``,
which takes the database write lock before the first read.

The lock comes first, before any plain read: on MariaDB's REPEATABLE READ
a transaction's snapshot is taken at its first plain read, and a snapshot
taken before the lock was granted would miss the previous holder's write.
"""
import sqlalchemy
from sqlalchemy import exc as sa_exc

from vmflow.persistence import api

def begin_write(session):
    """Start the transaction as a writer (SQLite: BEGIN IMMEDIATE).

    Must be the first statement of the session's transaction.
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    connection = session.connection(execution_options=api.WRITER_OPTIONS)
    if (connection.get_execution_options().get("sqlite_begin")
            != api.WRITER_OPTIONS["sqlite_begin"]):
        raise RuntimeError("begin_write() must come before any other "
                           "statement of the transaction")


def ensure_row(session, model, **key):
    """Insert the row ``key`` unless it exists (a concurrent insert of the
    same key is fine), without reading first."""
    try:
        with session.begin_nested():
            session.execute(sqlalchemy.insert(model).values(**key))
    except sa_exc.IntegrityError:
        pass


def lock_row(session, model, *criteria):
    """``SELECT ... FOR UPDATE`` of the one row matching ``criteria``;
    None when there is none."""
    return session.scalars(sqlalchemy.select(model).where(*criteria)
                           .with_for_update()).one_or_none()
