"""vmflow's own TaskFlow persistence backend: durable flow progress at
close to in-memory cost.

TaskFlow saves an atom detail four times a task (RUNNING, its progress,
result + SUCCESS, its progress). Its stock SQLAlchemy backend reads the row
back, merges and writes every column in a transaction, and on every
flow-state change re-reads and rewrites every atom of the flow. This
backend remembers, per process, the serialized columns of every row it
last read or wrote (:mod:`~vmflow.engine.persistence_cache`) and turns a
save into one ``UPDATE`` of the columns that changed, sent through the
driver (:mod:`~vmflow.engine.row_updates`) -- or into nothing when none
did. Each state or result save is its own committed transaction, so a
SIGKILL loses nothing TaskFlow reported done; progress-only saves, which
nothing recovers from, ride along with the next save that matters.

The rows are TaskFlow's own tables (``logbooks``, ``flowdetails``,
``atomdetails``, created by ``vmflow db sync``), written the way the stock
backend writes them (``oslo.serialization`` JSON; native JSON columns on
PostgreSQL), so both backends read each other's rows.

Only this process's rows are cached, and each read refreshes them: a job
is worked by one runner at a time (its claim), and a runner that takes a
job over reads the flow detail before it saves anything.

Retry histories are decoded right: TaskFlow 6.5's ``RetryDetail.from_dict``
reuses one variable for an attempt's value and its failures, so every
failed attempt came back with its failure in place of the value.
"""
import datetime
import functools

import sqlalchemy
from oslo_serialization import jsonutils
from oslo_utils import timeutils
from sqlalchemy import exc as sa_exc
from taskflow import exceptions as tf_exc
from taskflow.persistence import base
from taskflow.persistence import models as tf_models
from taskflow.types import failure as ft

from vmflow.engine import persistence_cache, row_updates
from vmflow.persistence import api

# Columns written as JSON text (native JSON on PostgreSQL: the database
# casts the text on assignment and the driver hands back decoded values).
JSON_COLUMNS = frozenset(("meta", "results", "revert_results", "failure",
                          "revert_failure"))
ATOM_COLUMNS = ("name", "version", "state", "intention", "atom_type",
                "meta", "results", "revert_results", "failure",
                "revert_failure")
FLOW_COLUMNS = ("name", "state", "meta")
BOOK_COLUMNS = ("name", "meta")


def _tables():
    metadata = sqlalchemy.MetaData()

    def table(name, *columns):
        return sqlalchemy.Table(
            name, metadata,
            sqlalchemy.Column("uuid", sqlalchemy.String(64),
                              primary_key=True),
            sqlalchemy.Column("created_at", sqlalchemy.DateTime),
            sqlalchemy.Column("updated_at", sqlalchemy.DateTime),
            *[sqlalchemy.Column(column, sqlalchemy.UnicodeText)
              for column in columns])

    return (table("logbooks", *BOOK_COLUMNS),
            table("flowdetails", "parent_uuid", *FLOW_COLUMNS),
            table("atomdetails", "parent_uuid", *ATOM_COLUMNS))


LOGBOOKS, FLOWDETAILS, ATOMDETAILS = _tables()


class ProgressBackend(base.Backend):
    """TaskFlow persistence on vmflow's engine for the database.

    The backend is given the engine object, never the URL: its ``conf``
    holds the URL with the password masked, so nothing TaskFlow logs or
    stores can leak the database password. Writes start ``BEGIN
    IMMEDIATE`` on SQLite (:func:`vmflow.persistence.api.writer_engine`).
    """

    def __init__(self, engine):
        super().__init__({"connection": api.display_url(engine)})
        self.source_engine = engine
        self.writer = api.writer_engine(engine)
        self.decoded_json = engine.dialect.name == "postgresql"
        self.known = persistence_cache.KnownRows()
        self.updates = row_updates.DriverUpdates(self.writer)
        self.progress = persistence_cache.PendingProgress()

    def get_connection(self):
        return ProgressConnection(self)

    def close(self):
        """The engine belongs to :mod:`vmflow.persistence.api`."""
        self.known.clear()


def _storage_errors(what):
    """Decorator: database errors become TaskFlow's StorageFailure."""
    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except (sa_exc.SQLAlchemyError,
                    self.backend.updates.database_error):
                tf_exc.raise_with_cause(tf_exc.StorageFailure,
                                        f"Failed {what}")
        return wrapper
    return decorate


