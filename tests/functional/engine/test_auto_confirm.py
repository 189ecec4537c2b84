"""RESIZED servers confirmed by the runner after ``[DEFAULT]
resize_confirm_window`` (:mod:`vmflow.engine.auto_confirm`): the
service's round on two private test-driver hypervisors and SQLite, and a
real ``vmflow-engine`` that confirms a resize it ran by itself.

The window is crossed by writing the migration's ``updated_at`` back in
time, not by waiting."""
import datetime
import logging

import pytest
import sqlalchemy

from tests.cloud import cloud, image_file  # noqa: F401 (fixtures)
from tests.conftest import wait_until, write_config
from tests.functional.engine import helpers
from tests.functional.test_build_delete_flows import (
    assert_audit_ok, built, leftovers)
from tests.functional.test_resize_flows import (  # noqa: F401 (fixture)
    SOURCE, migration_status, start_resize, two_hosts)
from vmflow import compute, instances, migrations
from vmflow.engine import auto_confirm, operations, services
from vmflow.persistence import models

HOUR = datetime.timedelta(hours=1)
NOTHING_LEFT = {"claim": False, "domain": False, "disks": False}


def test_auto_confirm_is_a_runner_service():
    assert auto_confirm.AutoConfirmService in services.SERVICE_FACTORIES


@pytest.fixture
def resized(two_hosts):
    """A server resized from host1 to host2: (its uuid, its migration)."""
    cloud = two_hosts
    uuid = built(cloud)
    run, migration_uuid = start_resize(cloud, uuid)
    assert run.error is None
    assert cloud.instance(uuid)["vm_state"] == instances.RESIZED
    return uuid, migration_uuid


def finished_ago(cloud, migration_uuid, age):
    with helpers.writer(cloud.engine) as session:
        session.execute(sqlalchemy.update(models.Migration).where(
            models.Migration.uuid == migration_uuid).values(
                updated_at=models.utcnow() - age))


def counts(cloud):
    """Rows of what posting an operation writes."""
    return {model.__name__: len(helpers.rows(cloud.engine, model))
            for model in (models.Job, models.InstanceLock,
                          models.InstanceAction)}


def service(conf, window):
    conf.set_override("resize_confirm_window", window)
    return auto_confirm.AutoConfirmService(conf, "test-runner")


def test_a_resize_finished_for_the_window_is_confirmed(
        two_hosts, resized, conf, caplog):
    cloud = two_hosts
    uuid, migration_uuid = resized
    auto = service(conf, 3600)
    before = counts(cloud)
    finished_ago(cloud, migration_uuid, HOUR / 2)
    assert auto.run_once() == auto_confirm.Round()  # not yet
    assert counts(cloud) == before

    finished_ago(cloud, migration_uuid, HOUR)
    caplog.set_level(logging.INFO, logger=auto_confirm.__name__)
    done = auto.run_once()
    assert list(done.confirmed) == [uuid] and done.skipped == []
    said = [record.getMessage() for record in caplog.records
            if record.name == auto_confirm.__name__]
    assert len(said) == 1 and said[0].startswith(
        f"Runner test-runner posted the confirm of resized server vm1 "
        f"({uuid}), job {done.confirmed[uuid]}: its migration "
        f"{migration_uuid} finished 3600 s ago")
    # Posted as 'server resize confirm' posts it: the lock is held, so a
    # second round (another runner's) posts nothing more.
    assert auto.run_once() == auto_confirm.Round(skipped=[uuid])

    status = operations.wait_for_operation(done.confirmed[uuid], conf)
    assert status.succeeded, status.message
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"],
            instance["host"]) == (instances.ACTIVE, None, "host2")
    assert migration_status(cloud, migration_uuid) == migrations.CONFIRMED
    assert leftovers(cloud, uuid, SOURCE) == NOTHING_LEFT
    assert_audit_ok(cloud)
    assert auto.run_once() == auto_confirm.Round()  # nothing due any more


