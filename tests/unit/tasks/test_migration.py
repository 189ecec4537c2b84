"""The record-keeping tasks of resize (vmflow.tasks.migration): execute
and revert called directly, twice."""
import uuid as uuid_lib

import pytest
from taskflow.types import failure as ft

from tests.functional.test_build_delete_flows import built
from tests.functional.test_resize_flows import (
    add_flavor_small, claims_of, hold_of)
from vmflow import exception, instances, migrations
from vmflow.inventory import quotas
from vmflow.tasks import migration as tasks


@pytest.fixture
def resizing(cloud):
    """An active server on host1 and the record of its resize to small
    (pre-migrating, no destination yet): ``(instance uuid, migration
    uuid)``."""
    cloud.add_host("host2")
    add_flavor_small(cloud)
    uuid = built(cloud)
    migration_uuid = str(uuid_lib.uuid4())
    tasks.CreateMigrationRecord().execute(
        instance_uuid=uuid, migration_uuid=migration_uuid,
        new_flavor="small", migration_type=migrations.RESIZE)
    return uuid, migration_uuid


def migration(cloud, migration_uuid):
    with cloud.session() as session:
        return migrations.get_migration(session, migration_uuid)


def set_status(cloud, migration_uuid, **values):
    with cloud.session() as session:
        migrations.update_migration(session, migration_uuid, **values)


def set_task_state(cloud, uuid, task_state):
    with cloud.session() as session:
        instances.update_instance(session, uuid, instances.ANY,
                                  task_state=task_state)


def on_host2(cloud, uuid, migration_uuid):
    """Prep done: host2 recorded and claimed by the migration."""
    tasks.RecordMigrationDestination().execute(
        migration_uuid=migration_uuid, dest_host="host2")
    tasks.ClaimResourcesOnDestination().execute(
        migration_uuid=migration_uuid, dest_host="host2")


def test_create_migration_record_twice_then_revert_twice(cloud, resizing):
    uuid, migration_uuid = resizing
    task = tasks.CreateMigrationRecord()
    args = dict(instance_uuid=uuid, migration_uuid=migration_uuid,
                new_flavor="small", migration_type=migrations.RESIZE)
    first = task.execute(**args)
    assert task.execute(**args) == first == {
        "uuid": migration_uuid, "status": migrations.PRE_MIGRATING,
        "source_host": "host1", "dest_host": None}
    record = migration(cloud, migration_uuid)
    assert (record["old_vm_state"], migrations.resources(record, "old"),
            migrations.resources(record, "new")) == (
        instances.ACTIVE, {"vcpus": 1, "memory_mb": 64, "disk_gb": 1},
        {"vcpus": 2, "memory_mb": 128, "disk_gb": 2})
    task.revert(first, migration_uuid=migration_uuid)
    task.revert(first, migration_uuid=migration_uuid)
    assert migration(cloud, migration_uuid)["status"] == migrations.ERROR


def test_create_migration_record_revert_keeps_a_final_status(cloud,
                                                             resizing):
    _uuid, migration_uuid = resizing
    task = tasks.CreateMigrationRecord()
    task.revert(ft.Failure.from_exception(RuntimeError("boom")),
                migration_uuid=migration_uuid)
    assert migration(cloud, migration_uuid)["status"] == (
        migrations.PRE_MIGRATING)
    set_status(cloud, migration_uuid, status=migrations.CONFIRMED)
    task.revert({}, migration_uuid=migration_uuid)
    assert migration(cloud, migration_uuid)["status"] == migrations.CONFIRMED


def test_set_migration_status_twice(cloud, resizing):
    _uuid, migration_uuid = resizing
    task = tasks.SetMigrationStatus(migrations.POST_MIGRATING)
    assert task.name == "SetMigrationPostMigrating"
    task.execute(migration_uuid=migration_uuid)
    assert task.execute(migration_uuid=migration_uuid)["status"] == (
        migrations.POST_MIGRATING)
    task.revert(None, migration_uuid=migration_uuid)  # nothing to undo
    assert migration(cloud, migration_uuid)["status"] == (
        migrations.POST_MIGRATING)


def test_a_confirm_never_starts_on_a_migration_being_reverted(cloud,
                                                             resizing):
    _uuid, migration_uuid = resizing
    set_status(cloud, migration_uuid, status=migrations.REVERTING)
    with pytest.raises(exception.MigrationInvalidState,
                       match="is reverting: it cannot become confirming"):
        tasks.SetMigrationStatus(migrations.CONFIRMING).execute(
            migration_uuid=migration_uuid)
    assert migration(cloud, migration_uuid)["status"] == migrations.REVERTING
    # The revert itself runs again, and an ended one keeps its status.
    tasks.SetMigrationStatus(migrations.REVERTING).execute(
        migration_uuid=migration_uuid)
    set_status(cloud, migration_uuid, status=migrations.REVERTED)
    assert tasks.SetMigrationStatus(migrations.REVERTING).execute(
        migration_uuid=migration_uuid)["status"] == migrations.REVERTED


