"""``UPDATE <table> SET <columns> WHERE uuid = ?`` sent straight through
the database driver, in one committed transaction.

This is the persistence backend's hot path (TaskFlow saves an atom about
twice a task). Building, compiling and caching an SQLAlchemy statement
costs several times what SQLite takes to run and commit it, so each
statement is compiled once per table and set of columns, for the engine's
dialect, and run on a pooled DBAPI connection (the pool's pre-ping still
applies). A write on SQLite starts ``BEGIN IMMEDIATE``, as
:func:`vmflow.persistence.api.writer_engine` does.
"""
import threading

import sqlalchemy
from oslo_utils import timeutils


class DriverUpdates:
    """Compiled updates by uuid for one SQLAlchemy engine."""

    def __init__(self, engine):
        self._engine = engine
        self._dialect = engine.dialect
        self._statements = {}
        self._lock = threading.Lock()
        timestamp = sqlalchemy.DateTime().dialect_impl(self._dialect)
        self._timestamp = (timestamp.bind_processor(self._dialect)
                           or (lambda value: value))
        self.database_error = self._dialect.loaded_dbapi.Error

    def run(self, updates):
        """Run ``(table, uuid, {column: value})`` updates in one transaction
        (``updated_at`` is set on each); the row count of each, in order."""
        now = self._timestamp(timeutils.utcnow())
        connection = self._engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                if self._dialect.name == "sqlite":
                    cursor.execute("BEGIN IMMEDIATE")
                counts = []
                for table, uuid, values in updates:
                    sql, order = self._statement(table, tuple(values))
                    cursor.execute(sql, self._parameters(
                        order, {**values, "updated_at": now,
                                "row_uuid": uuid}))
                    counts.append(cursor.rowcount)
                connection.commit()
            finally:
                cursor.close()
        except BaseException:
            connection.invalidate()  # in doubt: never reuse it
            raise
        finally:
            connection.close()
        return counts

    def _statement(self, table, columns):
        key = (table.name, columns)
        found = self._statements.get(key)
        if found is None:
            statement = table.update().where(
                table.c.uuid == sqlalchemy.bindparam("row_uuid")).values(
                {column: sqlalchemy.bindparam(column)
                 for column in ("updated_at",) + columns})
            compiled = statement.compile(dialect=self._dialect)
            order = compiled.positiontup if compiled.positional else None
            found = (compiled.string, order)
            with self._lock:
                self._statements[key] = found
        return found

    @staticmethod
    def _parameters(order, values):
        if order is None:
            return values
        return tuple(values[name] for name in order)
