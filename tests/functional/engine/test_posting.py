"""Posting operations: instance locks, instance actions, logbooks, jobs."""
import datetime

import pytest
from sqlalchemy import exc as sa_exc
from taskflow import engines
from taskflow import exceptions as tf_exc

from tests.functional.engine import helpers, sample_flows
from vmflow import exception, flows
from vmflow.engine import actions, locks, operations, outcome, posting
from vmflow.persistence import models


def post(conf, instance_uuid, trace_file, factory=sample_flows.QUICK,
         **kwargs):
    return posting.post_operation(
        sample_flows.SAMPLE_ACTION, instance_uuid, factory,
        {sample_flows.TRACE_FILE: trace_file}, conf=conf, **kwargs)


def test_post_writes_lock_action_logbook_and_job(conf, db, board,
                                                 trace_file):
    instance = helpers.add_instance(db)
    job_uuid = post(conf, instance, trace_file, request_id="req-1")

    lock, = helpers.rows(db, models.InstanceLock, instance_uuid=instance)
    assert (lock.instance_uuid, lock.action, lock.job_uuid,
            lock.request_id) == (instance, "sample", job_uuid, "req-1")
    action, = helpers.rows(db, models.InstanceAction, instance_uuid=instance)
    assert (action.instance_uuid, action.action, action.request_id,
            action.project, action.finish_time) == (
        instance, "sample", "req-1", "engine-tests", None)

    job = board.find_job(job_uuid)
    assert job.details["store"] == {"trace_file": trace_file,
                                    "instance_uuid": instance,
                                    "request_id": "req-1"}
    info = outcome.job_info(job)
    assert info == {"action": "sample", "action_id": action.id,
                    "instance_uuid": instance, "request_id": "req-1"}
    book = job.book
    assert book.uuid == job_uuid
    flow_detail, = list(book)
    assert flow_detail.uuid == job.details["flow_uuid"]
    # Saved by TaskFlow's public API: it re-creates the same flow.
    assert flow_detail.meta["factory"]["name"] == (
        "tests.functional.engine.sample_flows.get_quick_flow")
    assert [atom.name for atom in flows.iter_tasks(
        engines.flow_from_detail(flow_detail))] == ["first", "second"]
    assert flow_detail.name == "quick"

    status = operations.operation_status(job_uuid, conf)
    assert (status.action_id, status.finished, status.running_steps) == (
        action.id, False, [])


def test_a_busy_instance_is_refused_naming_the_running_action(
        conf, db, trace_file):
    instance = helpers.add_instance(db)
    job_uuid = post(conf, instance, trace_file, request_id="req-first")
    with pytest.raises(exception.InstanceBusy) as caught:
        post(conf, instance, trace_file)
    message = str(caught.value)
    assert "sample is running" in message
    assert job_uuid in message and "req-first" in message
    assert len(helpers.rows(db, models.InstanceAction, instance_uuid=instance)) == 1
    other = helpers.add_instance(db)
    post(conf, other, trace_file)


def test_release_then_post_again(conf, db, trace_file):
    instance = helpers.add_instance(db)
    job_uuid = post(conf, instance, trace_file)
    assert not posting.release_instance_lock(instance, "another-job",
                                             engine=db)
    assert posting.release_instance_lock(instance, job_uuid, engine=db)
    assert not posting.release_instance_lock(instance, job_uuid, engine=db)
    post(conf, instance, trace_file)


def test_a_lock_whose_job_ended_is_taken_over(conf, db, board, trace_file):
    instance = helpers.add_instance(db)
    old_job = post(conf, instance, trace_file, request_id="req-old")
    job = board.find_job(old_job)
    board.claim(job, "vanished-runner")
    board.consume(job, "vanished-runner")
    _age_lock(db, instance, seconds=3600)

    new_job = post(conf, instance, trace_file, request_id="req-new")
    lock, = helpers.rows(db, models.InstanceLock, instance_uuid=instance)
    assert lock.job_uuid == new_job
    old, new = helpers.rows(db, models.InstanceAction, instance_uuid=instance)
    assert old.request_id == "req-old" and old.result == actions.ERROR
    assert "taken over as stale" in old.message
    assert new.finish_time is None


