"""A fault injected at every task of resize, cold migration, confirm and
revert (the task lists come from the flows), on two or three private
test-driver hypervisors and SQLite.

A failed resize or migration gives the server back where it was: on the
source with its old flavor and vm_state, no task_state, a fault naming the
step, its disk unchanged (byte for byte, and the pattern written into it),
running again if it ran; the migration ``error``; nothing on the
destination (no claim, domain or disk directory) and no quota delta held.
Confirm and revert only go forward: a fault puts the server in ERROR, and
running the same flow again finishes it.
"""
import os

import pytest
from taskflow import states

from tests.cloud import cloud, image_file  # noqa: F401 (fixtures)
from tests.functional.test_build_delete_flows import (
    NOTHING_LEFT, assert_audit_ok, fault, leftovers)
from tests.functional.test_resize_flows import (
    DEST, SOURCE, add_flavor_small, claims_of, disk_path, domain_vcpus,
    end_resize, has_pattern, hold_of, migration_or_none, patterned_server,
    power_state, sha256, start_resize, two_hosts)  # noqa: F401 (fixture)
from vmflow import instances, migrations
from vmflow.flows import constants, find_subflow, iter_tasks, resize
from vmflow.tasks import hooks

RESIZE_TASKS = [task.name for task in iter_tasks(resize.get_resize_flow())]
MIGRATE_TASKS = [task.name for task in iter_tasks(resize.get_migrate_flow())]
CONFIRM_TASKS = [task.name for task in
                 iter_tasks(resize.get_confirm_resize_flow())]
REVERT_TASKS = [task.name for task in
                iter_tasks(resize.get_revert_resize_flow())]
PREP_ON_HOST_TASKS = [task.name for task in iter_tasks(find_subflow(
    resize.get_resize_flow(), constants.PREP_ON_HOST_FLOW))]
# A fault before the migration record is written leaves no record.
BEFORE_THE_RECORD = ("RestoreInstanceStateOnRevert", "MarkInstanceResizePrep",
                     "CreateMigrationRecord")
KEPT = ("vm_state", "task_state", "host", "flavor_id", "vcpus", "memory_mb",
        "disk_gb", "power_state")


def kept(instance):
    return {key: instance[key] for key in KEPT}


def test_the_task_lists_come_from_the_flows():
    assert RESIZE_TASKS == MIGRATE_TASKS
    assert RESIZE_TASKS[:8] == [
        "RestoreInstanceStateOnRevert", "MarkInstanceResizePrep",
        "CreateMigrationRecord", "ReserveQuotaDelta", "SelectDestinations",
        "ClaimResourcesOnDestination", "CheckDestinationRoom",
        "RecordMigrationDestination"]
    assert PREP_ON_HOST_TASKS == RESIZE_TASKS[5:8]
    assert {"CopyDiskToDestination", "DefineDomainOnDestination",
            "StartDomainIfWasActive", "MarkInstanceResized"} < set(
        RESIZE_TASKS)
    assert CONFIRM_TASKS[0] == REVERT_TASKS[0] == "MarkInstanceErrorOnRevert"
    assert len(CONFIRM_TASKS) == 10 and len(REVERT_TASKS) == 15


def tried_hosts(run):
    """The destinations prep-on-host ran on, in order."""
    return [value for value, _failures in
            run.engine.storage.get_retry_history("RetryOnNextHost")]


