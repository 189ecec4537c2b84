"""Real ``vmflow-engine`` processes: killed with SIGKILL mid-flow and
restarted, stopped with SIGTERM and replaced."""
import collections
import signal
import subprocess
import sys

import pytest

from tests.functional.engine import helpers, sample_flows
from vmflow.engine import actions, operations, posting
from vmflow.persistence import models

CLAIM_EXPIRY = 5
RUNNER_TIMEOUT = 60


@pytest.fixture
def gated_job(conf, db, tmp_path, trace_file):
    """A posted gated flow, and a function starting runners on its board."""
    instance = helpers.add_instance(db)
    gate = tmp_path / "gate"
    job_uuid = posting.post_operation(
        sample_flows.SAMPLE_ACTION, instance, sample_flows.GATED,
        {"trace_file": trace_file, "gate_file": str(gate)}, conf=conf)
    config = helpers.runner_config(
        tmp_path / "runner.conf", tmp_path / "state",
        conf.database.connection, conf.jobboard.namespace, CLAIM_EXPIRY)
    log_path = tmp_path / "runners.log"

    def start(*args, name="runner"):
        return helpers.start_runner(config, *args, name=name,
                                    log_path=log_path)

    def log():
        return log_path.read_text() if log_path.exists() else ""

    return Job(job_uuid, instance, gate, start, log)


Job = collections.namedtuple("Job", "uuid instance gate start log")


def wait_for_step(trace_file, line, runner, log):
    def seen():
        assert runner.poll() is None, f"runner exited early:\n{log()}"
        return line in sample_flows.read_trace(trace_file)
    helpers.wait_until(seen, 30, f"{line!r} in the trace")


def finish(runner, log):
    status = runner.wait(timeout=RUNNER_TIMEOUT)
    assert status == 0, f"runner exited {status}:\n{log()}"


def assert_completed_once_each(db, job, trace_file, conf):
    status = operations.operation_status(job.uuid, conf)
    assert status.succeeded, status
    counts = collections.Counter(sample_flows.read_trace(trace_file))
    assert counts["execute:first"] == 1
    assert counts["passed:wait"] == 1
    assert counts["execute:last"] == 1
    assert helpers.rows(db, models.InstanceLock,
                        instance_uuid=job.instance) == []
    return counts


def test_sigkill_mid_flow_then_restart_resumes_from_the_saved_step(
        conf, db, gated_job, trace_file):
    job = gated_job
    first = job.start("--max-jobs", "1")
    wait_for_step(trace_file, "execute:wait", first, job.log)
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=10) == -signal.SIGKILL

    row, = helpers.rows(db, models.Job, uuid=job.uuid)
    assert row.state == "CLAIMED" and row.owner.startswith("runner@")
    assert operations.operation_status(job.uuid, conf).running_steps == [
        "wait"]
    assert dict(operations.flow_steps(job.uuid, conf))["first"] == "SUCCESS"

    job.gate.touch()
    second = job.start("--max-jobs", "1")  # takes the dead runner's claim over
    finish(second, job.log)
    counts = assert_completed_once_each(db, job, trace_file, conf)
    assert counts["execute:wait"] == 2  # RUNNING when killed: runs again
    action_id = operations.operation_status(job.uuid, conf).action_id
    results = [(event.event, event.result) for event in helpers.rows(
        db, models.InstanceActionEvent, action_id=action_id)]
    assert results == [("first", actions.EVENT_SUCCESS),
                       ("wait", actions.EVENT_INTERRUPTED),
                       ("wait", actions.EVENT_SUCCESS),
                       ("last", actions.EVENT_SUCCESS)]


