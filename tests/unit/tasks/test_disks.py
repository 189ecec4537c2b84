import os

from taskflow.types import failure as ft

from vmflow.tasks.disks import CreateDisks, RemoveDisks


def instance_dir(cloud, uuid, host="host1"):
    return cloud.tmp_path / host / "instances" / uuid


def test_create_disks_twice_and_revert_twice(cloud, uuid):
    task = CreateDisks()
    first = task.execute(instance_uuid=uuid, host_name="host1")
    second = task.execute(instance_uuid=uuid, host_name="host1")
    assert os.path.isfile(first["disk"])
    assert first["disk"] == second["disk"]
    assert first["created"] and second["created"] == []
    task.revert(first, instance_uuid=uuid, host_name="host1")
    task.revert(first, instance_uuid=uuid, host_name="host1")
    assert not instance_dir(cloud, uuid).exists()
    # The cached base image stays for other instances.
    assert os.path.isfile(first["base"])


def test_create_disks_revert_after_its_own_failure_leaves_files(cloud, uuid):
    CreateDisks().execute(instance_uuid=uuid, host_name="host1")
    failure = ft.Failure.from_exception(RuntimeError("boom"))
    CreateDisks().revert(failure, instance_uuid=uuid, host_name="host1")
    assert instance_dir(cloud, uuid).exists()


def test_remove_disks_twice_and_revert_twice(cloud, uuid):
    CreateDisks().execute(instance_uuid=uuid, host_name="host1")
    task = RemoveDisks()
    assert task.execute(instance_uuid=uuid, instance_hosts=["host1"]) == {
        "host1": "removed"}
    assert task.execute(instance_uuid=uuid, instance_hosts=["host1"]) == {
        "host1": "absent"}
    task.revert(None, instance_uuid=uuid, instance_hosts=["host1"])
    task.revert(None, instance_uuid=uuid, instance_hosts=["host1"])
    assert not instance_dir(cloud, uuid).exists()
