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
from vmflow import compute, exception, instances, migrations
from vmflow.drivers.libvirt import guest as libvirt_guest
from vmflow.flows import delete, power, resize
from vmflow.inventory import flavors, quotas
from vmflow.persistence import models
from vmflow.resources import claims
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


# -- what a test looks at -----------------------------------------------------

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


# -- same host ---------------------------------------------------------------

@pytest.fixture
def one_host(cloud, conf):
    """Only host1, the flavor small, resize to the same host allowed."""
    add_flavor_small(cloud)
    conf.set_override("allow_resize_to_same_host", True)
    return cloud


def virtual_size(host_name, uuid):
    return base.get_driver(host_name).disk_info(uuid)["virtual-size"]


def test_a_resize_on_one_host_reverts_then_resizes_and_confirms(one_host):
    cloud = one_host
    uuid, checksum = patterned_server(cloud)
    image_size = virtual_size(SOURCE, uuid)
    stash = disk_path(cloud, SOURCE, uuid, stash=True)
    run, migration_uuid = start_resize(cloud, uuid)
    assert run.state == states.SUCCESS, run.error
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["host"], instance["vcpus"]) == (
        instances.RESIZED, SOURCE, 2)
    assert sha256(stash) == checksum  # the disk as it was, kept aside
    assert virtual_size(SOURCE, uuid) == 2 * 1024**3
    assert (domain_vcpus(SOURCE, uuid), power_state(SOURCE, uuid)) == (
        2, "running")
    assert_audit_ok(cloud)

    run = end_resize(cloud, uuid, migration_uuid,
                     resize.get_revert_resize_flow)
    assert run.state == states.SUCCESS, run.error
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["vcpus"]) == (instances.ACTIVE, 1)
    source_disk = disk_path(cloud, SOURCE, uuid)
    assert sha256(source_disk) == checksum and has_pattern(source_disk)
    assert virtual_size(SOURCE, uuid) == image_size
    assert not os.path.exists(os.path.dirname(stash))
    assert (domain_vcpus(SOURCE, uuid), power_state(SOURCE, uuid)) == (
        1, "running")
    assert claims_of(cloud, uuid) == {SOURCE: (1, 64, 1)}
    assert_audit_ok(cloud)

    run, migration_uuid = start_resize(cloud, uuid)
    assert run.state == states.SUCCESS, run.error
    run = end_resize(cloud, uuid, migration_uuid,
                     resize.get_confirm_resize_flow)
    assert run.state == states.SUCCESS, run.error
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["vcpus"]) == (instances.ACTIVE, 2)
    assert not os.path.exists(os.path.dirname(stash))
    assert has_pattern(source_disk)
    assert virtual_size(SOURCE, uuid) == 2 * 1024**3
    assert (domain_vcpus(SOURCE, uuid), power_state(SOURCE, uuid)) == (
        2, "running")
    assert claims_of(cloud, uuid) == {SOURCE: (2, 128, 2)}
    assert migration_status(cloud, migration_uuid) == migrations.CONFIRMED
    assert_audit_ok(cloud)


def test_without_same_host_resize_one_host_is_no_valid_host(cloud):
    add_flavor_small(cloud)
    uuid, checksum = patterned_server(cloud)
    run, migration_uuid = start_resize(cloud, uuid)
    assert run.state == states.REVERTED
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"], instance["host"],
            instance["vcpus"]) == (instances.ACTIVE, None, SOURCE, 1)
    assert fault(cloud, uuid) == (
        "SelectDestinations failed: no valid host was found "
        "(host1: the server's own host)")
    assert migration_status(cloud, migration_uuid) == migrations.ERROR
    assert sha256(disk_path(cloud, SOURCE, uuid)) == checksum
    assert power_state(SOURCE, uuid) == "running"
    assert_audit_ok(cloud)


# -- cold migration of a stopped server --------------------------------------

def start_migrate(cloud, uuid):
    return start_resize(cloud, uuid, flavor="tiny",
                        factory=resize.get_migrate_flow,
                        migration_type=migrations.MIGRATION)


