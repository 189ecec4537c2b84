"""Resize and cold migration between two real hypervisors, the
destination's disk operations over a real sshd (issue 10), on the bed of
:mod:`tests.integration.resizebed`: host A local, host B over SSH.

One tiny real guest is shared by every test (built once, with a known
pattern written into its disk while it was stopped). Operations are
requested as users do, through :mod:`vmflow.compute`, and waited for with
:func:`vmflow.engine.operations.wait_for_operation` (run in this process:
no runner is alive). ``vmflow audit`` must pass after every step.

* resize to a bigger flavor on B (runs there with the new vCPUs and memory,
  per libvirt on B; the pattern is on its disk, which has the new size),
  revert (back on A, old flavor, running, nothing left on B), resize again
  and confirm (nothing left on A), then a cold migration of the stopped
  server back to A (it stays stopped) and its confirm;
* SSH failures of a cold migration to B: a changed host key, a wrong key
  file, an unreachable SSH port, a destination disk too full for the disk
  and one too full for the image (both refused in prep, before the guest
  is touched): each leaves the guest running on A, nothing on B, the
  migration in error and a one-line fault naming host B and the cause.
"""
import contextlib
import os
import socket
import subprocess

import libvirt
import pytest
from lxml import etree

from tests.integration.resizebed import (  # noqa: F401 (fixtures)
    FLAVORS, HOST_A, HOST_B, resize_bed, resize_cloud)
from vmflow import compute, instances, migrations

GiB = 1024 ** 3
NOTHING = {"claim": False, "domain": False, "files": False}


def assert_server(bed, uuid, vm_state, host, flavor):
    vcpus, memory_mb, disk_gb = FLAVORS[flavor]
    instance = bed.instance(uuid)
    assert (instance["vm_state"], instance["task_state"], instance["host"],
            instance["vcpus"], instance["memory_mb"],
            instance["disk_gb"]) == (vm_state, None, host, vcpus, memory_mb,
                                     disk_gb), instance


def assert_runs_with(bed, host, uuid, flavor):
    """libvirt on ``host`` runs the domain with the flavor's vCPUs and
    memory (domain info and the XML it was defined with)."""
    vcpus, memory_mb, _disk_gb = FLAVORS[flavor]
    assert bed.domain_state(host, uuid) == libvirt.VIR_DOMAIN_RUNNING
    assert bed.domain_resources(host, uuid) == (vcpus, memory_mb)
    xml = etree.fromstring(bed.domain_xml(host, uuid))
    memory = xml.find("memory")
    assert (memory.get("unit"), int(memory.text)) == ("KiB",
                                                      memory_mb * 1024)
    assert int(xml.find("vcpu").text) == vcpus


def assert_disk(bed, host, uuid, flavor):
    assert bed.has_pattern(host, uuid)
    assert bed.virtual_size(host, uuid) == FLAVORS[flavor][2] * GiB


def last_migration(bed, uuid):
    return bed.migrations(uuid)[-1]


