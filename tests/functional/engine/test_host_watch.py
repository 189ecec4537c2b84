"""The runner's host watch on libvirt's test driver + SQLite: real
lifecycle events (the test driver emits them in-process), the real queue
and worker, the rules of :mod:`vmflow.engine.power_sync` on real rows."""
import uuid as uuidlib

import pytest
import sqlalchemy

from tests.cloud import cloud, image_file  # noqa: F401 (fixtures)
from tests.conftest import wait_until
from tests.functional.engine import helpers
from vmflow import drivers, instances, power_states
from vmflow.engine import host_watch, power_sync, services
from vmflow.inventory import hosts
from vmflow.persistence import api, models

DOWN_URI = "qemu+unix:///system?socket=/nonexistent/vmflow-test-sock"
WAIT = 10


@pytest.fixture(autouse=True)
def no_domains_left(cloud):
    """test:///default is shared by the whole process: remove the
    domains of this test's instances."""
    yield
    for uuid in instance_uuids(cloud):
        driver = drivers.get_driver(host_row(cloud, "host1"))
        driver.destroy(uuid)
        driver.undefine(uuid)


def instance_uuids(cloud):
    with cloud.session() as session:
        return list(session.scalars(sqlalchemy.select(models.Instance.uuid)))


@pytest.fixture
def watch(conf, cloud):
    conf.set_override("host_retry_seconds", 0.2, group="engine")
    conf.set_override("power_sync_interval_seconds", 1, group="engine")
    watches = []

    def start():
        service = host_watch.HostWatch(conf, f"test-{len(watches)}")
        service.start()
        watches.append(service)
        return service

    yield start
    for service in watches:
        service.stop()
    conf.clear_override("host_retry_seconds", group="engine")
    conf.clear_override("power_sync_interval_seconds", group="engine")


def running_instance(cloud, host="host1", name=None):
    """An ACTIVE instance whose domain runs on ``host``; its driver and
    uuid."""
    name = name or "vm-" + uuidlib.uuid4().hex[:6]
    with api.writer_scope(cloud.engine) as session:
        instance = instances.create_instance_record(session, name, "demo",
                                                    "tiny", "tiny")
        instance = instances.update_instance(
            session, instance["uuid"], instances.ANY, host=host,
            vm_state=instances.ACTIVE, task_state=None,
            power_state=power_states.RUNNING)
        image = instances.image_of(session, instance)
        host_record = hosts.show_host(session, host)
    driver = drivers.get_driver(host_record)
    driver.define_domain(driver.generate_xml(
        instance, image, instances.flavor_of(instance)))
    driver.start(instance["uuid"])
    return driver, instance["uuid"]


def states(cloud, uuid):
    row = cloud.instance(uuid)
    return row["power_state"], row["vm_state"]


def host_row(cloud, name):
    with cloud.session() as session:
        return hosts.show_host(session, name)


def test_the_host_watch_is_a_runner_service():
    assert host_watch.host_watch in services.SERVICE_FACTORIES


def test_a_guest_that_powers_off_by_itself_ends_stopped(cloud, watch):
    driver, uuid = running_instance(cloud)
    watch()
    driver.destroy(uuid)  # behind vmflow's back: only the event tells
    wait_until(lambda: states(cloud, uuid) == (power_states.SHUTDOWN,
                                               instances.STOPPED),
               WAIT, "the instance stopped")
    assert cloud.instance(uuid)["task_state"] is None


def test_a_paused_guest_is_recorded_but_stays_active(cloud, watch):
    driver, uuid = running_instance(cloud)
    watch()
    driver.pause(uuid)
    wait_until(lambda: states(cloud, uuid)[0] == power_states.PAUSED, WAIT,
               "power_state paused")
    assert states(cloud, uuid) == (power_states.PAUSED, instances.ACTIVE)
    driver.resume(uuid)
    wait_until(lambda: states(cloud, uuid)[0] == power_states.RUNNING,
               WAIT, "power_state running")


def test_start_up_sync_sees_what_happened_while_no_runner_ran(cloud, watch):
    driver, uuid = running_instance(cloud)
    driver.destroy(uuid)
    watch()  # start() syncs every host that answers before it returns
    assert states(cloud, uuid) == (power_states.SHUTDOWN, instances.STOPPED)


def test_an_instance_with_a_task_state_is_left_alone(cloud, watch):
    driver, uuid = running_instance(cloud)
    with api.writer_scope(cloud.engine) as session:
        instances.update_instance(session, uuid, (None,),
                                  task_state=instances.POWERING_OFF)
    service = watch()
    driver.destroy(uuid)
    other_driver, other = running_instance(cloud)
    other_driver.destroy(other)  # a later event, handled after uuid's
    wait_until(lambda: states(cloud, other)[1] == instances.STOPPED, WAIT,
               "the other instance stopped")
    assert states(cloud, uuid) == (power_states.RUNNING, instances.ACTIVE)
    assert service is not None


