"""Posting and ``vmflow audit`` judge an instance lock by one rule
(:func:`vmflow.engine.locks.lock_is_live`): in every situation below both
agree, and the rule gives the expected answer."""
import datetime

import pytest

from tests.functional.engine import helpers, sample_flows
from vmflow import audit
from vmflow.engine import actions, jobboard, locks, posting
from vmflow.persistence import api, models

OLD = 3600  # seconds: far beyond the claim expiry (5 s here)


def lock_only(db, instance, age, action_finished=False, **_):
    action_id = helpers.insert_lock(db, instance, "job-x", age,
                                    start_action=True)
    if action_finished:
        actions.finish_instance_action(db, action_id, actions.SUCCESS, None)


def posted_job(db, instance, age, conf, trace_file, end_job=False, **_):
    job_uuid = posting.post_operation(
        sample_flows.SAMPLE_ACTION, instance, sample_flows.QUICK,
        {sample_flows.TRACE_FILE: trace_file}, conf=conf)
    with helpers.writer(db) as session:
        lock = session.get(models.InstanceLock, instance)
        lock.created_at -= datetime.timedelta(seconds=age)
    if end_job:  # the job ended but its lock was left behind
        with jobboard.opened(conf) as board:
            job = board.find_job(job_uuid)
            board.claim(job, "unit")
            board.consume(job, "unit")
        action, = helpers.rows(db, models.InstanceAction,
                               instance_uuid=instance)
        actions.finish_instance_action(db, action.id, actions.SUCCESS, None)


CASES = [
    # (situation, make, options, live)
    ("young lock, posting under way", lock_only, {"age": 0}, True),
    ("old lock, never posted", lock_only, {"age": OLD}, False),
    ("young lock, action finished", lock_only,
     {"age": 0, "action_finished": True}, False),
    ("young lock, job waiting", posted_job, {"age": 0}, True),
    ("old lock, job waiting for a runner", posted_job, {"age": OLD}, True),
    ("young lock, job complete", posted_job, {"age": 0, "end_job": True},
     False),
    ("old lock, job complete", posted_job, {"age": OLD, "end_job": True},
     False),
]


@pytest.mark.parametrize("situation, make, options, live", CASES,
                         ids=[case[0] for case in CASES])
def test_posting_and_audit_agree(conf, db, trace_file, situation, make,
                                 options, live):
    instance = helpers.add_instance(db)
    make(db, instance, conf=conf, trace_file=trace_file, **options)
    holder = locks.get_lock(db, instance)
    with jobboard.opened(conf) as board:
        stale_for_posting = posting.lock_is_stale(board, db, holder)
    with api.session_scope(db) as session:
        busy_for_audit = instance in audit.load_snapshot(session).busy
    assert (not stale_for_posting, busy_for_audit) == (live, live)