def test_resize_revert_resize_confirm_and_cold_migrate_stopped(
        resize_cloud):
    bed = resize_cloud
    uuid = bed.ensure_guest()
    assert_server(bed, uuid, instances.ACTIVE, HOST_A, "tiny")
    assert_disk(bed, HOST_A, uuid, "tiny")
    bed.assert_audit_ok()
    boots_a = bed.boots(HOST_A, uuid)

    # 1. Resize to "big": on host B, running with the new flavor.
    bed.succeed(compute.resize_server(uuid, "big"))
    assert_server(bed, uuid, instances.RESIZED, HOST_B, "big")
    assert last_migration(bed, uuid)["status"] == migrations.FINISHED
    bed.wait_boots(HOST_B, uuid, 1)
    assert_runs_with(bed, HOST_B, uuid, "big")
    assert_disk(bed, HOST_B, uuid, "big")
    # The source is kept, shut off, until confirm or revert.
    assert bed.domain_state(HOST_A, uuid) == libvirt.VIR_DOMAIN_SHUTOFF
    assert_disk(bed, HOST_A, uuid, "tiny")
    migration_uuid = last_migration(bed, uuid)["uuid"]
    assert bed.claims(HOST_B) == {uuid: FLAVORS["big"]}
    assert bed.claims(HOST_A) == {migration_uuid: FLAVORS["tiny"]}
    bed.assert_audit_ok()

    # 2. Revert: back on A with the old flavor, nothing left on B.
    bed.succeed(compute.revert_resize(uuid))
    assert_server(bed, uuid, instances.ACTIVE, HOST_A, "tiny")
    assert last_migration(bed, uuid)["status"] == migrations.REVERTED
    bed.wait_boots(HOST_A, uuid, boots_a + 1)
    assert_runs_with(bed, HOST_A, uuid, "tiny")
    assert_disk(bed, HOST_A, uuid, "tiny")
    assert bed.leftovers(HOST_B, uuid) == NOTHING
    assert bed.claims(HOST_A) == {uuid: FLAVORS["tiny"]}
    bed.assert_audit_ok()

    # 3. Resize again and confirm: every source file and claim gone.
    bed.succeed(compute.resize_server(uuid, "big"))
    bed.wait_boots(HOST_B, uuid, 1)
    bed.assert_audit_ok()
    bed.succeed(compute.confirm_resize(uuid))
    assert_server(bed, uuid, instances.ACTIVE, HOST_B, "big")
    assert last_migration(bed, uuid)["status"] == migrations.CONFIRMED
    assert_runs_with(bed, HOST_B, uuid, "big")
    assert_disk(bed, HOST_B, uuid, "big")
    assert bed.leftovers(HOST_A, uuid) == NOTHING
    assert bed.claims(HOST_A) == {}
    assert bed.claims(HOST_B) == {uuid: FLAVORS["big"]}
    bed.assert_audit_ok()

    # 4. Cold migration of the stopped server: stopped on A.
    bed.succeed(compute.power_server("stop", uuid))
    assert bed.domain_state(HOST_B, uuid) == libvirt.VIR_DOMAIN_SHUTOFF
    bed.succeed(compute.migrate_server(uuid))
    assert_server(bed, uuid, instances.RESIZED, HOST_A, "big")
    assert bed.domain_state(HOST_A, uuid) == libvirt.VIR_DOMAIN_SHUTOFF
    assert bed.boots(HOST_A, uuid) == 0
    assert_disk(bed, HOST_A, uuid, "big")
    bed.assert_audit_ok()
    bed.succeed(compute.confirm_resize(uuid))
    assert_server(bed, uuid, instances.STOPPED, HOST_A, "big")
    assert bed.domain_state(HOST_A, uuid) == libvirt.VIR_DOMAIN_SHUTOFF
    assert bed.boots(HOST_A, uuid) == 0  # never started there
    assert bed.leftovers(HOST_B, uuid) == NOTHING
    assert bed.claims(HOST_A) == {uuid: FLAVORS["big"]}
    bed.assert_audit_ok()


# --- SSH failures ------------------------------------------------------------

def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _new_key(path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                    str(path)], check=True, capture_output=True, timeout=60)
    return path


@contextlib.contextmanager
def changed_host_key(bed, conf, tmp_path):
    """known_hosts names another key for host B's address and port."""
    other = _new_key(tmp_path / "other_host_key")
    key_type, key_data = (tmp_path / "other_host_key.pub").read_text() \
        .split()[:2]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{bed.sshd.host}]:{bed.sshd.port} {key_type} "
                           f"{key_data}\n")
    assert other.exists()
    bed.configure(conf, known_hosts_file=str(known_hosts))
    yield


@contextlib.contextmanager
def wrong_key_file(bed, conf, tmp_path):
    """A key that is not in host B's authorized_keys."""
    bed.configure(conf, key_file=str(_new_key(tmp_path / "id_wrong")))
    yield


@contextlib.contextmanager
def unreachable_port(bed, conf, tmp_path):
    """Host B registered with a port nothing listens on."""
    bed.set_ssh_port(_free_port())
    try:
        yield
    finally:
        bed.set_ssh_port(bed.sshd.port)