def test_wait_runs_inline_at_once_after_the_runner_was_killed(
        conf, db, gated_job, trace_file, tmp_path):
    """``--wait`` does not wait for a dead local runner's heartbeat or
    claim to expire (here a minute): it takes the job over and runs it
    in-process."""
    job = gated_job
    long_expiry = 60
    conf.set_override("claim_expiry_seconds", long_expiry, group="jobboard")
    config = helpers.runner_config(
        tmp_path / "long.conf", tmp_path / "state", conf.database.connection,
        conf.jobboard.namespace, long_expiry)
    first = helpers.start_runner(config, "--max-jobs", "1", name="runner",
                                 log_path=tmp_path / "long.log")
    wait_for_step(trace_file, "execute:wait", first, job.log)
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=10) == -signal.SIGKILL
    job.gate.touch()

    status = operations.wait_for_operation(job.uuid, conf,
                                           timeout=long_expiry / 2,
                                           poll_interval=0.1)
    assert status.succeeded, status
    row, = helpers.rows(db, models.Job, uuid=job.uuid)
    assert row.owner.startswith("inline@"), row.owner
    assert_completed_once_each(db, job, trace_file, conf)


WAIT_INLINE = """
import sys
from vmflow import conf, exception
from vmflow.engine import operations
conf.parse(config_files=[sys.argv[1]])
try:
    operations.wait_for_operation(sys.argv[2], poll_interval=0.1)
except exception.OperationInterrupted as error:
    print(error)
    sys.exit(3)
"""


def test_ctrl_c_on_an_inline_run_suspends_and_leaves_the_job(
        conf, db, gated_job, trace_file, tmp_path):
    """SIGINT while ``--wait`` runs a job in-process: the step finishes,
    the engine suspends, the job is abandoned (not lost, not claimed by a
    dead process) and a runner completes it without running a step
    twice."""
    job = gated_job
    config = helpers.runner_config(
        tmp_path / "inline.conf", tmp_path / "state",
        conf.database.connection, conf.jobboard.namespace, CLAIM_EXPIRY)
    waiter = subprocess.Popen(
        [sys.executable, "-c", WAIT_INLINE, config, job.uuid],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=helpers.REPO_ROOT)
    wait_for_step(trace_file, "execute:wait", waiter, job.log)
    waiter.send_signal(signal.SIGINT)
    job.gate.touch()
    output, _ = waiter.communicate(timeout=RUNNER_TIMEOUT)
    assert waiter.returncode == 3, output
    assert output.startswith(f"interrupted: job {job.uuid} stopped after "
                             "its current step"), output

    row, = helpers.rows(db, models.Job, uuid=job.uuid)
    assert (row.state, row.owner) == ("UNCLAIMED", None)
    steps = dict(operations.flow_steps(job.uuid, conf))
    assert (steps["wait"], steps["last"]) == ("SUCCESS", "PENDING")

    finish(job.start("--once"), job.log)
    counts = assert_completed_once_each(db, job, trace_file, conf)
    assert counts["execute:wait"] == 1


def test_sigterm_abandons_the_job_and_another_runner_completes_it(
        conf, db, gated_job, trace_file):
    job = gated_job
    first = job.start(name="first")
    wait_for_step(trace_file, "execute:wait", first, job.log)
    first.send_signal(signal.SIGTERM)
    with pytest.raises(subprocess.TimeoutExpired):  # finishing its step
        first.wait(timeout=0.5)
    job.gate.touch()
    finish(first, job.log)
    assert "execute:last" not in sample_flows.read_trace(trace_file)
    row, = helpers.rows(db, models.Job, uuid=job.uuid)
    assert (row.state, row.owner) == ("UNCLAIMED", None)
    assert not operations.operation_status(job.uuid, conf).finished

    second = job.start("--once", name="second")
    finish(second, job.log)
    counts = assert_completed_once_each(db, job, trace_file, conf)
    assert counts["execute:wait"] == 1
    row, = helpers.rows(db, models.Job, uuid=job.uuid)
    assert row.owner.startswith("second@")


def test_check_only_reports_a_ready_runner(conf, db, gated_job):
    runner = gated_job.start("--check")
    assert runner.wait(timeout=RUNNER_TIMEOUT) == 0, gated_job.log()
    assert "is claiming jobs" not in gated_job.log()
