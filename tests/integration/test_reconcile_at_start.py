"""A real ``vmflow-engine`` started over instances stuck in a task_state
with no job reconciles them before it claims (issue 9, item 6): a stop
whose domain is shut off ends stopped, a pause whose domain still runs
ends in ERROR with a fault, an operation whose job is on the board is left
alone, and with ``resume_guests_state_on_host_boot`` a shut-off guest that
should run is started again.

The test bed is :mod:`tests.integration.flowbed`'s: the private libvirtd
of ``second_libvirt_uri`` as the only host, guests that need no boot.
"""
import sqlalchemy

from tests.functional.engine import helpers, sample_flows
from tests.integration.flowbed import (  # noqa: F401 (fixtures)
    FLAVOR, HOST, IMAGE, PROJECT, disks_root, make_cloud, sweeper,
    template_db)
from vmflow import compute, instances
from vmflow.engine import actions, posting, runner
from vmflow.persistence import models
from vmflow.tasks import base

RUNNER_TIMEOUT = 60


def built_server(cloud, name):
    request = compute.create_server(name, FLAVOR, IMAGE, PROJECT,
                                    conf=cloud.conf)
    assert runner.run_job_inline(request.job_uuid, cloud.conf)
    assert cloud.instance(request.instance_uuid)["vm_state"] == "active"
    return request.instance_uuid


def left_stuck(cloud, uuid, task_state):
    """What a runner killed mid-operation leaves: the task_state set, the
    instance action open, no lock and no job."""
    with helpers.writer(cloud.engine) as session:
        session.execute(sqlalchemy.update(models.Instance)
                        .where(models.Instance.uuid == uuid)
                        .values(task_state=task_state))
        return actions.start_instance_action(session, uuid, "stop",
                                             "req-killed")


def state(cloud, uuid):
    instance = cloud.instance(uuid)
    return (instance["vm_state"], instance["power_state"],
            instance["task_state"])


def run_runner_once(cloud):
    process = cloud.start_runner("restarted", env={})
    assert process.wait(timeout=RUNNER_TIMEOUT) == 0, cloud.log()


def test_a_runner_start_reconciles_what_dead_jobs_left(conf, tmp_path,
                                                      template_db,
                                                      disks_root, sweeper):
    with make_cloud(conf, tmp_path, template_db, disks_root,
                    sweeper) as cloud:
        driver = base.get_driver(HOST)
        stopped = built_server(cloud, "stopped")
        driver.destroy(stopped)  # the stop happened, its job died
        stop_action = left_stuck(cloud, stopped, instances.POWERING_OFF)
        pausing = built_server(cloud, "pausing")  # the pause never came
        left_stuck(cloud, pausing, instances.PAUSING)
        queued = helpers.add_instance(cloud.engine, "queued")
        job = posting.post_operation(
            sample_flows.SAMPLE_ACTION, queued, sample_flows.QUICK,
            {"trace_file": str(tmp_path / "trace")}, conf=cloud.conf)

        run_runner_once(cloud)

        assert state(cloud, stopped) == ("stopped", "shutdown", None)
        assert driver.get_power_state(stopped) == "shutdown"
        action = actions.get_action(cloud.engine, stop_action)
        assert action.result == "error" and action.finish_time is not None
        assert state(cloud, pausing) == ("error", "running", None)
        assert driver.get_power_state(pausing) == "running"
        assert cloud.fault(pausing) == (
            "task_state pausing was left by a job that no longer exists; "
            "the hypervisor shows the domain running, not paused")
        # Left alone: its job was on the board; the runner then ran it.
        assert state(cloud, queued) == ("building", "nostate", "scheduling")
        assert sample_flows.read_trace(str(tmp_path / "trace"))
        row, = helpers.rows(cloud.engine, models.Job, uuid=job)
        assert row.state == "COMPLETE"
        log = cloud.log()
        assert f"Reconciled instance {stopped} " in log
        assert f"Reconciled instance {pausing} " in log
        assert f"Reconciled instance {queued} " not in log
        assert "reconciled 2 instance(s) at start, left 0" in log


def test_shut_off_guests_that_should_run_are_started_at_runner_start(
        conf, tmp_path, template_db, disks_root, sweeper):
    with make_cloud(conf, tmp_path, template_db, disks_root,
                    sweeper) as cloud:
        driver = base.get_driver(HOST)
        left_off = built_server(cloud, "vm1")
        driver.destroy(left_off)  # the host restarted
        assert state(cloud, left_off) == ("active", "running", None)

        # The option is off by default: the guest stays off, and the
        # runner's power sync then records it stopped (as Nova's does).
        run_runner_once(cloud)
        assert driver.get_power_state(left_off) == "shutdown"
        assert state(cloud, left_off) == ("stopped", "shutdown", None)

        restarted = built_server(cloud, "vm2")
        driver.destroy(restarted)  # the host restarted again
        with open(cloud.config_file) as config:
            text = config.read()
        with open(cloud.config_file, "w") as config:
            config.write(text.replace(
                "[DEFAULT]\n",
                "[DEFAULT]\nresume_guests_state_on_host_boot = true\n", 1))
        run_runner_once(cloud)

        # Started before the power sync could record it off; a server
        # stopped by then is not one that should run.
        assert driver.get_power_state(restarted) == "running"
        assert state(cloud, restarted) == ("active", "running", None)
        assert f"started instance {restarted} (vm2) again" in cloud.log()
        assert driver.get_power_state(left_off) == "shutdown"
        assert state(cloud, left_off) == ("stopped", "shutdown", None)
