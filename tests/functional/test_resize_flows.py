"""Resize, cold migration, confirm and revert as whole flows on two
private test-driver hypervisors and SQLite (both hosts on this machine:
their disks are copied with the local runner, the same code path as SSH).
"""
import uuid as uuid_lib

import pytest
from taskflow import states

from tests.cloud import cloud, image_file  # noqa: F401 (fixtures)
from tests.functional.test_build_delete_flows import (
    assert_audit_ok, built, fault, leftovers)
from vmflow import instances, migrations
from vmflow.flows import constants, resize
from vmflow.inventory import flavors
from vmflow.tasks import base

SOURCE, DEST = "host1", "host2"


@pytest.fixture
def two_hosts(cloud):
    cloud.add_host(DEST)
    with cloud.session() as session:
        flavors.create_flavor(session, "small", 2, 128, 2)
    return cloud


def start_resize(cloud, uuid, flavor="small",
                 factory=resize.get_resize_flow,
                 migration_type=migrations.RESIZE, **store):
    migration_uuid = str(uuid_lib.uuid4())
    run = cloud.run(factory, uuid, host_name=cloud.instance(uuid)["host"],
                    migration_uuid=migration_uuid, new_flavor=flavor,
                    migration_type=migration_type, **store)
    return run, migration_uuid


def end_resize(cloud, uuid, migration_uuid, factory):
    with cloud.session() as session:
        migration = migrations.get_migration(session, migration_uuid)
    return cloud.run(factory, uuid, host_name=migration["source_host"],
                     dest_host=migration["dest_host"],
                     migration_uuid=migration_uuid)


def migration_status(cloud, migration_uuid):
    with cloud.session() as session:
        return migrations.get_migration(session, migration_uuid)["status"]


def test_resize_then_revert_then_resize_and_confirm(two_hosts):
    cloud = two_hosts
    uuid = built(cloud)
    assert cloud.instance(uuid)["host"] == SOURCE
    run, migration_uuid = start_resize(cloud, uuid)
    assert run.state == states.SUCCESS, run.error
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"], instance["host"],
            instance["vcpus"], instance["memory_mb"]) == (
        instances.RESIZED, None, DEST, 2, 128)
    assert migration_status(cloud, migration_uuid) == migrations.FINISHED
    assert base.get_driver(DEST).disk_info(uuid)["virtual-size"] == 2 * 1024**3
    assert leftovers(cloud, uuid, SOURCE)["domain"]
    assert_audit_ok(cloud)

    run = end_resize(cloud, uuid, migration_uuid,
                     resize.get_revert_resize_flow)
    assert run.state == states.SUCCESS, run.error
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["host"], instance["vcpus"]) == (
        instances.ACTIVE, SOURCE, 1)
    assert leftovers(cloud, uuid, DEST) == {"claim": False, "domain": False,
                                            "disks": False}
    assert migration_status(cloud, migration_uuid) == migrations.REVERTED
    assert_audit_ok(cloud)

    run, migration_uuid = start_resize(cloud, uuid)
    assert run.state == states.SUCCESS, run.error
    run = end_resize(cloud, uuid, migration_uuid,
                     resize.get_confirm_resize_flow)
    assert run.state == states.SUCCESS, run.error
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["host"], instance["vcpus"]) == (
        instances.ACTIVE, DEST, 2)
    assert leftovers(cloud, uuid, SOURCE) == {
        "claim": False, "domain": False, "disks": False}
    assert migration_status(cloud, migration_uuid) == migrations.CONFIRMED
    assert_audit_ok(cloud)