@contextlib.contextmanager
def small_filesystem(bed, leave_free):
    """A tmpfs of 8 MiB mounted over host B's (empty of this guest)
    instances path, filled until ``leave_free(disk bytes)`` bytes are
    free; unmounted at the end."""
    path = bed.hosts[HOST_B].instances_path
    needed = os.path.getsize(bed.disk(HOST_A, bed.guest_uuid))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", path],
                   check=True, capture_output=True, timeout=60)
    try:
        os.chmod(path, 0o755)
        target = leave_free(needed)
        stat = os.statvfs(path)
        fill = stat.f_bavail * stat.f_frsize - target
        if fill > 0:
            with open(os.path.join(path, "filler"), "wb") as filler:
                filler.write(b"\0" * fill)
        stat = os.statvfs(path)
        free = stat.f_bavail * stat.f_frsize
        assert free <= target, (free, target)
        yield needed, free
    finally:
        subprocess.run(["umount", path], check=True, capture_output=True,
                       timeout=60)


@contextlib.contextmanager
def disk_does_not_fit(bed, conf, tmp_path):
    """Less room on B than the guest's disk file takes: refused before
    the guest is shut down."""
    with small_filesystem(bed, lambda needed: needed // 2):
        yield


@contextlib.contextmanager
def image_does_not_fit(bed, conf, tmp_path):
    """Room for the disk but not for the image (its 14 MB kernel): refused
    in prep too, which counts the image files B lacks."""
    with small_filesystem(bed, lambda needed: 8 * 1024 ** 2):
        yield


def _ssh_target(bed):
    return f"{bed.sshd.user}@{bed.sshd.host}:{bed.sshd.port}"


# (set-up, what the message must say); each is refused in prep, before
# the guest is touched
SSH_FAILURES = {
    "changed-host-key": (changed_host_key,
                         lambda bed: (f"host {HOST_B} ({_ssh_target(bed)})",
                                      "host key")),
    "wrong-key-file": (wrong_key_file,
                       lambda bed: (f"host {HOST_B} ({_ssh_target(bed)})",
                                    "uthentication")),
    "unreachable": (unreachable_port,
                    lambda bed: (f"cannot reach host {HOST_B}",
                                 f"{bed.sshd.host}:",
                                 "Connection refused")),
    "disk-does-not-fit": (disk_does_not_fit,
                          lambda bed: (HOST_B, "bytes free")),
    "image-does-not-fit": (image_does_not_fit,
                           lambda bed: (HOST_B, "image files it lacks")),
}


@pytest.mark.parametrize("failure", list(SSH_FAILURES))
def test_failed_migration_leaves_the_guest_running_on_the_source(
        resize_cloud, conf, tmp_path, failure):
    bed = resize_cloud
    uuid = bed.ensure_guest()
    before = bed.instance(uuid)
    claims_a = bed.claims(HOST_A)
    boots = bed.boots(HOST_A, uuid)
    domain_id = bed.domain_id(HOST_A, uuid)
    breakage, expected = SSH_FAILURES[failure]
    with breakage(bed, conf, tmp_path):
        status = bed.run(compute.migrate_server(uuid))
        files_on_b = sorted(os.listdir(bed.hosts[HOST_B].instances_path))
    bed.configure(conf)  # the good SSH options again, for the checks

    assert status.finished and not status.succeeded, status
    fault = bed.fault(uuid)
    print(f"\n{failure}: {status.message!r}\n  fault: {fault!r}")
    assert fault and "\n" not in fault, fault
    for words in expected(bed):
        assert words in fault, (words, fault)
        assert words in status.message, (words, status.message)
    assert last_migration(bed, uuid)["status"] == migrations.ERROR
    assert uuid not in files_on_b, files_on_b

    # Running on the source, as it was.
    instance = bed.instance(uuid)
    assert ({k: instance[k] for k in ("vm_state", "task_state", "host",
                                      "vcpus", "memory_mb", "disk_gb")}
            == {k: before[k] for k in ("vm_state", "task_state", "host",
                                       "vcpus", "memory_mb", "disk_gb")})
    assert bed.domain_state(HOST_A, uuid) == libvirt.VIR_DOMAIN_RUNNING
    # never touched: the same QEMU, no new boot
    assert bed.domain_id(HOST_A, uuid) == domain_id
    assert bed.boots(HOST_A, uuid) == boots
    assert_disk(bed, HOST_A, uuid, _flavor_name(instance))
    assert bed.leftovers(HOST_B, uuid) == NOTHING
    assert bed.claims(HOST_A) == claims_a
    bed.assert_audit_ok()


def _flavor_name(instance):
    (name,) = [name for name, resources in FLAVORS.items()
               if resources == (instance["vcpus"], instance["memory_mb"],
                                instance["disk_gb"])]
    return name