def assert_back_on_source(cloud, run, uuid, migration_uuid, task, before,
                          checksum, destinations=(DEST,)):
    """Everything a failed resize or migration must leave (see the module
    doc); ``before`` is :func:`kept` of the instance before it."""
    assert run.state == states.REVERTED, run.error
    assert kept(cloud.instance(uuid)) == before
    assert fault(cloud, uuid) == (
        f"{task} failed: injected fault in {task} execute")
    migration = migration_or_none(cloud, migration_uuid)
    if task in BEFORE_THE_RECORD:
        assert migration is None
    else:
        assert migration["status"] == migrations.ERROR
    for host_name in destinations:
        assert leftovers(cloud, uuid, host_name) == NOTHING_LEFT
    assert claims_of(cloud, migration_uuid) == {}
    assert claims_of(cloud, uuid) == {SOURCE: (1, 64, 1)}
    assert hold_of(cloud, migration_uuid) is None
    source_disk = disk_path(cloud, SOURCE, uuid)
    assert sha256(source_disk) == checksum
    assert has_pattern(source_disk)
    assert domain_vcpus(SOURCE, uuid) == 1
    assert power_state(SOURCE, uuid) == before["power_state"]
    assert_audit_ok(cloud)


@pytest.mark.parametrize("task", RESIZE_TASKS)
def test_a_fault_at_any_resize_task_gives_the_server_back_on_its_source(
        two_hosts, monkeypatch, task):
    cloud = two_hosts
    uuid, checksum = patterned_server(cloud)
    before = kept(cloud.instance(uuid))
    assert before["power_state"] == "running"
    monkeypatch.setenv(hooks.FAIL_AT, task)
    run, migration_uuid = start_resize(cloud, uuid)
    assert_back_on_source(cloud, run, uuid, migration_uuid, task, before,
                          checksum)
    if task in PREP_ON_HOST_TASKS:  # one try, on the only destination
        assert run.executed("ClaimResourcesOnDestination") == [
            "ClaimResourcesOnDestination"]


@pytest.mark.parametrize("task", MIGRATE_TASKS)
def test_a_fault_at_any_migrate_task_of_a_stopped_server(
        two_hosts, monkeypatch, task):
    cloud = two_hosts
    uuid, checksum = patterned_server(cloud, stopped=True)
    before = kept(cloud.instance(uuid))
    assert (before["vm_state"], before["power_state"]) == (
        instances.STOPPED, "shutdown")
    monkeypatch.setenv(hooks.FAIL_AT, task)
    run, migration_uuid = start_resize(
        cloud, uuid, flavor="tiny", factory=resize.get_migrate_flow,
        migration_type=migrations.MIGRATION)
    assert_back_on_source(cloud, run, uuid, migration_uuid, task, before,
                          checksum)


@pytest.mark.parametrize("task", RESIZE_TASKS)
def test_a_fault_at_any_task_of_a_resize_on_one_host(cloud, conf,
                                                     monkeypatch, task):
    add_flavor_small(cloud)
    conf.set_override("allow_resize_to_same_host", True)
    uuid, checksum = patterned_server(cloud)
    before = kept(cloud.instance(uuid))
    monkeypatch.setenv(hooks.FAIL_AT, task)
    run, migration_uuid = start_resize(cloud, uuid)
    assert_back_on_source(cloud, run, uuid, migration_uuid, task, before,
                          checksum, destinations=())
    stash = disk_path(cloud, SOURCE, uuid, stash=True)
    assert not os.path.exists(os.path.dirname(stash))


@pytest.mark.parametrize("task", PREP_ON_HOST_TASKS)
def test_a_fault_on_the_first_destination_moves_the_resize_to_the_next(
        cloud, monkeypatch, task):
    uuid, _checksum = patterned_server(cloud)  # on host1, the only host
    # host2 has the most free memory: the scheduler's first choice.
    cloud.add_host("host2", memory_mb=8192)
    cloud.add_host("host3")
    add_flavor_small(cloud)
    monkeypatch.setenv(hooks.FAIL_AT, f"{task}@host2")
    run, migration_uuid = start_resize(cloud, uuid)
    assert run.state == states.SUCCESS, run.error
    assert run.engine.storage.get("SelectDestinations") == ["host2",
                                                            "host3"]
    assert tried_hosts(run) == ["host2", "host3"]
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["host"], instance["vcpus"]) == (
        instances.RESIZED, "host3", 2)
    assert migration_or_none(cloud, migration_uuid)["dest_host"] == "host3"
    assert leftovers(cloud, uuid, "host2") == NOTHING_LEFT
    assert claims_of(cloud, migration_uuid) == {SOURCE: (1, 64, 1)}
    assert claims_of(cloud, uuid) == {"host3": (2, 128, 2)}
    assert has_pattern(disk_path(cloud, "host3", uuid))
    assert_audit_ok(cloud)