class ProgressConnection(base.Connection):
    """One use of :class:`ProgressBackend` (TaskFlow takes one per save);
    it holds no database connection between calls."""

    def __init__(self, backend):
        self._backend = backend
        self._known = backend.known

    @property
    def backend(self):
        return self._backend

    def close(self):
        pass

    @_storage_errors("validating the database connection")
    def validate(self):
        with self._backend.source_engine.connect():
            pass

    def upgrade(self):
        # Imported here: the migration module imports alembic.
        from vmflow.persistence import migration
        migration.db_sync(self._backend.source_engine)

    @_storage_errors("clearing all entries")
    def clear_all(self):
        with self._backend.writer.begin() as db:
            for table in (ATOMDETAILS, FLOWDETAILS, LOGBOOKS):
                db.execute(table.delete())
        self._known.clear()
        self._backend.progress.clear()

    # Writes.

    @_storage_errors("updating an atom detail")
    def update_atom_details(self, atom_detail):
        uuid = atom_detail.uuid
        row = _atom_row(atom_detail)
        known = self._known.get(uuid)
        changed = _changed(known, row)
        if self._backend.progress.defers(uuid, known, changed):
            self._known.put(uuid, {**known, **row})
            return atom_detail
        if known is not None and not changed:
            return atom_detail
        changed.update(self._backend.progress.take(uuid))
        count, = self._backend.updates.run([(ATOMDETAILS, uuid, changed)])
        if not count:
            self._known.forget(uuid)
            raise tf_exc.NotFound(f"No atom details found with uuid '{uuid}'")
        self._known.put(uuid, row if known is None else {**known, **row})
        return atom_detail

    @_storage_errors("updating a flow detail")
    def update_flow_details(self, flow_detail):
        with self._backend.writer.begin() as db:
            if not self._update(db, FLOWDETAILS, flow_detail.uuid,
                                _flow_row(flow_detail)):
                raise tf_exc.NotFound(
                    f"No flow details found with uuid '{flow_detail.uuid}'")
            self._save_atoms(db, flow_detail)
            for uuid, meta in self._backend.progress.take_flow(
                    flow_detail.uuid).items():
                db.execute(ATOMDETAILS.update().where(
                    ATOMDETAILS.c.uuid == uuid).values(meta=meta))
        return flow_detail

    @_storage_errors("saving a logbook")
    def save_logbook(self, book):
        with self._backend.writer.begin() as db:
            self._upsert(db, LOGBOOKS, book.uuid, _book_row(book))
            for flow_detail in book:
                self._upsert(db, FLOWDETAILS, flow_detail.uuid,
                             _flow_row(flow_detail, parent=book.uuid))
                self._save_atoms(db, flow_detail)
        return book

    @_storage_errors("destroying a logbook")
    def destroy_logbook(self, book_uuid):
        # Flows and atoms are deleted here, not left to ON DELETE CASCADE:
        # TaskFlow's migrations create no foreign keys on SQLite.
        flows = sqlalchemy.select(FLOWDETAILS.c.uuid).where(
            FLOWDETAILS.c.parent_uuid == book_uuid)
        with self._backend.writer.begin() as db:
            db.execute(ATOMDETAILS.delete().where(
                ATOMDETAILS.c.parent_uuid.in_(flows)))
            db.execute(FLOWDETAILS.delete().where(
                FLOWDETAILS.c.parent_uuid == book_uuid))
            deleted = db.execute(LOGBOOKS.delete().where(
                LOGBOOKS.c.uuid == book_uuid)).rowcount
        if not deleted:
            raise tf_exc.NotFound(f"No logbook found with uuid '{book_uuid}'")
        # Which rows went is not worth a query: forget them all.
        self._known.clear()
        self._backend.progress.clear()

    def _update(self, db, table, uuid, row):
        """UPDATE the columns of ``row`` that differ from the known row;
        False when there is no such row. Nothing is sent when none
        differs."""
        known = self._known.get(uuid)
        changed = _changed(known, row)
        if table is ATOMDETAILS:
            changed.update(self._backend.progress.take(uuid))
        if changed:
            result = db.execute(
                table.update().where(table.c.uuid == uuid).values(
                    updated_at=timeutils.utcnow(), **changed))
            if not result.rowcount:
                self._known.forget(uuid)
                return False
        self._known.put(uuid, row if known is None else {**known, **row})
        return True

    def _upsert(self, db, table, uuid, row):
        if not self._update(db, table, uuid, row):
            db.execute(table.insert().values(
                uuid=uuid, created_at=timeutils.utcnow(), **row))
            self._known.put(uuid, row)

    def _save_atoms(self, db, flow_detail):
        """Atoms of ``flow_detail`` this process knows are updated when
        they changed; the others are inserted in one statement, after one
        query for those that already exist."""
        unknown = {}
        for atom_detail in flow_detail:
            row = _atom_row(atom_detail, parent=flow_detail.uuid)
            if self._known.get(atom_detail.uuid) is None:
                unknown[atom_detail.uuid] = row
            else:
                self._update(db, ATOMDETAILS, atom_detail.uuid, row)
        if not unknown:
            return
        existing = set(db.scalars(
            sqlalchemy.select(ATOMDETAILS.c.uuid).where(
                ATOMDETAILS.c.uuid.in_(list(unknown)))))
        for uuid in existing:
            self._update(db, ATOMDETAILS, uuid, unknown.pop(uuid))
        if unknown:
            # Rows are read back in created_at order: one microsecond
            # apart, the atoms keep the order TaskFlow gave them.
            now = timeutils.utcnow()
            db.execute(ATOMDETAILS.insert(), [
                {"uuid": uuid, "created_at": now + datetime.timedelta(
                    microseconds=number), **row}
                for number, (uuid, row) in enumerate(unknown.items())])
            for uuid, row in unknown.items():
                self._known.put(uuid, row)

    # Reads (each refreshes what this process knows of the rows).

    @_storage_errors("getting a logbook")
    def get_logbook(self, book_uuid, lazy=False):
        with self._backend.source_engine.connect() as db:
            book = self._book(db.execute(sqlalchemy.select(LOGBOOKS).where(
                LOGBOOKS.c.uuid == book_uuid)).first())
            if book is None:
                raise tf_exc.NotFound(
                    f"No logbook found with uuid '{book_uuid}'")
            if not lazy:
                self._add_flows(db, [book])
        return book

    @_storage_errors("getting logbooks")
    def get_logbooks(self, lazy=False):
        with self._backend.source_engine.connect() as db:
            books = [self._book(row)
                     for row in db.execute(sqlalchemy.select(LOGBOOKS))]
            if not lazy:
                self._add_flows(db, books)
        return iter(books)

    @_storage_errors("getting the flow details of a logbook")
    def get_flows_for_book(self, book_uuid, lazy=False):
        with self._backend.source_engine.connect() as db:
            flows = [self._flow(row) for row in db.execute(
                sqlalchemy.select(FLOWDETAILS).where(
                    FLOWDETAILS.c.parent_uuid == book_uuid).order_by(
                    FLOWDETAILS.c.created_at))]
            if not lazy:
                self._add_atoms(db, flows)
        return iter(flows)

    @_storage_errors("getting a flow detail")
    def get_flow_details(self, fd_uuid, lazy=False):
        with self._backend.source_engine.connect() as db:
            flow = self._flow(db.execute(sqlalchemy.select(FLOWDETAILS).where(
                FLOWDETAILS.c.uuid == fd_uuid)).first())
            if flow is None:
                raise tf_exc.NotFound(
                    f"No flow details found with uuid '{fd_uuid}'")
            if not lazy:
                self._add_atoms(db, [flow])
        return flow

    @_storage_errors("getting an atom detail")
    def get_atom_details(self, ad_uuid):
        with self._backend.source_engine.connect() as db:
            atom = self._atom(db.execute(sqlalchemy.select(ATOMDETAILS).where(
                ATOMDETAILS.c.uuid == ad_uuid)).first())
        if atom is None:
            raise tf_exc.NotFound(
                f"No atom details found with uuid '{ad_uuid}'")
        return atom

    @_storage_errors("getting the atom details of a flow detail")
    def get_atoms_for_flow(self, fd_uuid):
        with self._backend.source_engine.connect() as db:
            atoms = [self._atom(row) for row in db.execute(
                sqlalchemy.select(ATOMDETAILS).where(
                    ATOMDETAILS.c.parent_uuid == fd_uuid).order_by(
                    ATOMDETAILS.c.created_at))]
        return iter(atoms)

    def _add_flows(self, db, books):
        by_uuid = {book.uuid: book for book in books}
        if not by_uuid:
            return
        flows = []
        for row in db.execute(sqlalchemy.select(FLOWDETAILS).where(
                FLOWDETAILS.c.parent_uuid.in_(list(by_uuid))).order_by(
                    FLOWDETAILS.c.created_at)):
            flow = self._flow(row)
            by_uuid[row.parent_uuid].add(flow)
            flows.append(flow)
        self._add_atoms(db, flows)

    def _add_atoms(self, db, flows):
        by_uuid = {flow.uuid: flow for flow in flows}
        if not by_uuid:
            return
        for row in db.execute(sqlalchemy.select(ATOMDETAILS).where(
                ATOMDETAILS.c.parent_uuid.in_(list(by_uuid))).order_by(
                    ATOMDETAILS.c.created_at)):
            by_uuid[row.parent_uuid].add(self._atom(row))

    def _decoded(self, value):
        if value is None or self._backend.decoded_json:
            return value
        return jsonutils.loads(value)

    def _remember(self, row, columns):
        """The serialized columns of ``row``, as :func:`_atom_row` makes
        them, remembered as this process's knowledge of the row."""
        known = {column: getattr(row, column) for column in columns}
        if self._backend.decoded_json:
            for column in JSON_COLUMNS.intersection(columns):
                known[column] = _json(known[column])
        self._known.put(row.uuid, known)

    def _book(self, row):
        if row is None:
            return None
        self._remember(row, BOOK_COLUMNS)
        return tf_models.LogBook.from_dict({
            "name": row.name, "uuid": row.uuid,
            "meta": self._decoded(row.meta), "created_at": row.created_at,
            "updated_at": row.updated_at})

    def _flow(self, row):
        if row is None:
            return None
        self._remember(row, ("parent_uuid",) + FLOW_COLUMNS)
        return tf_models.FlowDetail.from_dict({
            "name": row.name, "uuid": row.uuid, "state": row.state,
            "meta": self._decoded(row.meta)})

    def _atom(self, row):
        if row is None:
            return None
        self._remember(row, ("parent_uuid",) + ATOM_COLUMNS)
        data = {column: self._decoded(getattr(row, column))
                if column in JSON_COLUMNS else getattr(row, column)
                for column in ATOM_COLUMNS}
        data["uuid"] = row.uuid
        detail = tf_models.atom_detail_class(data.pop("atom_type")) \
            .from_dict(data)
        if isinstance(detail, tf_models.RetryDetail):
            detail.results = [
                (value, {name: ft.Failure.from_dict(failure)
                         for name, failure in failures.items()})
                for value, failures in data["results"] or ()]
        return detail


