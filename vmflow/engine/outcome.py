"""What a job's end means for its operation: the instance action's result
and message, and the release of the instance lock.

The runner calls :func:`record_job_end` *before* it consumes (or trashes)
the job: if it dies in between, the job is run again, finds its flow
already finished and records the same end again (its writes, in one
transaction, are idempotent), whereas the other order could leave a
consumed job whose lock is never released.
"""
from taskflow import logging as tf_logging
from taskflow import states

from vmflow import exception, instances
from vmflow.engine import actions, locks
from vmflow.engine import persistence as engine_persistence
from vmflow.persistence import api

LOG = tf_logging.getLogger(__name__)
META_KEY = "vmflow"


def job_info(job):
    """The ``vmflow`` details of a job; None for a job vmflow did not post."""
    return (job.details or {}).get(META_KEY)


def describe_flow(flow_detail):
    """(result, message) of a flow detail, for its instance action."""
    state = flow_detail.state
    if state == states.SUCCESS:
        return actions.SUCCESS, None
    failures = [f"{detail.name}: {detail.failure.exception_str}"
                for detail in flow_detail if detail.failure is not None]
    revert_failures = [
        f"{detail.name} (revert): {detail.revert_failure.exception_str}"
        for detail in flow_detail
        if getattr(detail, "revert_failure", None) is not None]
    if state == states.REVERTED:
        return actions.ERROR, "reverted after " + (
            "; ".join(failures) or "a failure")
    if state == states.FAILURE:
        return actions.ERROR, "revert failed: " + "; ".join(
            revert_failures + failures)
    return actions.ERROR, f"the flow stopped in state {state}"


def record_job_end(job, persistence, db_engine, dispatch_error=None):
    """Finish the job's instance action and release its instance lock.

    When the flow ended without its sentinel's revert (a revert failed, or
    the job could not run at all) the instance is put in ERROR with a
    fault, so it never keeps a task_state; what a failed revert leaked
    stays for ``vmflow audit`` to report and a delete to remove.

    ``dispatch_error``: why the job could not run at all (it is trashed).
    Jobs without vmflow details are left alone.
    """
    info = job_info(job)
    if info is None:
        LOG.info("Job %s has no vmflow details: no action to finish", job)
        return None
    if dispatch_error is not None:
        result, message = actions.ERROR, (
            f"the job could not run: {dispatch_error}")
        stranded = True
    else:
        flow_detail = engine_persistence.get_flow_detail(
            persistence, job.details["flow_uuid"])
        result, message = describe_flow(flow_detail)
        stranded = flow_detail.state == states.FAILURE
    with api.writer_scope(db_engine) as session:
        if stranded:
            # No sentinel revert ran (a revert failed, or nothing ran at
            # all): the instance must not keep a task_state after its job
            # ended.
            _mark_instance_error_in(session, info["instance_uuid"], message)
        actions.finish_instance_action_in(session, info["action_id"],
                                          result, message)
        released = locks.delete_lock_in(session, info["instance_uuid"],
                                        job.uuid)
    if not released:
        LOG.warning("Job %s no longer held the lock of instance %s (it was "
                    "released before or taken over as stale)", job.uuid,
                    info["instance_uuid"])
    return result


def mark_instance_error(db_engine, instance_uuid, message):
    with api.writer_scope(db_engine) as session:
        _mark_instance_error_in(session, instance_uuid, message)


def _mark_instance_error_in(session, instance_uuid, message):
    try:
        instances.mark_error(session, instance_uuid, instances.ANY, message)
    except exception.NotFound:
        LOG.warning("Instance %s of an ended job no longer exists",
                    instance_uuid)
