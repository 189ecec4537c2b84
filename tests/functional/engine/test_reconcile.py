"""Instances a vanished job left in a task_state are reconciled at runner
start (:mod:`vmflow.engine.reconcile`), on libvirt's test driver and
SQLite: cleared when the hypervisor shows the operation finished, ERROR
with a fault otherwise, left alone while their operation can go on."""
import datetime
import uuid as uuidlib

import sqlalchemy

from tests.cloud import cloud, image_file  # noqa: F401 (fixtures)
from tests.functional.engine import helpers, sample_flows
from tests.functional.test_build_delete_flows import built
from vmflow import instances
from vmflow.engine import actions, posting, reconcile
from vmflow.inventory import servers
from vmflow.persistence import models
from vmflow.tasks import base

DEAD_JOB = "5b0c8a0e-0000-4000-8000-0000000000d0"


def set_columns(cloud, uuid, **values):
    with helpers.writer(cloud.engine) as session:
        session.execute(sqlalchemy.update(models.Instance)
                        .where(models.Instance.uuid == uuid).values(**values))


def stuck(cloud, uuid, task_state, with_action=True):
    """Leave ``uuid`` in ``task_state`` as a job that died would: no lock,
    its instance action (if ``with_action``) unfinished."""
    set_columns(cloud, uuid, task_state=task_state)
    if with_action:
        with helpers.writer(cloud.engine) as session:
            return actions.start_instance_action(session, uuid, "stop",
                                                 "req-dead")
    return None


def state(cloud, uuid):
    instance = cloud.instance(uuid)
    return (instance["vm_state"], instance["power_state"],
            instance["task_state"])


def fault(cloud, uuid):
    with cloud.session() as session:
        return servers.latest_fault(session, uuid)


def run_reconcile(conf):
    service = reconcile.ReconcileService(conf, "test-runner")
    service.start()
    service.stop()
    return service.outcomes


def test_a_finished_stop_is_cleared_and_its_action_finished(cloud, conf):
    uuid = built(cloud)
    base.get_driver("host1").destroy(uuid)
    action_id = stuck(cloud, uuid, instances.POWERING_OFF)
    assert state(cloud, uuid) == ("active", "running", "powering-off")

    assert run_reconcile(conf) == {uuid: reconcile.CLEARED}

    assert state(cloud, uuid) == ("stopped", "shutdown", None)
    assert base.get_driver("host1").get_power_state(uuid) == "shutdown"
    action = actions.get_action(cloud.engine, action_id)
    assert action.finish_time is not None and action.result == "error"
    assert action.message == (
        "reconciled at runner start: task_state powering-off was left by a "
        "job that no longer exists; the hypervisor shows it finished: "
        "vm_state stopped, power_state shutdown, task_state cleared")
    assert fault(cloud, uuid) is None
    assert run_reconcile(conf) == {}  # nothing left to do


def test_an_unfinished_pause_goes_to_error_with_a_fault(cloud, conf):
    uuid = built(cloud)
    action_id = stuck(cloud, uuid, instances.PAUSING)

    assert run_reconcile(conf) == {uuid: reconcile.ERRORED}

    assert state(cloud, uuid) == ("error", "running", None)
    assert base.get_driver("host1").get_power_state(uuid) == "running"
    assert fault(cloud, uuid) == (
        "task_state pausing was left by a job that no longer exists; the "
        "hypervisor shows the domain running, not paused")
    assert actions.get_action(cloud.engine, action_id).message == (
        "reconciled at runner start: ERROR: " + fault(cloud, uuid))


def test_a_reboot_whose_domain_is_gone_goes_to_error(cloud, conf):
    uuid = built(cloud)
    driver = base.get_driver("host1")
    driver.destroy(uuid)
    driver.undefine(uuid)
    stuck(cloud, uuid, instances.REBOOT_STARTED_HARD, with_action=False)

    assert run_reconcile(conf) == {uuid: reconcile.ERRORED}
    assert state(cloud, uuid)[::2] == ("error", None)
    assert fault(cloud, uuid).endswith(
        "the hypervisor shows no domain, not running")


def test_stuck_builds_and_deletes_go_to_error_without_the_host(cloud, conf):
    old = models.utcnow() - datetime.timedelta(hours=1)
    building = cloud.create_instance("building")["uuid"]
    set_columns(cloud, building, created_at=old)
    young = cloud.create_instance("young")["uuid"]  # its posting under way
    deleting = built(cloud, "deleting")
    stuck(cloud, deleting, instances.DELETING)

    assert run_reconcile(conf) == {building: reconcile.ERRORED,
                                   deleting: reconcile.ERRORED}

    assert state(cloud, building) == ("error", "nostate", None)
    assert fault(cloud, building).endswith("the build did not finish")
    assert state(cloud, young) == ("building", "nostate", "scheduling")
    assert state(cloud, deleting) == ("error", "running", None)
    assert fault(cloud, deleting).endswith("run the delete again")