def test_a_busy_server_is_skipped_and_confirmed_the_next_period(
        two_hosts, resized, conf):
    cloud = two_hosts
    uuid, migration_uuid = resized
    finished_ago(cloud, migration_uuid, HOUR)
    auto = service(conf, 60)
    # Another operation is being posted (its lock is fresh).
    helpers.insert_lock(cloud.engine, uuid, "5b0c8a0e-0000-4000-8000-"
                        "0000000000b5")
    before = counts(cloud)
    assert auto.run_once() == auto_confirm.Round(skipped=[uuid])
    assert counts(cloud) == before

    # The other operation ends: its lock goes.
    with helpers.writer(cloud.engine) as session:
        session.execute(sqlalchemy.delete(models.InstanceLock))
    done = auto.run_once()
    assert list(done.confirmed) == [uuid]
    assert operations.wait_for_operation(done.confirmed[uuid],
                                         conf).succeeded
    assert migration_status(cloud, migration_uuid) == migrations.CONFIRMED


def test_a_window_of_0_records_nothing(two_hosts, resized, conf):
    cloud = two_hosts
    uuid, migration_uuid = resized
    finished_ago(cloud, migration_uuid, 1000 * HOUR)
    auto = service(conf, 0)
    before = counts(cloud)
    auto.start()
    try:
        assert auto.run_once() == auto_confirm.Round()
    finally:
        auto.stop()
    assert counts(cloud) == before
    assert cloud.instance(uuid)["vm_state"] == instances.RESIZED
    assert migration_status(cloud, migration_uuid) == migrations.FINISHED


def test_only_finished_resizes_of_idle_resized_servers_are_due(
        two_hosts, resized, conf):
    cloud = two_hosts
    uuid, migration_uuid = resized
    finished_ago(cloud, migration_uuid, HOUR)
    with cloud.session() as session:
        assert [row[0] for row in auto_confirm.find_due(session, 60)] == [
            uuid]
    for column, value in (("task_state", instances.RESIZE_CONFIRMING),
                          ("vm_state", instances.ERROR)):
        with helpers.writer(cloud.engine) as session:
            session.execute(sqlalchemy.update(models.Instance).where(
                models.Instance.uuid == uuid).values(**{column: value}))
        with cloud.session() as session:
            assert auto_confirm.find_due(session, 60) == [], column


def test_a_real_runner_confirms_a_resize_it_ran_by_itself(
        two_hosts, conf, tmp_path):
    """``vmflow-engine`` with a window of 1 s runs a build and a resize
    posted here, then confirms the resize by itself."""
    cloud = two_hosts
    config_file = write_config(tmp_path / "runner.conf", {
        "DEFAULT": {"state_path": conf.state_path,
                    "resize_confirm_window": 1},
        "database": {"connection": cloud.engine.url.render_as_string(
            hide_password=False)},
        "jobboard": {"namespace": conf.jobboard.namespace},
        "libvirt": {"virt_type": "qemu", "wait_running_seconds": 1,
                    "poll_interval_seconds": 0.05,
                    "shutdown_timeout_seconds": 1}})
    log_path = tmp_path / "runner.log"
    runner = helpers.start_runner(config_file, name="auto",
                                  log_path=log_path)
    try:
        for post in (lambda: compute.create_server("vm1", "tiny", "tiny",
                                                   conf=conf),
                     lambda: compute.resize_server("vm1", "small",
                                                   conf=conf)):
            status = operations.wait_for_operation(
                post().job_uuid, conf, run_inline=False, timeout=120)
            assert status.succeeded, status.message
        [migration] = helpers.rows(cloud.engine, models.Migration)
        # The migration is CONFIRMED one step before the confirm's last
        # (the instance's): wait for both, the runner stops after.
        wait_until(lambda: migration_status(cloud, migration.uuid)
                   == migrations.CONFIRMED and cloud.instance(
                       migration.instance_uuid)["task_state"] is None, 60,
                   "the runner to confirm the resize")
    finally:
        assert helpers.stop_process(runner) == 0, log_path.read_text()
    instance = cloud.instance(migration.instance_uuid)
    assert (instance["vm_state"], instance["task_state"],
            instance["vcpus"]) == (instances.ACTIVE, None, 2)
    posted = [line for line in log_path.read_text().splitlines()
              if "posted the confirm of resized server vm1" in line]
    assert len(posted) == 1, log_path.read_text()
