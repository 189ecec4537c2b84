"""One operation per instance: the ``instance_locks`` row.

The row names the action and the job running it. It is inserted when the
operation is posted (its primary key, the instance uuid, makes a second
insert fail) and deleted by the runner when the job ends. A lock whose job
is no longer on the board -- the job ended, or the process posting it died
before posting -- is stale and is taken over (see :func:`take_lock`).
"""
import sqlalchemy
from sqlalchemy import exc as sa_exc

from vmflow import exception
from vmflow.persistence import api, models

LOCKS = models.InstanceLock.__table__
MAX_TAKEOVER_ATTEMPTS = 3


class _LockHeld(Exception):
    """The lock row exists (internal: raised to roll the transaction back)."""


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
