"""The embedded job board: TaskFlow's ``JobBoard`` on the ``jobs`` table.

It needs no server besides the project database (SQLite, PostgreSQL or
MariaDB). Every change of a job is one compare-and-swap ``UPDATE ... WHERE``
on the state, owner and claim expiry that the change expects, judged by its
row count, so two runners on one database never both claim a job: the
database serialises the two UPDATEs and the second no longer matches.

A claim carries an expiry (``[jobboard] claim_expiry_seconds``), renewed by
:meth:`SQLJobBoard.extend_claim` while the job runs. A claim whose expiry has
passed counts as unclaimed: any runner may take the job over. Times are the
posting/claiming process's UTC clock; runners on several machines need
synchronised clocks (an offset delays or hastens takeovers by as much).
A runner need not wait for the claims of a runner it knows is dead:
:meth:`SQLJobBoard.expire_dead_claims` ends at once the claims whose owner
a predicate it is given declares dead (the runner's: a process of this
machine that no longer exists, see :func:`vmflow.engine.runner.
owner_is_dead`). The Redis board has no such shortcut: there a dead
runner's jobs wait for its claims to expire.

Consumed and trashed jobs stay in the table (states ``COMPLETE`` and
``TRASH``) as history for ``vmflow job show``; they are no longer on the
board. Runners register themselves as rows of a sibling board
(``<namespace>!entities``, state ``REGISTERED``) whose claim expiry is their
last heartbeat plus the claim expiry: :meth:`alive_entities` tells whether
any runner serves the board.
"""
import contextlib
import datetime
import json
import threading
import time
import uuid as uuidlib

import sqlalchemy
from sqlalchemy import exc as sa_exc
from taskflow import exceptions as tf_exc
from taskflow import logging as tf_logging
from taskflow import states
from taskflow.jobs import base

from vmflow.engine import jobboard_sql_entities
from vmflow.persistence import api, models

LOG = tf_logging.getLogger(__name__)

TRASH = "TRASH"
ACTIVE_STATES = (states.UNCLAIMED, states.CLAIMED)
ENTITY_BOARD_SUFFIX = "!entities"
DEFAULT_CLAIM_EXPIRY = 30
# JobPriority is a name; the column is an integer that sorts like it.
PRIORITY_RANK = {base.JobPriority.VERY_HIGH: 2, base.JobPriority.HIGH: 1,
                 base.JobPriority.NORMAL: 0, base.JobPriority.LOW: -1,
                 base.JobPriority.VERY_LOW: -2}
PRIORITY_BY_RANK = {rank: priority
                    for priority, rank in PRIORITY_RANK.items()}

JOBS = models.Job.__table__


def _now():
    return models.utcnow()


def _in(seconds):
    return _now() + datetime.timedelta(seconds=seconds)


class SQLJob(base.Job):
    """A job row. ``state``, ``last_modified`` and ``owner`` read the row
    again each time; the rest is what was posted."""

    def __init__(self, board, row, backend=None):
        details = json.loads(row.details) if row.details else {}
        book_data = ({"uuid": row.book_uuid, "name": row.book_name}
                     if row.book_uuid else None)
        super().__init__(board, row.name, uuid=row.uuid, details=details,
                         backend=backend, book_data=book_data)
        self._created_on = row.created_at
        self._priority = PRIORITY_BY_RANK.get(row.priority,
                                              base.JobPriority.NORMAL)
        self.claimed_by = None

    @property
    def created_on(self):
        return self._created_on

    @property
    def priority(self):
        return self._priority

    @property
    def last_modified(self):
        row = self.board.fetch_row(self.uuid)
        return row.updated_at if row is not None else None

    @property
    def state(self):
        return self.board.job_state(self.uuid)

    def extend_expiry(self, expiry):
        """Renew the claim this object's board made (as RedisJob does).

        Returns False when the claim is no longer held by that claimant.
        """
        if self.claimed_by is None:
            return False
        return self.board.extend_claim(self, self.claimed_by, expiry)

    def __str__(self):
        # TaskFlow's version prints the details (the whole store) in logs.
        return f"SQLJob {self.name} (uuid={self.uuid})"

    def __eq__(self, other):
        return isinstance(other, SQLJob) and other.uuid == self.uuid

    def __hash__(self):
        return hash(self.uuid)


