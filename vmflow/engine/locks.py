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

from vmflow import exception
from vmflow.persistence import api, models

LOCKS = models.InstanceLock.__table__
ACTIONS = models.InstanceAction.__table__
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
        jobs = list(board.iterjobs())
        return cls(frozenset(job.uuid for job in jobs),
                   frozenset((job_info(job) or {}).get("instance_uuid")
                             for job in jobs) - {None})


def lock_is_live(lock, board_jobs, action_finished, now, grace):
    """The rule: a lock is live while a job on the board works on its
    instance (its own job, or one posted for the instance), and, with no
    such job, while its instance action is unfinished and the lock is no
    older than ``grace`` (a posting under way: lock first, job last). A
    lock whose action finished (its job ended) or that outlived the grace
    without a job is stale.

    ``lock``: an instance_locks row; ``board_jobs``: :class:`BoardJobs`.
    """
    if (lock.job_uuid in board_jobs.job_uuids
            or lock.instance_uuid in board_jobs.instance_uuids):
        return True
    return not action_finished and now - lock.created_at <= grace


def live_locks(session, board_jobs, grace_seconds, instance_uuid=None):
    """``{instance uuid: lock row}`` of the live locks (of
    ``instance_uuid`` only, if given), judged by :func:`lock_is_live`."""
    query = (sqlalchemy.select(LOCKS, ACTIONS.c.finish_time)
             .outerjoin(ACTIONS, sqlalchemy.and_(
                 ACTIONS.c.instance_uuid == LOCKS.c.instance_uuid,
                 ACTIONS.c.request_id == LOCKS.c.request_id)))
    if instance_uuid is not None:
        query = query.where(LOCKS.c.instance_uuid == instance_uuid)
    now = models.utcnow()
    grace = datetime.timedelta(seconds=grace_seconds)
    return {row.instance_uuid: row for row in session.execute(query)
            if lock_is_live(row, board_jobs, row.finish_time is not None,
                            now, grace)}


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
