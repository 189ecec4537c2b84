"""One operation per instance: the ``instance_locks`` row.

The row names the action and the job running it. It is inserted when the
operation is posted (its primary key, the instance uuid, makes a second
insert fail) and deleted by the runner when the job ends. A lock whose job
is no longer on the board -- the job ended, or the process posting it died
before posting -- is stale and is taken over (see :func:`take_lock`).

:func:`lock_is_live` is the one rule that tells a live lock from a stale
one; posting (may a new operation take the instance?) and ``vmflow audit``
(is the instance in progress, or must it hold what it holds?) both judge
locks with :func:`live_locks`, which applies it.
"""
import dataclasses
import datetime

import sqlalchemy
from sqlalchemy import exc as sa_exc
from taskflow import states

from vmflow import exception
from vmflow.engine import jobboard_sql
from vmflow.persistence import api, models

LOCKS = models.InstanceLock.__table__
ACTIONS = models.InstanceAction.__table__
JOBS = models.Job.__table__
# What the SQL board's rows of consumed and trashed jobs say.
ENDED_JOB_STATES = (states.COMPLETE, jobboard_sql.TRASH)
# TaskFlow's logbook table (created by TaskFlow's own migrations); a job's
# logbook has the job's uuid.
LOGBOOKS = sqlalchemy.table("logbooks", sqlalchemy.column("uuid"),
                           sqlalchemy.column("meta"))
MAX_TAKEOVER_ATTEMPTS = 3


class _LockHeld(Exception):
    """The lock row exists (internal: raised to roll the transaction back)."""


@dataclasses.dataclass(frozen=True)
class BoardJobs:
    """What the job board holds now: the uuids of its jobs (unclaimed or
    claimed) and of the instances they work on."""
    job_uuids: frozenset
    instance_uuids: frozenset

    @classmethod
    def read(cls, board, job_info):
        """One listing of ``board``; ``job_info(job)`` gives a job's vmflow
        details (or None)."""
        return cls.of(list(board.iterjobs()), job_info)

    @classmethod
    def of(cls, jobs, job_info):
        """What the listing ``jobs`` of a board holds."""
        return cls(frozenset(job.uuid for job in jobs),
                   frozenset((job_info(job) or {}).get("instance_uuid")
                             for job in jobs) - {None})

    def work_on(self, lock):
        """True when a job on the board works on ``lock``'s instance (its
        own job, or one posted for the instance)."""
        return (lock.job_uuid in self.job_uuids
                or lock.instance_uuid in self.instance_uuids)


def lock_is_live(lock, board_jobs, job_ended, has_logbook, now, grace):
    """The rule: a lock is live while a job on the board works on its
    instance (its own job, or one posted for the instance). With no such
    job, it is live while its job has not ended and either its logbook
    exists (the board lost the job: :mod:`.recovery` posts it again) or
    the lock is no older than ``grace`` (a posting under way: lock first,
    logbook, job last). A lock whose job ended (its action finished, or
    the board's history says so), or that outlived the grace without a
    logbook (the posting died), is stale.

    ``lock``: a :func:`lock_rows` row; ``board_jobs``: :class:`BoardJobs`.
    """
    if board_jobs.work_on(lock):
        return True
    if job_ended:
        return False
    return has_logbook or now - lock.created_at <= grace


def live_locks(session, board_jobs, grace_seconds, instance_uuid=None):
    """``{instance uuid: lock row}`` of the live locks (of
    ``instance_uuid`` only, if given), judged by :func:`lock_is_live`."""
    now = models.utcnow()
    grace = datetime.timedelta(seconds=grace_seconds)
    return {row.instance_uuid: row
            for row in lock_rows(session, instance_uuid)
            if lock_is_live(row, board_jobs, job_ended(row),
                            row.logbook_uuid is not None, now, grace)}


def job_ended(row):
    """Whether the job of a :func:`lock_rows` row ended: its action
    finished, or the SQL board keeps it as consumed or trashed (the Redis
    board keeps no history: there the action tells)."""
    return (row.finish_time is not None
            or row.job_state in ENDED_JOB_STATES)