def job_state_of(row, now=None):
    """The TaskFlow state of a job row (None: no row)."""
    if row is None or row.state in (states.COMPLETE, TRASH):
        return states.COMPLETE
    if row.state == states.CLAIMED and not _claim_is_live(row, now):
        return states.UNCLAIMED
    return row.state


def _claim_is_live(row, now=None):
    return (row.claim_expires_at is None
            or row.claim_expires_at > (now or _now()))


class SQLJobBoard(base.JobBoard):
    """A TaskFlow job board kept in the ``jobs`` table.

    ``conf``: ``namespace`` (the board's name in the table, default
    ``name``), ``claim_expiry_seconds`` (default 30). ``engine``: the
    SQLAlchemy engine (default: the configured database). ``persistence``:
    the TaskFlow backend jobs load their logbooks from.
    """

    def __init__(self, name, conf=None, engine=None, persistence=None):
        super().__init__(name, dict(conf or {}))
        self._namespace = self._conf.get("namespace") or name
        self._claim_expiry = float(self._conf.get("claim_expiry_seconds",
                                                  DEFAULT_CLAIM_EXPIRY))
        self._engine = engine
        self._persistence = persistence
        self._connected = False
        self._entities = None
        self._lock = threading.Lock()

    # -- connection --------------------------------------------------------

    @property
    def connected(self):
        return self._connected

    @property
    def namespace(self):
        return self._namespace

    @property
    def claim_expiry(self):
        return self._claim_expiry

    def connect(self):
        with self._lock:
            if self._engine is None:
                self._engine = api.get_engine()
            self._entities = jobboard_sql_entities.SQLEntityRegistry(
                self._engine, self._namespace + ENTITY_BOARD_SUFFIX,
                self._claim_expiry)
            with self._transaction(self._engine) as connection:
                connection.execute(sqlalchemy.select(JOBS.c.id).limit(1))
            self._connected = True

    def close(self):
        # The engine is shared with the rest of the process: not disposed.
        with self._lock:
            self._connected = False

    def _reader(self):
        self._ensure_connected()
        return self._transaction(self._engine)

    def _writer(self):
        """A transaction that takes SQLite's write lock up front."""
        self._ensure_connected()
        return self._transaction(api.writer_engine(self._engine))

    @contextlib.contextmanager
    def _transaction(self, engine):
        """A transaction whose database errors become ``JobFailure`` (what
        TaskFlow's conductor logs and backs off from, as for Redis)."""
        with self._translated_errors():
            with engine.begin() as connection:
                yield connection

    @contextlib.contextmanager
    def _translated_errors(self):
        try:
            yield
        except sa_exc.DBAPIError as error:
            raise tf_exc.JobFailure(
                f"job board {self.name!r}: database error: "
                f"{str(error).splitlines()[0]}") from error

    def _ensure_connected(self):
        if not self._connected:
            raise tf_exc.JobFailure(
                f"job board {self.name!r} is not connected")

    # -- reading -----------------------------------------------------------

    def _where_on_board(self):
        return JOBS.c.board == self._namespace

    def fetch_row(self, job_uuid):
        with self._reader() as connection:
            return connection.execute(sqlalchemy.select(JOBS).where(
                self._where_on_board(), JOBS.c.uuid == job_uuid)).first()

    def job_state(self, job_uuid):
        return job_state_of(self.fetch_row(job_uuid))

    def find_job(self, job_uuid):
        """The job ``job_uuid`` if it is still on the board, else None."""
        row = self.fetch_row(job_uuid)
        if row is None or row.state not in ACTIVE_STATES:
            return None
        return SQLJob(self, row, backend=self._persistence)

    def _active_rows(self, only_unclaimed=False):
        query = sqlalchemy.select(JOBS).where(
            self._where_on_board(), JOBS.c.state.in_(ACTIVE_STATES))
        if only_unclaimed:
            query = query.where(sqlalchemy.or_(
                JOBS.c.state == states.UNCLAIMED,
                JOBS.c.claim_expires_at <= _now()))
        query = query.order_by(JOBS.c.priority.desc(), JOBS.c.id)
        with self._reader() as connection:
            return connection.execute(query).all()

    def _fetch_jobs(self, only_unclaimed=False):
        return [SQLJob(self, row, backend=self._persistence)
                for row in self._active_rows(only_unclaimed)]

    def iterjobs(self, only_unclaimed=False, ensure_fresh=False):
        # Every fetch reads the table: the board is always fresh.
        return base.JobBoardIterator(
            self, LOG, only_unclaimed=only_unclaimed,
            ensure_fresh=ensure_fresh,
            board_fetch_func=lambda ensure_fresh: self._fetch_jobs(
                only_unclaimed))

    def wait(self, timeout=None, initial_delay=0.005, max_delay=1.0,
             sleep_func=time.sleep):
        """Return an iterator over the jobs once there are any; raise
        NotFound after ``timeout`` seconds (TaskFlow's Redis semantics)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = initial_delay
        while True:
            jobs = self._fetch_jobs()
            if jobs:
                return base.JobBoardIterator(
                    self, LOG, board_fetch_func=lambda ensure_fresh: jobs)
            if deadline is not None and time.monotonic() >= deadline:
                raise tf_exc.NotFound(
                    f"no job was posted on {self.name!r} within {timeout}s")
            delay = min(delay * 2, max_delay)
            if deadline is not None:
                delay = min(delay, max(deadline - time.monotonic(), 0))
            sleep_func(delay)

    @property
    def job_count(self):
        with self._reader() as connection:
            return connection.scalar(
                sqlalchemy.select(sqlalchemy.func.count()).select_from(JOBS)
                .where(self._where_on_board(),
                       JOBS.c.state.in_(ACTIVE_STATES)))

    def find_owner(self, job):
        row = self.fetch_row(job.uuid)
        if row is None:
            raise tf_exc.NotFound(f"job {job.uuid} is not on {self.name!r}")
        if row.state == states.CLAIMED and _claim_is_live(row):
            return row.owner
        return None

    def claim_expires_at(self, job):
        """When the current claim on ``job`` expires (naive UTC); None when
        it is unclaimed (or its claim never expires)."""
        row = self.fetch_row(job.uuid)
        if row is None or job_state_of(row) != states.CLAIMED:
            return None
        return row.claim_expires_at

    # -- writing -----------------------------------------------------------

    def post(self, name, book=None, details=None,
             priority=base.JobPriority.NORMAL, uuid=None):
        """Post a job; ``uuid`` (an extension) fixes the job's uuid."""
        return self._post(name, book, details, priority,
                          uuid or str(uuidlib.uuid4()))

    def post_claimed(self, job, who, expiry=None):
        """Post ``job`` (lost by the board) again, already claimed by
        ``who`` (one INSERT: no other claim can come between)."""
        expiry = self._claim_expiry if expiry is None else float(expiry)
        posted = self._post(job.name, job.book, job.details, job.priority,
                            job.uuid, owner=who, claim_expires_at=_in(expiry))
        job.claimed_by = who
        return posted

    def _post(self, name, book, details, priority, job_uuid, owner=None,
              claim_expires_at=None):
        priority = base.JobPriority.convert(priority)
        now = _now()
        row = dict(uuid=job_uuid, board=self._namespace,
                   name=name, details=json.dumps(details or {}),
                   book_uuid=book.uuid if book is not None else None,
                   book_name=book.name if book is not None else None,
                   priority=PRIORITY_RANK[priority],
                   state=states.CLAIMED if owner else states.UNCLAIMED,
                   owner=owner, claim_expires_at=claim_expires_at,
                   created_at=now, updated_at=now)
        with self._writer() as connection:
            connection.execute(JOBS.insert().values(**row))
        job = SQLJob(self, _RowView(row), backend=self._persistence)
        job._book = book
        return job

    @base.check_who
    def claim(self, job, who, expiry=None):
        """Claim ``job`` for ``expiry`` seconds (default: the board's
        ``claim_expiry_seconds``); a job whose claim expired is taken over.
        """
        expiry = self._claim_expiry if expiry is None else float(expiry)
        if expiry <= 0:
            raise ValueError(f"claim expiry must be positive, not {expiry}")
        now = _now()
        claimable = sqlalchemy.or_(
            JOBS.c.state == states.UNCLAIMED,
            sqlalchemy.and_(JOBS.c.state == states.CLAIMED,
                            JOBS.c.claim_expires_at <= now))
        if self._swap(job.uuid, claimable, state=states.CLAIMED, owner=who,
                      claim_expires_at=now + datetime.timedelta(
                          seconds=expiry)):
            job.claimed_by = who
            return
        row = self.fetch_row(job.uuid)
        if row is None or row.state not in ACTIVE_STATES:
            raise tf_exc.NotFound(f"job {job.uuid} is not on the board "
                                  "to be claimed")
        raise tf_exc.UnclaimableJob(
            f"job {job.uuid} is already claimed by {row.owner}")

    @base.check_who
    def extend_claim(self, job, who, expiry=None):
        """Renew ``who``'s claim on ``job``; False if ``who`` lost it."""
        expiry = self._claim_expiry if expiry is None else float(expiry)
        return self._swap(job.uuid, self._held_by(who),
                          claim_expires_at=_in(expiry))

    @base.check_who
    def consume(self, job, who):
        self._finish(job, who, "consume", state=states.COMPLETE,
                     claim_expires_at=None)

    @base.check_who
    def abandon(self, job, who):
        self._finish(job, who, "abandon", state=states.UNCLAIMED,
                     owner=None, claim_expires_at=None)

    @base.check_who
    def trash(self, job, who):
        self._finish(job, who, "trash", state=TRASH, claim_expires_at=None)

    def expire_dead_claims(self, is_dead):
        """End now the live claims whose owner ``is_dead(owner)`` says is
        dead, so that any runner may take their jobs over at once instead
        of after the claim expiry. Returns the uuids of those jobs.

        Each claim is ended by a compare-and-swap on its owner: a claim
        taken over meanwhile is left alone.
        """
        now = _now()
        with self._reader() as connection:
            claimed = connection.execute(
                sqlalchemy.select(JOBS.c.uuid, JOBS.c.owner).where(
                    self._where_on_board(), JOBS.c.state == states.CLAIMED,
                    JOBS.c.claim_expires_at > now)).all()
        return [job_uuid for job_uuid, owner in claimed
                if is_dead(owner) and self._swap(
                    job_uuid, sqlalchemy.and_(self._held_by(owner),
                                              JOBS.c.claim_expires_at > now),
                    claim_expires_at=now)]

    def _held_by(self, who):
        # An expired claim still belongs to its owner until someone else
        # takes the job over: it may finish (consume) what it started.
        return sqlalchemy.and_(JOBS.c.state == states.CLAIMED,
                               JOBS.c.owner == who)

    def _finish(self, job, who, verb, **values):
        if self._swap(job.uuid, self._held_by(who), **values):
            job.claimed_by = None
            return
        row = self.fetch_row(job.uuid)
        if row is None or row.state not in ACTIVE_STATES:
            raise tf_exc.NotFound(f"job {job.uuid} is not on the board "
                                  f"to {verb}")
        if row.state == states.UNCLAIMED:
            raise tf_exc.NotFound(f"cannot {verb} job {job.uuid}: it is "
                                  "not claimed")
        raise tf_exc.JobFailure(f"cannot {verb} job {job.uuid}: it is "
                                f"claimed by {row.owner}, not {who}")

    def _swap(self, job_uuid, expected, **values):
        """One compare-and-swap UPDATE of a job's row; True if it hit."""
        values["updated_at"] = _now()
        self._ensure_connected()
        with self._translated_errors():
            return self._update_row(api.writer_engine(self._engine),
                                    job_uuid, expected, values)

    @api.retry_on_deadlock
    def _update_row(self, engine, job_uuid, expected, values):
        with engine.begin() as connection:
            result = connection.execute(
                JOBS.update()
                .where(self._where_on_board(), JOBS.c.uuid == job_uuid,
                       expected)
                .values(**values))
            return result.rowcount == 1

    # -- runners -----------------------------------------------------------

    def register_entity(self, entity):
        """Record (or refresh) ``entity`` as alive for one claim expiry;
        runners call it again as their heartbeat."""
        self._ensure_connected()
        self._entities.register(entity)

    def unregister_entity(self, entity):
        self._ensure_connected()
        self._entities.unregister(entity)

    def alive_entities(self):
        """Names of the entities whose last heartbeat has not expired."""
        self._ensure_connected()
        return self._entities.alive()


class _RowView:
    """Attribute access over a dict of column values (a just-posted row)."""

    def __init__(self, values):
        self.__dict__.update(values)