def test_a_stopped_server_migrates_stopped_and_stays_stopped(two_hosts):
    cloud = two_hosts
    uuid, checksum = patterned_server(cloud, stopped=True)
    for end, home in ((resize.get_revert_resize_flow, SOURCE),
                      (resize.get_confirm_resize_flow, DEST)):
        run, migration_uuid = start_migrate(cloud, uuid)
        assert run.state == states.SUCCESS, run.error
        instance = cloud.instance(uuid)
        assert (instance["vm_state"], instance["host"],
                instance["vcpus"]) == (instances.RESIZED, DEST, 1)
        assert power_state(DEST, uuid) == "shutdown"  # defined, not started
        assert has_pattern(disk_path(cloud, DEST, uuid))
        assert_audit_ok(cloud)

        run = end_resize(cloud, uuid, migration_uuid, end)
        assert run.state == states.SUCCESS, run.error
        instance = cloud.instance(uuid)
        assert (instance["vm_state"], instance["task_state"],
                instance["host"], instance["power_state"]) == (
            instances.STOPPED, None, home, "shutdown")
        assert power_state(home, uuid) == "shutdown"
        assert has_pattern(disk_path(cloud, home, uuid))
        other = DEST if home == SOURCE else SOURCE
        assert leftovers(cloud, uuid, other) == NOTHING_LEFT
        if home == SOURCE:  # the source disk, untouched by the round trip
            assert sha256(disk_path(cloud, SOURCE, uuid)) == checksum
        assert_audit_ok(cloud)


# -- quota --------------------------------------------------------------------

def set_cores_quota(cloud, cores):
    with cloud.session() as session:
        quotas.set_limits(session, "demo", {"cores": cores})


def test_a_resize_beyond_the_cores_quota_fails_holding_nothing(two_hosts):
    cloud = two_hosts
    uuid, checksum = patterned_server(cloud)
    set_cores_quota(cloud, 1)
    run, migration_uuid = start_resize(cloud, uuid)
    assert run.state == states.REVERTED
    assert isinstance(run.error, exception.QuotaExceeded)
    assert run.executed()[-1] == "ReserveQuotaDelta"
    assert fault(cloud, uuid).startswith(
        "ReserveQuotaDelta failed: quota exceeded for cores in project demo")
    assert hold_of(cloud, migration_uuid) is None
    assert hold_of(cloud, uuid)["cores"] == 1
    assert claims_of(cloud, migration_uuid) == {}
    assert leftovers(cloud, uuid, DEST) == NOTHING_LEFT
    assert migration_status(cloud, migration_uuid) == migrations.ERROR
    assert cloud.instance(uuid)["vm_state"] == instances.ACTIVE
    assert sha256(disk_path(cloud, SOURCE, uuid)) == checksum
    assert_audit_ok(cloud)


@pytest.mark.parametrize("end", ["confirm", "revert"])
def test_the_quota_delta_is_held_until_confirm_commits_or_revert_releases(
        two_hosts, end):
    cloud = two_hosts
    uuid = built(cloud)
    run, migration_uuid = start_resize(cloud, uuid)
    assert run.state == states.SUCCESS, run.error
    assert hold_of(cloud, migration_uuid) == {
        "instances": 0, "cores": 1, "ram": 64, "state": "reserved"}
    instance_hold = {"instances": 1, "cores": 1, "ram": 64,
                     "state": "committed"}
    assert hold_of(cloud, uuid) == instance_hold
    factory = {"confirm": resize.get_confirm_resize_flow,
               "revert": resize.get_revert_resize_flow}[end]
    run = end_resize(cloud, uuid, migration_uuid, factory)
    assert run.state == states.SUCCESS, run.error
    assert hold_of(cloud, migration_uuid) is None
    if end == "confirm":
        instance_hold.update(cores=2, ram=128)
    assert hold_of(cloud, uuid) == instance_hold
    assert_audit_ok(cloud)


# -- delete of a resized server -----------------------------------------------

