"""The host tasks of resize (vmflow.tasks.resize) on two private
test-driver hypervisors: execute and revert called directly, twice."""
import os
import uuid as uuid_lib

import pytest
from taskflow.types import failure as ft

from tests.functional.test_build_delete_flows import built
from tests.functional.test_resize_flows import (
    add_flavor_small, disk_path, domain_vcpus, has_pattern, power_state,
    sha256, write_pattern)
from tests.unit.tasks.test_migration import set_task_state
from vmflow import exception, instances, migrations
from vmflow.drivers.libvirt import driver as libvirt_driver
from vmflow.tasks import base, domain, migration, resize

GiB = 1024 ** 3


@pytest.fixture
def moving(cloud):
    """An active server on host1 whose disk holds the pattern, and the
    record of its resize to small on host2: a dict of the task
    arguments, and the disk's sha256."""
    cloud.add_host("host2")
    add_flavor_small(cloud)
    uuid = built(cloud)
    write_pattern(disk_path(cloud, "host1", uuid))
    migration_uuid = str(uuid_lib.uuid4())
    migration.CreateMigrationRecord().execute(
        instance_uuid=uuid, migration_uuid=migration_uuid,
        new_flavor="small", migration_type=migrations.RESIZE)
    return {"instance_uuid": uuid, "migration_uuid": migration_uuid,
            "host_name": "host1", "dest_host": "host2",
            "checksum": sha256(disk_path(cloud, "host1", uuid))}


def args(moving, *names):
    return {name: moving[name] for name in names}


def copied(moving):
    """The disk copied to host2 and rebased there."""
    hosts = args(moving, "instance_uuid", "host_name", "dest_host")
    resize.CacheImageOnDestination().execute(
        **args(moving, "instance_uuid", "dest_host"))
    resize.CopyDiskToDestination().execute(**hosts)
    resize.RebaseDiskOnDestination().execute(**hosts)


def test_check_destination_room(cloud, moving, monkeypatch):
    task = resize.CheckDestinationRoom()
    hosts = args(moving, "instance_uuid", "host_name", "dest_host")
    room = task.execute(**hosts)
    assert task.execute(**hosts)["needed"] == room["needed"] > 0
    assert room["free"] >= room["needed"]
    monkeypatch.setattr(libvirt_driver.LibvirtDriver, "free_disk_bytes",
                        lambda self: 1)
    with pytest.raises(exception.ImageBackendError,
                       match="host host2 has 1 bytes free") as caught:
        task.execute(**hosts)
    assert isinstance(caught.value, exception.RescheduleableError)


def test_cache_image_on_destination_twice(cloud, moving):
    task = resize.CacheImageOnDestination()
    where = args(moving, "instance_uuid", "dest_host")
    first = task.execute(**where)["copied"]
    assert [os.path.dirname(path) for path in first] == [
        str(cloud.tmp_path / "host2" / "instances" / "_base")]
    assert task.execute(**where) == {"copied": []}


def test_copy_disk_twice_then_revert_twice(cloud, moving):
    task = resize.CopyDiskToDestination()
    hosts = args(moving, "instance_uuid", "host_name", "dest_host")
    uuid = moving["instance_uuid"]
    first = task.execute(**hosts)
    assert first["sha256"] == moving["checksum"]
    assert task.execute(**hosts)["bytes"] is None  # the copy is kept
    assert sha256(disk_path(cloud, "host2", uuid)) == moving["checksum"]
    task.revert(first, **hosts)
    task.revert(first, **hosts)
    assert not os.path.exists(os.path.dirname(disk_path(cloud, "host2",
                                                        uuid)))
    assert sha256(disk_path(cloud, "host1", uuid)) == moving["checksum"]


def test_a_failed_copy_revert_removes_the_half_made_directory(cloud,
                                                              moving):
    uuid = moving["instance_uuid"]
    half = os.path.dirname(disk_path(cloud, "host2", uuid))
    os.makedirs(half)
    resize.CopyDiskToDestination().revert(
        ft.Failure.from_exception(RuntimeError("cut")),
        **args(moving, "instance_uuid", "host_name", "dest_host"))
    assert not os.path.exists(half)


