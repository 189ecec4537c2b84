"""Resize, cold migration, confirm and revert as whole flows on two
private test-driver hypervisors and SQLite (both hosts on this machine:
their disks are copied with the local runner, the same code path as SSH).
"""
import hashlib
import os
import subprocess
import uuid as uuid_lib

import pytest
import sqlalchemy
from lxml import etree
from taskflow import states

from tests.cloud import cloud, image_file  # noqa: F401 (fixtures)
from tests.functional.test_build_delete_flows import (
    NOTHING_LEFT, assert_audit_ok, built, fault, leftovers)
from vmflow import exception, instances, migrations
from vmflow.drivers.libvirt import guest as libvirt_guest
from vmflow.flows import constants, power, resize
from vmflow.inventory import flavors
from vmflow.persistence import models
from vmflow.tasks import base

SOURCE, DEST = "host1", "host2"
PATTERN = "0xab"


def add_flavor_small(cloud):
    with cloud.session() as session:
        flavors.create_flavor(session, "small", 2, 128, 2)


@pytest.fixture
def two_hosts(cloud):
    cloud.add_host(DEST)
    add_flavor_small(cloud)
    return cloud


# -- what a test looks at ------------------------------------------------------

def disk_path(cloud, host_name, uuid, stash=False):
    folder = uuid + ("_resize" if stash else "")
    return os.path.join(cloud.tmp_path, host_name, "instances", folder,
                        "disk")


def write_pattern(path):
    """Write 64 KiB of PATTERN at the start of the disk's guest view."""
    subprocess.run(["qemu-io", "-c", f"write -P {PATTERN} 0 64k", path],
                   check=True, capture_output=True)


def has_pattern(path):
    """True when the disk (read-only) starts with 64 KiB of PATTERN."""
    return subprocess.run(
        ["qemu-io", "-r", "-c", f"read -P {PATTERN} 0 64k", path],
        capture_output=True).returncode == 0


def sha256(path):
    with open(path, "rb") as disk:
        return hashlib.sha256(disk.read()).hexdigest()


def run_power(cloud, action, uuid):
    run = cloud.run(power.FACTORIES[action], uuid,
                    host_name=cloud.instance(uuid)["host"])
    assert run.state == states.SUCCESS, run.error
    return run


def patterned_server(cloud, stopped=False, name="vm1"):
    """A built server (stopped, if asked) whose disk holds PATTERN:
    ``(uuid, sha256 of the disk file)``."""
    uuid = built(cloud, name)
    if stopped:
        run_power(cloud, "stop", uuid)
    path = disk_path(cloud, SOURCE, uuid)
    write_pattern(path)
    return uuid, sha256(path)


def claims_of(cloud, consumer):
    """``{host: (vcpus, memory_mb, disk_gb)}`` claimed by ``consumer``."""
    with cloud.session() as session:
        rows = session.execute(
            sqlalchemy.select(models.Host.name, models.Allocation.vcpus,
                              models.Allocation.memory_mb,
                              models.Allocation.disk_gb)
            .join(models.Host, models.Host.id == models.Allocation.host_id)
            .where(models.Allocation.consumer_uuid == consumer))
        return {host: tuple(resources) for host, *resources in rows}


def hold_of(cloud, consumer):
    """The consumer's quota hold ``{instances, cores, ram, state}`` or
    None."""
    with cloud.session() as session:
        hold = session.scalar(sqlalchemy.select(models.QuotaHold).where(
            models.QuotaHold.consumer_uuid == consumer))
        return None if hold is None else {
            "instances": hold.instances, "cores": hold.cores,
            "ram": hold.ram, "state": hold.state}


def domain_vcpus(host_name, uuid):
    guest = libvirt_guest.lookup(base.get_driver(host_name).connection,
                                 uuid)
    return int(etree.fromstring(guest.xml()).findtext("vcpu"))


def power_state(host_name, uuid):
    return base.get_driver(host_name).get_power_state(uuid)


def migration_or_none(cloud, migration_uuid):
    with cloud.session() as session:
        try:
            return migrations.get_migration(session, migration_uuid)
        except exception.NotFound:
            return None


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
