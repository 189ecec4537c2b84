"""The runner (conductor) in this process: claiming, running, finishing
jobs, stopping, waiting for operations."""
import collections

import pytest

from tests.functional.engine import helpers, sample_flows
from vmflow import exception
from vmflow.engine import actions, operations, runner
from vmflow.engine import persistence as engine_persistence
from vmflow.persistence import models


post = helpers.post_sample


def job_row(db, job_uuid):
    row, = helpers.rows(db, models.Job, uuid=job_uuid)
    return row


def test_a_draining_runner_runs_every_job_then_exits(conf, db, board,
                                                     trace_file):
    jobs = [post(conf, db, trace_file) for _ in range(3)]
    finished = runner.Runner("drainer", conf, drain=True).run()
    assert sorted(uuid for uuid, _result in finished) == sorted(jobs)
    assert {result for _uuid, result in finished} == {actions.SUCCESS}
    counts = collections.Counter(sample_flows.read_trace(trace_file))
    assert counts == {"execute:first": 3, "execute:second": 3}
    for job_uuid in jobs:
        row = job_row(db, job_uuid)
        assert row.state == "COMPLETE"
        assert row.owner.startswith("drainer@")
        status = operations.operation_status(job_uuid, conf)
        assert status.succeeded
    assert board.job_count == 0
    assert board.alive_entities() == []  # unregistered on exit


def test_max_jobs_stops_after_that_many(conf, db, board, trace_file):
    for _ in range(3):
        post(conf, db, trace_file)
    finished = runner.Runner("two", conf, max_jobs=2).run()
    assert len(finished) == 2
    assert board.job_count == 1


def test_wait_for_operation_lets_a_live_runner_run_the_job(conf, db,
                                                           trace_file):
    with helpers.RunnerThread(conf, name="live"):
        job_uuid = post(conf, db, trace_file)
        status = operations.wait_for_operation(job_uuid, conf, timeout=30)
    assert status.succeeded
    assert job_row(db, job_uuid).owner.startswith("live@")


def test_wait_for_operation_runs_the_job_inline_without_runner(
        conf, db, trace_file):
    job_uuid = post(conf, db, trace_file, factory=sample_flows.FAILING)
    seen = []
    status = operations.wait_for_operation(
        job_uuid, conf, on_progress=lambda step, state: seen.append(
            (step, state)))
    assert status.finished and not status.succeeded
    assert status.message == "reverted after boom: boom fails on purpose"
    assert job_row(db, job_uuid).owner.startswith("inline@")
    assert ("boom", "FAILURE") in seen and ("first", "REVERTED") in seen


def test_wait_for_operation_times_out(conf, db, trace_file):
    job_uuid = post(conf, db, trace_file)
    with pytest.raises(exception.OperationTimeout, match=job_uuid):
        operations.wait_for_operation(job_uuid, conf, timeout=0.3,
                                      run_inline=False, poll_interval=0.1)


def test_stop_suspends_after_the_step_and_abandons_the_job(
        conf, db, board, trace_file, tmp_path):
    gate = tmp_path / "gate"
    job_uuid = post(conf, db, trace_file, factory=sample_flows.GATED,
                    gate_file=str(gate))
    with helpers.RunnerThread(conf, name="stopping") as running:
        helpers.wait_until(
            lambda: "execute:wait" in sample_flows.read_trace(trace_file),
            10, "the wait step")
        running.runner.stop()
        gate.touch()  # the running step finishes; the engine suspends
    assert running.result == []
    row = job_row(db, job_uuid)
    assert (row.state, row.owner) == ("UNCLAIMED", None)
    status = operations.operation_status(job_uuid, conf)
    assert not status.finished
    assert helpers.rows(db, models.InstanceLock, job_uuid=job_uuid)

    finished = runner.Runner("second", conf, drain=True).run()
    assert finished == [(job_uuid, actions.SUCCESS)]
    assert sample_flows.read_trace(trace_file) == [
        "execute:first", "execute:wait", "passed:wait", "execute:last"]
    assert helpers.rows(db, models.InstanceLock, job_uuid=job_uuid) == []


def test_a_job_whose_flow_cannot_be_loaded_is_trashed(conf, db, board,
                                                      trace_file):
    job_uuid = post(conf, db, trace_file)
    flow_detail, = list(board.find_job(job_uuid).book)
    flow_detail.meta["factory"]["name"] = "tests.nowhere.get_flow"
    persistence = engine_persistence.get_persistence(conf)
    with engine_persistence.persistence_connection(persistence) as conn:
        conn.update_flow_details(flow_detail)
    finished = runner.Runner("trasher", conf, drain=True).run()
    assert finished == [(job_uuid, actions.ERROR)]
    assert job_row(db, job_uuid).state == "TRASH"
    status = operations.operation_status(job_uuid, conf)
    assert status.finished and "could not run" in status.message
    assert helpers.rows(db, models.InstanceLock, job_uuid=job_uuid) == []


def test_threaded_executor_runs_flows_too(conf, db, trace_file):
    conf.set_override("executor", "threaded", group="engine")
    conf.set_override("max_workers", 2, group="engine")
    jobs = [post(conf, db, trace_file) for _ in range(4)]
    finished = runner.Runner("threaded", conf, drain=True).run()
    assert sorted(uuid for uuid, _result in finished) == sorted(jobs)


def test_list_jobs_and_flow_steps(conf, db, trace_file):
    job_uuid = post(conf, db, trace_file)
    listed, = operations.list_jobs(conf)
    assert (listed["uuid"], listed["state"], listed["action"],
            listed["owner"], listed["claim_expires_at"], listed["progress"],
            listed["failing"]) == (
        job_uuid, "UNCLAIMED", "sample", None, None, "0/2", None)
    assert listed["server"].startswith("vm-")
    runner.run_job_inline(job_uuid, conf)
    assert operations.list_jobs(conf) == []
    assert operations.flow_steps(job_uuid, conf) == [
        ("first", "SUCCESS"), ("second", "SUCCESS")]


def test_a_job_run_again_after_its_flow_finished_runs_nothing(
        conf, db, board, trace_file):
    """A runner that died between recording the end and consuming: the
    job is run again, finds its flow finished and ends again."""
    job_uuid = post(conf, db, trace_file)
    job = board.find_job(job_uuid)
    runner.run_job_inline(job_uuid, conf)
    again = board.post("again", book=job.book, details=job.details)
    finished = runner.Runner("again", conf, drain=True).run()
    assert finished == [(again.uuid, actions.SUCCESS)]
    assert sample_flows.read_trace(trace_file) == [
        "execute:first", "execute:second"]
    assert operations.operation_status(job_uuid, conf).succeeded