def test_a_lock_whose_job_ended_is_reconciled_and_released(cloud, conf):
    uuid = built(cloud)
    action_id = helpers.insert_lock(cloud.engine, uuid, DEAD_JOB,
                                    start_action=True)
    actions.finish_instance_action(cloud.engine, action_id, "error", "x")
    stuck(cloud, uuid, instances.UNPAUSING, with_action=False)

    assert run_reconcile(conf) == {uuid: reconcile.CLEARED}
    assert state(cloud, uuid) == ("active", "running", None)
    assert helpers.rows(cloud.engine, models.InstanceLock,
                        instance_uuid=uuid) == []


def test_operations_that_can_go_on_are_left_alone(cloud, conf, tmp_path):
    lost = built(cloud, "lost")  # a lock whose job has not ended
    helpers.insert_lock(cloud.engine, lost, DEAD_JOB, age_seconds=3600,
                        start_action=True)
    stuck(cloud, lost, instances.PAUSING, with_action=False)
    queued = built(cloud, "queued")  # a job on the board works on it
    job = posting.post_operation(
        sample_flows.SAMPLE_ACTION, queued, sample_flows.QUICK,
        {"trace_file": str(tmp_path / "trace")}, conf=conf)
    stuck(cloud, queued, instances.POWERING_OFF, with_action=False)

    assert run_reconcile(conf) == {}

    assert state(cloud, lost) == ("active", "running", "pausing")
    assert state(cloud, queued) == ("active", "running", "powering-off")
    locked = {row.instance_uuid: row.job_uuid for row in helpers.rows(
        cloud.engine, models.InstanceLock)}
    assert locked == {lost: DEAD_JOB, queued: job}


def test_a_host_that_does_not_answer_keeps_its_instances(cloud, conf,
                                                         caplog):
    cloud.add_host("gone", uri=f"test://{cloud.tmp_path}/missing.xml")
    uuids = [built(cloud, name) for name in ("vm1", "vm2")]
    for uuid in uuids:
        set_columns(cloud, uuid, host="gone")
        stuck(cloud, uuid, instances.POWERING_ON)

    assert run_reconcile(conf) == dict.fromkeys(uuids, reconcile.LEFT)

    for uuid in uuids:
        assert state(cloud, uuid) == ("active", "running", "powering-on")
    said = [record.getMessage() for record in caplog.records
            if "does not answer" in record.getMessage()]
    assert len(said) == 1, said  # one line for the host
    assert said[0].startswith("Reconcile: host gone does not answer "
                              "(hypervisor at test://")


def test_shut_off_guests_that_should_run_are_started_when_asked(cloud,
                                                                conf):
    uuid = built(cloud)
    driver = base.get_driver("host1")
    driver.destroy(uuid)

    assert run_reconcile(conf) == {}  # the option is off by default
    assert driver.get_power_state(uuid) == "shutdown"

    conf.set_override("resume_guests_state_on_host_boot", True)
    try:
        assert run_reconcile(conf) == {uuid: reconcile.STARTED}
    finally:
        conf.clear_override("resume_guests_state_on_host_boot")
    assert driver.get_power_state(uuid) == "running"
    assert state(cloud, uuid) == ("active", "running", None)


def test_a_runner_reconciles_before_it_claims(cloud, conf):
    stopped = built(cloud, "stopped")
    base.get_driver("host1").destroy(stopped)
    stuck(cloud, stopped, instances.POWERING_OFF)
    pausing = built(cloud, "pausing")
    stuck(cloud, pausing, instances.PAUSING)

    with helpers.RunnerThread(conf, name=f"r-{uuidlib.uuid4().hex[:6]}"):
        helpers.wait_until(lambda: cloud.instance(pausing)["task_state"]
                           is None, 10, "the reconcile at runner start")
        helpers.wait_until(lambda: cloud.instance(stopped)["task_state"]
                           is None, 10, "the reconcile at runner start")

    assert state(cloud, stopped) == ("stopped", "shutdown", None)
    assert state(cloud, pausing) == ("error", "running", None)
    assert cloud.audit()["checks"]["task_states"]["ok"]


def test_a_round_that_cannot_read_the_board_is_one_line(cloud, conf,
                                                         caplog):
    uuid = built(cloud)
    stuck(cloud, uuid, instances.PAUSING)
    conf.set_override("backend", "redis", group="jobboard")
    conf.set_override("hosts", ["127.0.0.1:1"], group="jobboard")
    service = reconcile.ReconcileService(conf, "test-runner")
    service.start()  # the runner goes on claiming (once the board is back)

    assert service.outcomes is None
    said = [record for record in caplog.records
            if record.name == reconcile.__name__]
    assert [(record.levelname, record.exc_info) for record in said] == [
        ("ERROR", None)]
    assert said[0].getMessage().startswith(
        "Runner test-runner could not reconcile stuck instances: ")
    assert "\n" not in said[0].getMessage()
    assert state(cloud, uuid) == ("active", "running", "pausing")


def test_a_task_state_without_a_rule_fails_even_on_a_host_that_is_down(
        cloud, conf):
    cloud.add_host("gone", uri=f"test://{cloud.tmp_path}/missing.xml")
    uuid = built(cloud)
    set_columns(cloud, uuid, host="gone")
    stuck(cloud, uuid, "resize_migrating")

    assert run_reconcile(conf) == {uuid: reconcile.ERRORED}
    assert state(cloud, uuid) == ("error", "running", None)
    assert fault(cloud, uuid).endswith(": no rule tells how it ends")