def test_delete_of_a_resized_server_cleans_both_hosts(two_hosts):
    cloud = two_hosts
    uuid = built(cloud)
    run, migration_uuid = start_resize(cloud, uuid)
    assert run.state == states.SUCCESS, run.error
    run = cloud.run(delete.get_delete_flow, uuid)
    assert run.state == states.SUCCESS, run.error
    assert cloud.instance(uuid)["vm_state"] == instances.DELETED
    for host_name in (SOURCE, DEST):
        assert leftovers(cloud, uuid, host_name) == NOTHING_LEFT
    for consumer in (uuid, migration_uuid):
        assert claims_of(cloud, consumer) == {}
        assert hold_of(cloud, consumer) is None
    assert migration_status(cloud, migration_uuid) == migrations.ERROR
    assert_audit_ok(cloud)


# -- what the audit catches ---------------------------------------------------

def claim_problems(cloud):
    report = cloud.audit()
    assert not report["ok"]
    return report["checks"]["claims"]["problems"]


def resized(cloud):
    uuid = built(cloud)
    run, migration_uuid = start_resize(cloud, uuid)
    assert run.state == states.SUCCESS, run.error
    assert_audit_ok(cloud)
    return uuid, migration_uuid


def test_the_audit_reports_a_resize_whose_source_claim_is_gone(two_hosts):
    cloud = two_hosts
    _uuid, migration_uuid = resized(cloud)
    with cloud.session() as session:
        assert claims.drop(session, migration_uuid, SOURCE) == 1
    assert claim_problems(cloud) == [
        f"resize consumer {migration_uuid} has no claim on host {SOURCE}"]


def test_the_audit_reports_a_resize_source_claim_of_the_wrong_size(
        two_hosts):
    cloud = two_hosts
    _uuid, migration_uuid = resized(cloud)
    with cloud.session() as session:
        session.execute(sqlalchemy.update(models.Allocation).where(
            models.Allocation.consumer_uuid == migration_uuid).values(
            vcpus=3))
    assert claim_problems(cloud) == [
        f"claim of {migration_uuid} on host {SOURCE} is "
        "{'vcpus': 3, 'memory_mb': 64, 'disk_gb': 1}, its resize holds "
        "{'vcpus': 1, 'memory_mb': 64, 'disk_gb': 1}"]


def test_the_audit_reports_a_migration_left_migrating(two_hosts):
    cloud = two_hosts
    uuid = built(cloud)
    migration_uuid = str(uuid_lib.uuid4())
    with cloud.session() as session:
        instance = instances.get_instance(session, uuid)
        flavor = session.scalar(sqlalchemy.select(models.Flavor).where(
            models.Flavor.name == "small"))
        migrations.create_migration(session, migration_uuid, instance,
                                    flavor, migrations.RESIZE)
        migrations.update_migration(session, migration_uuid,
                                    status=migrations.MIGRATING,
                                    dest_host=DEST)
    assert (f"migration {migration_uuid} of {uuid} is migrating but no job "
            "runs it (instance is active)") in claim_problems(cloud)


def test_the_door_refuses_a_confirm_after_a_failed_revert(two_hosts, conf):
    cloud = two_hosts
    uuid, migration_uuid = resized(cloud)
    with cloud.session() as session:  # what a revert failing midway left
        instances.update_instance(session, uuid, instances.ANY,
                                  vm_state=instances.ERROR)
        migrations.update_migration(session, migration_uuid,
                                    status=migrations.REVERTING)
    with pytest.raises(exception.MigrationInvalidState,
                       match="is reverting: it cannot become confirming"):
        compute.confirm_resize(uuid, "demo", conf=conf)
    assert migration_status(cloud, migration_uuid) == migrations.REVERTING
    assert cloud.instance(uuid)["task_state"] is None


def test_delete_of_a_server_resized_on_one_host_removes_the_stash(one_host):
    cloud = one_host
    uuid = built(cloud)
    run, migration_uuid = start_resize(cloud, uuid)
    assert run.state == states.SUCCESS, run.error
    stash = os.path.dirname(disk_path(cloud, SOURCE, uuid, stash=True))
    assert os.path.isdir(stash)
    run = cloud.run(delete.get_delete_flow, uuid)
    assert run.state == states.SUCCESS, run.error
    assert leftovers(cloud, uuid, SOURCE) == NOTHING_LEFT
    assert not os.path.exists(stash)
    assert claims_of(cloud, migration_uuid) == {}
    assert hold_of(cloud, migration_uuid) is None
    assert migration_status(cloud, migration_uuid) == migrations.ERROR
    assert_audit_ok(cloud)