def lock_rows(session, instance_uuid=None):
    """Every lock (of ``instance_uuid`` only, if given) with its action's
    ``finish_time``, its job's ``logbook_uuid`` (None: no logbook) and
    ``logbook_meta`` (JSON text), and ``job_state`` in the SQL board's
    table (None: no row there)."""
    query = (sqlalchemy.select(LOCKS, ACTIONS.c.finish_time,
                               LOGBOOKS.c.uuid.label("logbook_uuid"),
                               LOGBOOKS.c.meta.label("logbook_meta"),
                               JOBS.c.state.label("job_state"))
             .outerjoin(ACTIONS, sqlalchemy.and_(
                 ACTIONS.c.instance_uuid == LOCKS.c.instance_uuid,
                 ACTIONS.c.request_id == LOCKS.c.request_id))
             .outerjoin(LOGBOOKS, LOGBOOKS.c.uuid == LOCKS.c.job_uuid)
             .outerjoin(JOBS, JOBS.c.uuid == LOCKS.c.job_uuid))
    if instance_uuid is not None:
        query = query.where(LOCKS.c.instance_uuid == instance_uuid)
    return session.execute(query).all()


def get_lock(engine, instance_uuid):
    with api.session_scope(engine) as session:
        return session.execute(sqlalchemy.select(LOCKS).where(
            LOCKS.c.instance_uuid == instance_uuid)).first()


def busy_error(lock):
    return exception.InstanceBusy(
        instance=lock.instance_uuid, action=lock.action, job=lock.job_uuid,
        request_id=lock.request_id)


def take_lock(engine, instance_uuid, action, job_uuid, request_id,
              is_stale, on_taken, on_stale=None):
    """Insert the instance's lock and run ``on_taken(session)`` in the same
    transaction; return what ``on_taken`` returns.

    When another lock holds the instance, ``is_stale(lock_row)`` decides:
    False raises :class:`~vmflow.exception.InstanceBusy` naming the running
    action and job; True deletes that lock (compare-and-swap on its job,
    then ``on_stale(lock_row)``) and tries again.
    """
    for _attempt in range(MAX_TAKEOVER_ATTEMPTS):
        try:
            return _insert_lock(engine, instance_uuid, action, job_uuid,
                                request_id, on_taken)
        except _LockHeld:
            holder = get_lock(engine, instance_uuid)
        if holder is None:
            continue  # released meanwhile
        if not is_stale(holder):
            raise busy_error(holder)
        if delete_lock(engine, instance_uuid, holder.job_uuid) and on_stale:
            on_stale(holder)
    holder = get_lock(engine, instance_uuid)
    if holder is None:
        raise exception.VmflowError(
            f"could not lock instance {instance_uuid} after "
            f"{MAX_TAKEOVER_ATTEMPTS} attempts")
    raise busy_error(holder)


def _insert_lock(engine, instance_uuid, action, job_uuid, request_id,
                 on_taken):
    try:
        with api.writer_scope(engine) as session:
            session.execute(LOCKS.insert().values(
                instance_uuid=instance_uuid, action=action,
                job_uuid=job_uuid, request_id=request_id,
                created_at=models.utcnow()))
            return on_taken(session)
    except sa_exc.IntegrityError as error:
        if get_lock(engine, instance_uuid) is None:
            raise  # not our primary key: another constraint failed
        raise _LockHeld() from error


def delete_lock(engine, instance_uuid, job_uuid):
    """Delete the lock if ``job_uuid`` still holds it; True if it did."""
    with api.writer_scope(engine) as session:
        return delete_lock_in(session, instance_uuid, job_uuid)


def delete_lock_in(session, instance_uuid, job_uuid):
    """:func:`delete_lock` in ``session``'s transaction."""
    result = session.execute(LOCKS.delete().where(
        LOCKS.c.instance_uuid == instance_uuid,
        LOCKS.c.job_uuid == job_uuid))
    return result.rowcount == 1


def release_instance_lock(instance_uuid, job_uuid, engine=None):
    """Release the instance's lock held by ``job_uuid`` (the job ended).

    Returns False when that job did not hold it (already released, or taken
    over as stale): never deletes another operation's lock.
    """
    return delete_lock(engine or api.get_engine(), instance_uuid, job_uuid)