def saved_at(engine, atom_uuid):
    """When atom ``atom_uuid`` was last saved (naive UTC), None if never
    updated."""
    with engine.connect() as db:
        return db.scalar(sqlalchemy.select(ATOMDETAILS.c.updated_at).where(
            ATOMDETAILS.c.uuid == atom_uuid))


def _changed(known, row):
    """The columns of ``row`` to write: all of them for a row this process
    does not know, else those that differ from what it knows."""
    if known is None:
        return dict(row)
    return {column: value for column, value in row.items()
            if known.get(column) != value}


def _json(value):
    return None if value is None else jsonutils.dumps(value)


def _atom_row(atom_detail, parent=None):
    data = atom_detail.to_dict()
    row = {column: _json(data[column]) if column in JSON_COLUMNS
           else data.get(column) for column in ATOM_COLUMNS
           if column != "atom_type"}
    row["atom_type"] = tf_models.atom_detail_type(atom_detail)
    if parent is not None:
        row["parent_uuid"] = parent
    return row


def _flow_row(flow_detail, parent=None):
    row = {"name": flow_detail.name, "state": flow_detail.state,
           "meta": _json(flow_detail.meta)}
    if parent is not None:
        row["parent_uuid"] = parent
    return row


def _book_row(book):
    return {"name": book.name, "meta": _json(book.meta)}