def test_record_migration_destination_twice(cloud, resizing):
    _uuid, migration_uuid = resizing
    task = tasks.RecordMigrationDestination()
    task.execute(migration_uuid=migration_uuid, dest_host="host2")
    assert task.execute(migration_uuid=migration_uuid,
                        dest_host="host2")["dest_host"] == "host2"


def test_reserve_quota_delta_twice_then_revert_twice(cloud, resizing):
    uuid, migration_uuid = resizing
    task = tasks.ReserveQuotaDelta()
    first = task.execute(instance_uuid=uuid, migration_uuid=migration_uuid)
    assert task.execute(instance_uuid=uuid,
                        migration_uuid=migration_uuid) == first
    assert hold_of(cloud, migration_uuid) == {
        "instances": 0, "cores": 1, "ram": 64, "state": "reserved"}
    task.revert(first, migration_uuid=migration_uuid)
    task.revert(first, migration_uuid=migration_uuid)
    assert hold_of(cloud, migration_uuid) is None
    assert hold_of(cloud, uuid)["cores"] == 1  # the instance's own stays


def test_reserve_quota_delta_beyond_the_quota_holds_nothing(cloud,
                                                           resizing):
    uuid, migration_uuid = resizing
    with cloud.session() as session:
        quotas.set_limits(session, "demo", {"ram": 100})
    with pytest.raises(exception.QuotaExceeded, match="for ram"):
        tasks.ReserveQuotaDelta().execute(instance_uuid=uuid,
                                          migration_uuid=migration_uuid)
    assert hold_of(cloud, migration_uuid) is None


def test_claim_on_destination_twice_then_revert_twice(cloud, resizing):
    _uuid, migration_uuid = resizing
    task = tasks.ClaimResourcesOnDestination()
    first = task.execute(migration_uuid=migration_uuid, dest_host="host2")
    assert task.execute(migration_uuid=migration_uuid,
                        dest_host="host2") == first
    assert claims_of(cloud, migration_uuid) == {"host2": (2, 128, 2)}
    task.revert(first, migration_uuid=migration_uuid, dest_host="host2")
    task.revert(first, migration_uuid=migration_uuid, dest_host="host2")
    assert claims_of(cloud, migration_uuid) == {}


def test_a_full_last_destination_means_no_valid_host(cloud, resizing):
    _uuid, migration_uuid = resizing
    cloud.add_host("tiny-host", memory_mb=100)
    task = tasks.ClaimResourcesOnDestination()
    with pytest.raises(exception.ClaimFailed):
        task.execute(migration_uuid=migration_uuid, dest_host="tiny-host",
                     host_candidates=["tiny-host", "host2"])
    with pytest.raises(exception.NoValidHost) as caught:
        task.execute(migration_uuid=migration_uuid, dest_host="tiny-host",
                     host_candidates=["host2", "tiny-host"])
    assert "host2: already tried" in str(caught.value)
    assert "tiny-host: needs 128 memory_mb" in str(caught.value)
    assert claims_of(cloud, migration_uuid) == {}


def test_move_claims_to_destination_twice_then_revert_twice(cloud,
                                                           resizing):
    uuid, migration_uuid = resizing
    on_host2(cloud, uuid, migration_uuid)
    task = tasks.MoveClaimsToDestination()
    task.execute(instance_uuid=uuid, migration_uuid=migration_uuid)
    assert task.execute(instance_uuid=uuid,
                        migration_uuid=migration_uuid) == "dest"
    assert (claims_of(cloud, uuid), claims_of(cloud, migration_uuid)) == (
        {"host2": (2, 128, 2)}, {"host1": (1, 64, 1)})
    task.revert("dest", instance_uuid=uuid, migration_uuid=migration_uuid)
    task.revert("dest", instance_uuid=uuid, migration_uuid=migration_uuid)
    assert (claims_of(cloud, uuid), claims_of(cloud, migration_uuid)) == (
        {"host1": (1, 64, 1)}, {"host2": (2, 128, 2)})


def test_move_claims_to_source_twice(cloud, resizing):
    uuid, migration_uuid = resizing
    on_host2(cloud, uuid, migration_uuid)
    tasks.MoveClaimsToDestination().execute(instance_uuid=uuid,
                                           migration_uuid=migration_uuid)
    task = tasks.MoveClaimsToSource()
    task.execute(instance_uuid=uuid, migration_uuid=migration_uuid)
    task.execute(instance_uuid=uuid, migration_uuid=migration_uuid)
    assert (claims_of(cloud, uuid), claims_of(cloud, migration_uuid)) == (
        {"host1": (1, 64, 1)}, {})