def test_on_one_host_the_copy_is_a_stash_put_back_on_revert(cloud, moving):
    task = resize.CopyDiskToDestination()
    uuid = moving["instance_uuid"]
    hosts = dict(args(moving, "instance_uuid", "host_name"),
                 dest_host="host1")
    assert task.execute(**hosts) == {"stashed": "stashed"}
    assert task.execute(**hosts) == {"stashed": "exists"}
    stash = disk_path(cloud, "host1", uuid, stash=True)
    assert sha256(stash) == moving["checksum"]
    os.remove(disk_path(cloud, "host1", uuid))  # as if grown, then lost
    task.revert({}, **hosts)
    task.revert({}, **hosts)
    assert sha256(disk_path(cloud, "host1", uuid)) == moving["checksum"]
    assert not os.path.exists(os.path.dirname(stash))


def test_rebase_on_destination_twice(cloud, moving):
    hosts = args(moving, "instance_uuid", "host_name", "dest_host")
    resize.CacheImageOnDestination().execute(
        **args(moving, "instance_uuid", "dest_host"))
    resize.CopyDiskToDestination().execute(**hosts)
    task = resize.RebaseDiskOnDestination()
    assert task.execute(**hosts) == "rebased"
    assert task.execute(**hosts) == "unchanged"
    info = base.get_driver("host2").disk_info(moving["instance_uuid"])
    assert info["backing-filename"].startswith(
        str(cloud.tmp_path / "host2" / "instances" / "_base"))
    assert has_pattern(disk_path(cloud, "host2", moving["instance_uuid"]))
    assert task.execute(**dict(hosts, dest_host="host1")) == "unchanged"


def test_grow_disk_on_destination_twice(cloud, moving):
    copied(moving)
    task = resize.GrowDiskOnDestination()
    where = args(moving, "instance_uuid", "migration_uuid", "dest_host")
    assert task.execute(**where) == "resized"
    assert task.execute(**where) == "unchanged"
    uuid = moving["instance_uuid"]
    assert base.get_driver("host2").disk_info(uuid)["virtual-size"] == (
        2 * GiB)
    assert has_pattern(disk_path(cloud, "host2", uuid))


def new_flavor_xml(cloud, moving, host):
    """The domain XML of the new flavor on ``host`` (the instance record
    moved there, as ApplyNewFlavor does in finish)."""
    set_task_state(cloud, moving["instance_uuid"], instances.RESIZE_FINISH)
    migration.RecordMigrationDestination().execute(
        migration_uuid=moving["migration_uuid"], dest_host=host)
    migration.ApplyNewFlavor().execute(
        **args(moving, "instance_uuid", "migration_uuid"))
    return domain.GenerateDomainXml().execute(
        instance_uuid=moving["instance_uuid"], host_name=host)


def test_define_on_destination_twice_then_revert_twice(cloud, moving):
    copied(moving)
    uuid = moving["instance_uuid"]
    task = resize.DefineDomainOnDestination()
    xml = new_flavor_xml(cloud, moving, "host2")
    task.execute(instance_uuid=uuid, dest_host="host2", domain_xml=xml)
    task.execute(instance_uuid=uuid, dest_host="host2", domain_xml=xml)
    assert domain_vcpus("host2", uuid) == 2
    ends = args(moving, "instance_uuid", "migration_uuid", "host_name",
                "dest_host")
    task.revert(uuid, **ends)
    task.revert(uuid, **ends)
    assert not base.get_driver("host2").domain_exists(uuid)
    assert power_state("host1", uuid) == "running"  # the source's is kept


