"""Operations whose job the board lost are posted again from the database
(:mod:`vmflow.engine.recovery`). The board's data is lost here by deleting
the job's row (what a Redis board that restarted empty or was flushed
does to its keys): the runner running it posts it again at once, a
runner's sweep or ``--wait`` after one claim expiry, and nothing runs twice.
"""
import collections
import logging

import pytest
import sqlalchemy

from tests.functional.engine import helpers, sample_flows
from vmflow.engine import actions, locks, operations, recovery
from vmflow.engine import persistence as engine_persistence
from vmflow.persistence import api, models

# The db fixture's claim expiry is 5 s: a lost job waits that long for
# its runner to post it again before a sweep does.


@pytest.fixture(autouse=True)
def no_locks_left_for_the_next_test(db):
    """The module's tests share one database (one board namespace each):
    a sweep sees every lock in it, so each test removes its own."""
    yield
    with helpers.writer(db) as session:
        session.execute(sqlalchemy.delete(models.InstanceLock))


post = helpers.post_sample


def lose(db, job_uuid):
    """The board forgets the job (its row goes, as a Redis key would)."""
    with helpers.writer(db) as session:
        session.execute(sqlalchemy.delete(models.Job).where(
            models.Job.uuid == job_uuid))


def lock_of(db, job_uuid):
    return helpers.rows(db, models.InstanceLock, job_uuid=job_uuid)


def test_a_lost_job_is_listed_lost_then_run_by_wait(conf, db, trace_file):
    job_uuid = post(conf, db, trace_file)
    lose(db, job_uuid)
    listed = {job["uuid"]: (job["state"], job["owner"], job["progress"])
              for job in operations.list_jobs(conf)}
    assert listed == {job_uuid: (operations.LOST, None, "0/2")}
    assert operations.describe_job(job_uuid, conf)["state"] == "LOST"

    status = operations.wait_for_operation(job_uuid, conf, timeout=30,
                                           poll_interval=0.05)
    assert status.succeeded
    assert sample_flows.read_trace(trace_file) == ["execute:first",
                                                   "execute:second"]
    assert lock_of(db, job_uuid) == []
    assert operations.describe_job(job_uuid, conf)["state"] == "ENDED"


def test_a_job_lost_while_it_runs_goes_on_in_its_runner(conf, db, tmp_path,
                                                        trace_file, caplog):
    gate = tmp_path / "gate"
    job_uuid = post(conf, db, trace_file, factory=sample_flows.GATED,
                    gate_file=str(gate))
    caplog.set_level(logging.INFO, logger="vmflow")
    with helpers.RunnerThread(conf, name="keeper") as running:
        helpers.wait_until(
            lambda: "execute:wait" in sample_flows.read_trace(trace_file),
            10, "the gated step")
        lose(db, job_uuid)
        # Its keep-alive (every third of a claim expiry) posts it again.
        helpers.wait_until(lambda: helpers.rows(db, models.Job,
                                                uuid=job_uuid), 10,
                           "the job back on the board")
        row, = helpers.rows(db, models.Job, uuid=job_uuid)
        assert (row.state, row.owner) == ("CLAIMED", running.runner.who)
        gate.touch()
        helpers.wait_until(
            lambda: operations.operation_status(job_uuid, conf).finished,
            20, "the end of the job")
    assert operations.operation_status(job_uuid, conf).succeeded
    assert sample_flows.read_trace(trace_file) == [
        "execute:first", "execute:wait", "passed:wait", "execute:last"]
    assert lock_of(db, job_uuid) == []
    assert "was lost by the job board" in caplog.text
    assert "another runner took it over" not in caplog.text


def test_a_sweep_posts_a_lost_job_after_one_claim_expiry(conf, db, board,
                                                         trace_file):
    job_uuid = post(conf, db, trace_file)
    lose(db, job_uuid)
    persistence = engine_persistence.get_persistence(conf, db)
    sweeper = recovery.LostJobSweeper(board, persistence, patience=0.3)
    assert sweeper.sweep() == {}  # seen lost: its runner may post it
    helpers.wait_until(lambda: sweeper.sweep(), 5, "the re-posting")
    job = board.find_job(job_uuid)
    assert job is not None and job.details["store"]["trace_file"] == (
        trace_file)
    # A second poster finds it listed: posting again is idempotent.
    with api.session_scope(db) as session:
        row, = locks.lock_rows(session)
    assert recovery.repost_from_logbook(board, persistence, row) == "listed"


def test_an_operation_without_logbook_is_ended_after_the_grace(conf, db,
                                                                board):
    instance = helpers.add_instance(db)
    helpers.insert_lock(db, instance, "never-posted", age_seconds=60,
                        start_action=True)
    persistence = engine_persistence.get_persistence(conf, db)
    sweeper = recovery.LostJobSweeper(board, persistence, patience=0)
    assert sweeper.sweep() == {"never-posted": "ended"}
    assert helpers.rows(db, models.InstanceLock, instance_uuid=instance) == []
    action, = helpers.rows(db, models.InstanceAction, instance_uuid=instance)
    assert action.result == actions.ERROR
    assert "was never posted" in action.message


def test_a_young_lock_without_logbook_is_a_posting_under_way(conf, db,
                                                             board):
    instance = helpers.add_instance(db)
    helpers.insert_lock(db, instance, "being-posted", start_action=True)
    persistence = engine_persistence.get_persistence(conf, db)
    sweeper = recovery.LostJobSweeper(board, persistence, patience=0)
    assert sweeper.sweep() == {}
    assert len(helpers.rows(db, models.InstanceLock,
                            instance_uuid=instance)) == 1


def test_a_runner_posts_lost_jobs_again_and_runs_each_once(conf, db,
                                                           trace_file):
    jobs = [post(conf, db, trace_file) for _ in range(3)]
    for job_uuid in jobs:
        lose(db, job_uuid)
    with helpers.RunnerThread(conf, name="sweeper"):
        helpers.wait_until(
            lambda: all(operations.operation_status(job, conf).finished
                        for job in jobs), 30, "the lost jobs")
    assert all(operations.operation_status(job, conf).succeeded
               for job in jobs)
    counts = collections.Counter(sample_flows.read_trace(trace_file))
    assert counts == {"execute:first": 3, "execute:second": 3}
    assert helpers.rows(db, models.InstanceLock) == []