def test_drop_source_claim_twice(cloud, resizing):
    uuid, migration_uuid = resizing
    on_host2(cloud, uuid, migration_uuid)
    tasks.MoveClaimsToDestination().execute(instance_uuid=uuid,
                                           migration_uuid=migration_uuid)
    task = tasks.DropSourceClaim()
    assert task.execute(migration_uuid=migration_uuid) == {"dropped": 1}
    assert task.execute(migration_uuid=migration_uuid) == {"dropped": 0}
    assert claims_of(cloud, uuid) == {"host2": (2, 128, 2)}


def test_commit_quota_delta_twice(cloud, resizing):
    uuid, migration_uuid = resizing
    tasks.ReserveQuotaDelta().execute(instance_uuid=uuid,
                                      migration_uuid=migration_uuid)
    task = tasks.CommitQuotaDelta()
    task.execute(instance_uuid=uuid, migration_uuid=migration_uuid)
    task.execute(instance_uuid=uuid, migration_uuid=migration_uuid)
    assert hold_of(cloud, uuid) == {"instances": 1, "cores": 2, "ram": 128,
                                    "state": "committed"}
    assert hold_of(cloud, migration_uuid) is None


def test_release_quota_delta_twice(cloud, resizing):
    uuid, migration_uuid = resizing
    tasks.ReserveQuotaDelta().execute(instance_uuid=uuid,
                                      migration_uuid=migration_uuid)
    task = tasks.ReleaseQuotaDelta()
    assert task.execute(migration_uuid=migration_uuid) == "released"
    assert task.execute(migration_uuid=migration_uuid) == "absent"
    assert hold_of(cloud, uuid)["cores"] == 1


def flavor_and_host(cloud, uuid):
    instance = cloud.instance(uuid)
    return instance["host"], instance["vcpus"], instance["memory_mb"]


def test_apply_new_flavor_twice_then_revert_twice(cloud, resizing):
    uuid, migration_uuid = resizing
    on_host2(cloud, uuid, migration_uuid)
    set_task_state(cloud, uuid, instances.RESIZE_FINISH)
    task = tasks.ApplyNewFlavor()
    task.execute(instance_uuid=uuid, migration_uuid=migration_uuid)
    task.execute(instance_uuid=uuid, migration_uuid=migration_uuid)
    assert flavor_and_host(cloud, uuid) == ("host2", 2, 128)
    task.revert({}, instance_uuid=uuid, migration_uuid=migration_uuid)
    task.revert({}, instance_uuid=uuid, migration_uuid=migration_uuid)
    assert flavor_and_host(cloud, uuid) == ("host1", 1, 64)


def test_restore_old_flavor_twice(cloud, resizing):
    uuid, migration_uuid = resizing
    on_host2(cloud, uuid, migration_uuid)
    set_task_state(cloud, uuid, instances.RESIZE_FINISH)
    tasks.ApplyNewFlavor().execute(instance_uuid=uuid,
                                   migration_uuid=migration_uuid)
    set_task_state(cloud, uuid, instances.RESIZE_REVERTING)
    task = tasks.RestoreOldFlavor()
    task.execute(instance_uuid=uuid, migration_uuid=migration_uuid)
    task.execute(instance_uuid=uuid, migration_uuid=migration_uuid)
    assert flavor_and_host(cloud, uuid) == ("host1", 1, 64)


@pytest.mark.parametrize("vm_state, ends", [
    (instances.RESIZED, instances.RESIZED), (None, instances.ACTIVE)])
def test_mark_instance_resize_done_twice(cloud, resizing, vm_state, ends):
    uuid, migration_uuid = resizing
    set_task_state(cloud, uuid, instances.RESIZE_FINISH)
    task = tasks.MarkInstanceResizeDone(instances.RESIZE_FINISH,
                                        vm_state=vm_state)
    task.execute(instance_uuid=uuid, migration_uuid=migration_uuid)
    task.execute(instance_uuid=uuid, migration_uuid=migration_uuid)
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"]) == (ends, None)


def test_end_instance_migrations_twice(cloud, resizing):
    uuid, migration_uuid = resizing
    task = tasks.EndInstanceMigrations()
    assert task.execute(instance_uuid=uuid) == [migration_uuid]
    assert task.execute(instance_uuid=uuid) == []
    assert migration(cloud, migration_uuid)["status"] == migrations.ERROR