def test_a_young_lock_without_job_is_a_posting_under_way(conf, db,
                                                         trace_file):
    instance = helpers.add_instance(db)
    helpers.insert_lock(db, instance, "job-being-posted", age_seconds=0)
    with pytest.raises(exception.InstanceBusy, match="job-being-posted"):
        post(conf, instance, trace_file)


def test_an_old_lock_without_job_is_stale(conf, db, trace_file):
    instance = helpers.add_instance(db)
    helpers.insert_lock(db, instance, "never-posted", age_seconds=60)
    job_uuid = post(conf, instance, trace_file)
    lock, = helpers.rows(db, models.InstanceLock, instance_uuid=instance)
    assert lock.job_uuid == job_uuid


def test_a_lock_whose_job_waits_for_a_runner_is_not_stale(conf, db,
                                                          trace_file):
    instance = helpers.add_instance(db)
    post(conf, instance, trace_file)
    _age_lock(db, instance, seconds=3600)
    with pytest.raises(exception.InstanceBusy):
        post(conf, instance, trace_file)


def test_a_failed_posting_gives_the_lock_back(conf, db, board, trace_file):
    instance = helpers.add_instance(db)
    board.close()  # posting on a closed board fails
    with pytest.raises(tf_exc.JobFailure):
        post(conf, instance, trace_file, board=board)
    assert helpers.rows(db, models.InstanceLock, instance_uuid=instance) == []
    action, = helpers.rows(db, models.InstanceAction, instance_uuid=instance)
    assert action.result == actions.ERROR
    assert "posting the job failed" in action.message


def test_posting_on_an_unknown_instance_writes_nothing(conf, db,
                                                       trace_file):
    instance = "no-such-instance"
    with pytest.raises(exception.NotFound):
        post(conf, instance, trace_file)
    assert helpers.rows(db, models.InstanceLock, instance_uuid=instance) == []
    assert helpers.rows(db, models.InstanceAction, instance_uuid=instance) == []


@pytest.mark.parametrize("store, reason", [
    ({"when": datetime.datetime(2020, 1, 1)}, "not JSON-serialisable"),
    ({"db_password": "x"}, "looks like a credential"),
    ({"nested": [{"api_token": "x"}]}, "looks like a credential"),
    ({"instance_uuid": "another"}, "not"),
])
def test_bad_stores_are_refused(conf, db, store, reason):
    instance = helpers.add_instance(db)
    with pytest.raises(exception.InvalidInput, match=reason):
        posting.post_operation("sample", instance, sample_flows.QUICK,
                               store, conf=conf)
    assert helpers.rows(db, models.InstanceLock, instance_uuid=instance) == []


def test_a_factory_a_runner_cannot_reimport_is_refused(conf, db, trace_file):
    instance = helpers.add_instance(db)
    with pytest.raises(exception.InvalidInput,
                       match="cannot be re-imported by name"):
        post(conf, instance, trace_file,
             factory=lambda: sample_flows.get_quick_flow())
    assert helpers.rows(db, models.InstanceLock, instance_uuid=instance) == []
    assert helpers.rows(db, models.InstanceAction,
                        instance_uuid=instance) == []


def _age_lock(db, instance, seconds):
    with helpers.writer(db) as session:
        lock = session.get(models.InstanceLock, instance)
        lock.created_at -= datetime.timedelta(seconds=seconds)


def test_take_lock_does_not_hide_other_integrity_errors(db):
    with pytest.raises(sa_exc.IntegrityError):
        locks.take_lock(db, "x", "sample", "job", None,  # request_id NULL
                        is_stale=lambda lock: False,
                        on_taken=lambda session: None)