def test_a_live_lock_keeps_the_sync_off_until_it_is_released(
        cloud, watch, db_engine):
    driver, uuid = running_instance(cloud)
    job_uuid = str(uuidlib.uuid4())
    # A young lock without a job: an operation being posted (live).
    helpers.insert_lock(db_engine, uuid, job_uuid)
    watch()
    driver.destroy(uuid)
    other_driver, other = running_instance(cloud)
    other_driver.destroy(other)
    wait_until(lambda: states(cloud, other)[1] == instances.STOPPED, WAIT,
               "the other instance stopped")
    assert states(cloud, uuid) == (power_states.RUNNING, instances.ACTIVE)
    with api.writer_scope(db_engine) as session:
        session.query(models.InstanceLock).delete()
    # The periodic sync catches the event skipped.
    wait_until(lambda: states(cloud, uuid) == (power_states.SHUTDOWN,
                                               instances.STOPPED),
               WAIT, "the periodic sync")


def test_a_host_that_does_not_answer_is_disabled_and_others_served(
        cloud, watch):
    cloud.add_host("down", uri=DOWN_URI)
    driver, uuid = running_instance(cloud)
    watch()
    down = host_row(cloud, "down")
    assert not down["enabled"]
    assert down["disabled_reason"].startswith(
        "AUTO: hypervisor connection lost: ")
    assert host_row(cloud, "host1")["enabled"]
    driver.destroy(uuid)
    wait_until(lambda: states(cloud, uuid)[1] == instances.STOPPED, WAIT,
               "the instance on the host that answers stopped")


def test_a_host_vmflow_disabled_is_enabled_when_it_answers(cloud, watch):
    with cloud.session() as session:
        hosts.auto_disable_host(session, "host1", "earlier outage")
    assert not host_row(cloud, "host1")["enabled"]
    watch()
    host = host_row(cloud, "host1")
    assert (host["enabled"], host["disabled_reason"]) == (True, None)


def test_a_host_an_operator_disabled_stays_disabled(cloud, watch):
    with cloud.session() as session:
        hosts.set_host_enabled(session, "host1", False, "maintenance")
    driver, uuid = running_instance(cloud)
    watch()
    driver.destroy(uuid)
    # Watched all the same: its power states are kept true.
    wait_until(lambda: states(cloud, uuid)[1] == instances.STOPPED, WAIT,
               "the instance on the disabled host stopped")
    with cloud.session() as session:
        assert not hosts.auto_enable_host(session, "host1")
    host = host_row(cloud, "host1")
    assert (host["enabled"], host["disabled_reason"]) == (False,
                                                          "maintenance")


def test_a_lost_connection_disables_the_host_until_it_answers(
        cloud, watch, caplog):
    service = watch()
    caplog.set_level("WARNING", logger=host_watch.__name__)
    # What the driver's close callback queues (test:///default never
    # loses its connection); the connector then finds it answering.
    service._queue.put((host_watch.CONNECTION_LOST, "host1",
                        "keepalive timed out"))
    wait_until(lambda: "answers again; enabled" in caplog.text, WAIT,
               "host1 enabled again")
    assert ("Host host1 disabled: its hypervisor connection is lost "
            "(keepalive timed out)") in caplog.text
    host = host_row(cloud, "host1")
    assert (host["enabled"], host["disabled_reason"]) == (True, None)


def test_power_sync_rules():
    settle = power_sync.settled_vm_state
    assert settle(instances.ACTIVE, power_states.SHUTDOWN) == \
        instances.STOPPED
    assert settle(instances.ACTIVE, power_states.CRASHED) == \
        instances.STOPPED
    assert settle(instances.PAUSED, power_states.SHUTDOWN) == \
        instances.STOPPED
    for vm_state, power in ((instances.ACTIVE, power_states.PAUSED),
                            (instances.ACTIVE, power_states.NOSTATE),
                            (instances.STOPPED, power_states.RUNNING),
                            (instances.SUSPENDED, power_states.SHUTDOWN)):
        assert settle(vm_state, power) is None


def test_vmflow_engine_starts_with_a_host_down(conf, cloud, tmp_path):
    cloud.add_host("down", uri=DOWN_URI)
    config_file = helpers.runner_config(
        tmp_path / "runner.conf", conf.state_path,
        cloud.engine.url.render_as_string(hide_password=False), "check")
    log_path = tmp_path / "runner.log"
    process = helpers.start_runner(config_file, "--check",
                                   log_path=log_path)
    assert process.wait(timeout=60) == 0, log_path.read_text()
    assert "host down: hypervisor at " + DOWN_URI in log_path.read_text()
    assert "vmflow-engine: error" not in log_path.read_text()


def test_a_stale_report_is_checked_with_the_hypervisor_before_writing(cloud):
    """A sync that read "shutdown" during an operation (a reboot's
    shutdown) and writes after it ended asks the hypervisor again under
    the write lock: the guest runs again, nothing changes."""
    driver, uuid = running_instance(cloud)
    lock_check = power_sync.LockCheck(board=None)  # no lock rows at all
    outcome = power_sync.sync_instance(
        cloud.engine, lock_check, uuid, "host1", power_states.SHUTDOWN,
        lambda: power_sync.current_power_state(driver, uuid))
    assert outcome == power_sync.UNCHANGED
    assert states(cloud, uuid) == (power_states.RUNNING, instances.ACTIVE)
    # Without the second look the stale report would have stopped it.
    outcome = power_sync.sync_instance(
        cloud.engine, lock_check, uuid, "host1", power_states.SHUTDOWN)
    assert outcome == power_sync.WRITTEN
    assert states(cloud, uuid) == (power_states.SHUTDOWN, instances.STOPPED)