def resized_server(cloud):
    uuid, checksum = patterned_server(cloud)
    run, migration_uuid = start_resize(cloud, uuid)
    assert run.state == states.SUCCESS, run.error
    return uuid, migration_uuid, checksum


def fail_then_finish(cloud, monkeypatch, uuid, migration_uuid, factory,
                     task):
    """Run ``factory`` with a fault at ``task``: ERROR with a fault; then
    again without: it finishes."""
    monkeypatch.setenv(hooks.FAIL_AT, task)
    run = end_resize(cloud, uuid, migration_uuid, factory)
    assert run.state == states.REVERTED, run.error
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"]) == (
        instances.ERROR, None)
    assert fault(cloud, uuid) == (
        f"{task} failed: injected fault in {task} execute")
    monkeypatch.delenv(hooks.FAIL_AT)
    # The door finds the migration again, also when the failed step came
    # after the migration's own end (confirmed/reverted).
    status = (migrations.CONFIRMING
              if factory is resize.get_confirm_resize_flow
              else migrations.REVERTING)
    with cloud.session() as session:
        found = migrations.to_end(session, instance, status)
    migrations.check_can_end(found, status)
    assert found["uuid"] == migration_uuid
    run = end_resize(cloud, uuid, migration_uuid, factory)
    assert run.state == states.SUCCESS, run.error
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"],
            instance["power_state"]) == (instances.ACTIVE, None, "running")
    return instance


@pytest.mark.parametrize("task", CONFIRM_TASKS)
def test_a_fault_at_any_confirm_task_then_confirm_again(
        two_hosts, monkeypatch, task):
    cloud = two_hosts
    uuid, migration_uuid, _checksum = resized_server(cloud)
    instance = fail_then_finish(cloud, monkeypatch, uuid, migration_uuid,
                                resize.get_confirm_resize_flow, task)
    assert (instance["host"], instance["vcpus"]) == (DEST, 2)
    assert power_state(DEST, uuid) == "running"
    assert has_pattern(disk_path(cloud, DEST, uuid))
    assert leftovers(cloud, uuid, SOURCE) == NOTHING_LEFT
    assert claims_of(cloud, migration_uuid) == {}
    assert hold_of(cloud, migration_uuid) is None
    assert migration_or_none(cloud, migration_uuid)["status"] == (
        migrations.CONFIRMED)
    assert_audit_ok(cloud)


@pytest.mark.parametrize("task", REVERT_TASKS)
def test_a_fault_at_any_revert_task_then_revert_again(
        two_hosts, monkeypatch, task):
    cloud = two_hosts
    uuid, migration_uuid, checksum = resized_server(cloud)
    instance = fail_then_finish(cloud, monkeypatch, uuid, migration_uuid,
                                resize.get_revert_resize_flow, task)
    assert (instance["host"], instance["vcpus"]) == (SOURCE, 1)
    assert power_state(SOURCE, uuid) == "running"
    assert domain_vcpus(SOURCE, uuid) == 1
    assert sha256(disk_path(cloud, SOURCE, uuid)) == checksum
    assert leftovers(cloud, uuid, DEST) == NOTHING_LEFT
    assert claims_of(cloud, migration_uuid) == {}
    assert claims_of(cloud, uuid) == {SOURCE: (1, 64, 1)}
    assert hold_of(cloud, migration_uuid) is None
    assert migration_or_none(cloud, migration_uuid)["status"] == (
        migrations.REVERTED)
    assert_audit_ok(cloud)