def test_on_one_host_define_revert_defines_the_old_flavor_again(cloud,
                                                                 moving):
    uuid = moving["instance_uuid"]
    stop_source(uuid)  # execute powered it off
    task = resize.DefineDomainOnDestination()
    xml = new_flavor_xml(cloud, moving, "host1")
    task.execute(instance_uuid=uuid, dest_host="host1", domain_xml=xml)
    assert domain_vcpus("host1", uuid) == 2
    ends = dict(args(moving, "instance_uuid", "migration_uuid", "host_name"),
                dest_host="host1")
    task.revert(uuid, **ends)
    task.revert(uuid, **ends)
    assert domain_vcpus("host1", uuid) == 1
    assert power_state("host1", uuid) == "shutdown"


def stop_source(uuid):
    base.get_driver("host1").destroy(uuid)


def test_start_if_was_active_twice_then_revert_twice(cloud, moving):
    uuid = moving["instance_uuid"]
    stop_source(uuid)
    task = resize.StartDomainIfWasActive()
    where = args(moving, "instance_uuid", "migration_uuid", "host_name")
    first = task.execute(**where)
    task.execute(**where)
    assert power_state("host1", uuid) == "running"
    task.revert(first, **where)
    task.revert(first, **where)
    assert power_state("host1", uuid) == "shutdown"


def test_a_server_that_was_stopped_is_not_started(cloud, moving):
    uuid = moving["instance_uuid"]
    stop_source(uuid)
    with cloud.session() as session:
        migrations.update_migration(session, moving["migration_uuid"],
                                    old_vm_state=instances.STOPPED)
    task = resize.StartDomainIfWasActive()
    where = args(moving, "instance_uuid", "migration_uuid", "host_name")
    assert task.execute(**where) == "kept-off"
    task.revert("kept-off", **where)
    assert power_state("host1", uuid) == "shutdown"
    wait = resize.WaitForDomainIfWasActive()
    assert wait.execute(wait_deadline=0, **where) == "shutdown"


def test_destroy_and_undefine_unless_same_host_twice(cloud, moving):
    uuid = moving["instance_uuid"]
    destroy = resize.DestroyDomainUnlessSameHost()
    undefine = resize.UndefineDomainUnlessSameHost()
    same = {"instance_uuid": uuid, "host_name": "host1",
            "other_host": "host1"}
    assert destroy.execute(**same) == undefine.execute(**same) == "kept"
    assert power_state("host1", uuid) == "running"
    other = dict(same, other_host="host2")
    for _twice in range(2):
        destroy.execute(**other)
        undefine.execute(**other)
    assert not base.get_driver("host1").domain_exists(uuid)
    assert resize.DestroyDomainOnHost().execute(
        instance_uuid=uuid, host_name="host1") == "not-found"


def test_remove_source_and_destination_disks_twice(cloud, moving):
    uuid = moving["instance_uuid"]
    copied(moving)
    hosts = args(moving, "instance_uuid", "host_name", "dest_host")
    for task, host in ((resize.RemoveDestinationDisks(), "host2"),
                       (resize.RemoveSourceDisks(), "host1")):
        task.execute(**hosts)
        task.execute(**hosts)
        assert not base.get_driver(host).instance_dir_exists(uuid)


def test_on_one_host_confirm_drops_the_stash_and_revert_restores_it(
        cloud, moving):
    uuid = moving["instance_uuid"]
    one_host = dict(args(moving, "instance_uuid", "host_name"),
                    dest_host="host1")
    stash = os.path.dirname(disk_path(cloud, "host1", uuid, stash=True))
    resize.CopyDiskToDestination().execute(**one_host)
    resize.RemoveSourceDisks().execute(**one_host)
    resize.RemoveSourceDisks().execute(**one_host)
    assert not os.path.exists(stash)
    assert sha256(disk_path(cloud, "host1", uuid)) == moving["checksum"]
    resize.CopyDiskToDestination().execute(**one_host)
    os.remove(disk_path(cloud, "host1", uuid))
    resize.RemoveDestinationDisks().execute(**one_host)
    resize.RemoveDestinationDisks().execute(**one_host)
    assert not os.path.exists(stash)
    assert sha256(disk_path(cloud, "host1", uuid)) == moving["checksum"]
