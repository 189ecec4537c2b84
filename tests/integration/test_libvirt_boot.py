"""A real guest through LibvirtDriver on the real libvirtd (QEMU, TCG).

Uses the session fixtures of tests/integration/conftest.py: ``libvirt_uri``
(a running libvirtd) and ``tiny_guest`` (kernel, initrds, disk, marker).
"""
import os
import shutil
import tempfile
import time
import uuid

import pytest

from vmflow import power_states
from vmflow.drivers.libvirt import driver as libvirt_driver

from tests.unit.drivers.xml_validation import assert_valid_domain_xml

pytestmark = pytest.mark.integration

PREFIX = "vmflow-test-"
BOOT_TIMEOUT = 60


@pytest.fixture
def instances_path():
    """A directory QEMU (user libvirt-qemu) can traverse: not under the
    0700 pytest temporary directory."""
    path = tempfile.mkdtemp(prefix="vmflow-test-instances-", dir="/var/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def driver(libvirt_uri, instances_path):
    host = {"name": "integration", "uri": libvirt_uri,
            "instances_path": instances_path, "ssh_user": None,
            "ssh_host": None, "ssh_port": None}
    return libvirt_driver.LibvirtDriver(host, virt_type="qemu",
                                        domain_name_prefix=PREFIX)


def make_instance():
    instance_uuid = str(uuid.uuid4())
    return {"uuid": instance_uuid, "name": f"{PREFIX}{instance_uuid[:8]}"}


def kernel_image(tiny_guest, initrd):
    return {"uuid": str(uuid.uuid4()), "name": "vmflow-test-tiny",
            "file": str(tiny_guest.disk), "disk_format": "qcow2",
            "kernel": str(tiny_guest.kernel), "initrd": str(initrd),
            "cmdline": getattr(tiny_guest, "cmdline", "console=ttyS0")}


FLAVOR = {"name": "vmflow-test-tiny", "vcpus": 1, "ram_mb": 256,
          "disk_gb": 1}


def wait_for_console(driver, instance_uuid, marker, timeout=BOOT_TIMEOUT):
    """Seconds until ``marker`` appears in the instance's console log.

    Fails at once when the domain stops running meanwhile (another test
    session cleaning up ``vmflow-test-*`` domains destroys ours too).
    """
    path = driver.console_log_path(instance_uuid)
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with open(path, "rb") as log:
            if marker.encode() in log.read():
                return time.monotonic() - started
        state = driver.get_power_state(instance_uuid)
        if state != power_states.RUNNING:
            break
        time.sleep(0.1)
    else:
        state = driver.get_power_state(instance_uuid)
    with open(path, "rb") as log:
        tail = log.read()[-2000:].decode(errors="replace")
    raise AssertionError(
        f"{marker!r} not in {path} after {time.monotonic() - started:.1f}s "
        f"(domain {state}); console ends with:\n{tail}")


def cleanup(driver, instance_uuid):
    """Remove whatever a failed test left; report what was removed."""
    return (driver.destroy(instance_uuid), driver.undefine(instance_uuid),
            driver.remove_disks(instance_uuid))


@pytest.fixture
def booted(driver, tiny_guest):
    """(instance uuid, seconds from start() to the boot marker)."""
    instance = make_instance()
    image = kernel_image(tiny_guest, tiny_guest.initrd_acpi)
    try:
        disks = driver.create_disks(instance, image, FLAVOR)
        xml = driver.generate_xml(instance, image, FLAVOR, disks)
        assert_valid_domain_xml(xml)
        assert driver.define_domain(xml) == instance["uuid"]
        assert driver.start(instance["uuid"]) == "started"
        boot_seconds = wait_for_console(driver, instance["uuid"],
                                        tiny_guest.marker)
        yield instance["uuid"], boot_seconds
    finally:
        cleanup(driver, instance["uuid"])


def test_boot_define_start_destroy_undefine_remove(driver, tiny_guest,
                                                   libvirt_uri):
    instance = make_instance()
    instance_uuid = instance["uuid"]
    image = kernel_image(tiny_guest, tiny_guest.initrd_acpi)
    try:
        disks = driver.create_disks(instance, image, FLAVOR)
        info = driver.disk_info(instance_uuid)
        assert info["backing-filename"] == disks["base"]
        assert info["virtual-size"] == FLAVOR["disk_gb"] * 1024 ** 3

        xml = driver.generate_xml(instance, image, FLAVOR, disks)
        assert_valid_domain_xml(xml)
        assert driver.define_domain(xml) == instance_uuid
        assert driver.get_power_state(instance_uuid) == power_states.SHUTDOWN
        assert driver.get_domain_id(instance_uuid) == -1

        started = time.monotonic()
        assert driver.start(instance_uuid) == "started"
        start_call = time.monotonic() - started
        assert driver.start(instance_uuid) == "already-running"
        assert driver.get_power_state(instance_uuid) == power_states.RUNNING
        first_id = driver.get_domain_id(instance_uuid)
        assert first_id > 0
        boot = wait_for_console(driver, instance_uuid, tiny_guest.marker)
        print(f"\nstart() {start_call:.2f}s, marker {boot:.2f}s after it")

        listed = {d["uuid"]: d for d in driver.list_domains()}
        assert listed[instance_uuid]["instance_uuid"] == instance_uuid
        assert listed[instance_uuid]["state"] == power_states.RUNNING
        assert listed[instance_uuid]["name"] == f"{PREFIX}{instance_uuid}"

        assert driver.destroy(instance_uuid) == "destroyed"
        assert driver.destroy(instance_uuid) == "already-off"
        assert driver.get_domain_id(instance_uuid) == -1
        assert driver.start(instance_uuid) == "started"
        assert driver.get_domain_id(instance_uuid) not in (-1, first_id)
        assert driver.destroy(instance_uuid) == "destroyed"

        assert driver.undefine(instance_uuid) == "undefined"
        assert driver.undefine(instance_uuid) == "already-undefined"
        assert driver.remove_disks(instance_uuid) == "removed"
        assert driver.remove_disks(instance_uuid) == "absent"

        assert not driver.domain_exists(instance_uuid)
        assert instance_uuid not in {d["uuid"] for d in driver.list_domains()}
        assert not os.path.exists(disks["instance_dir"])
        assert driver.list_instance_dirs() == []
    finally:
        cleanup(driver, instance_uuid)


def test_acpi_power_button_shuts_the_guest_down(driver, booted):
    instance_uuid, _ = booted
    # The guest arms its power button shortly after the marker: press
    # again until it reacts (pressing is idempotent).
    deadline = time.monotonic() + BOOT_TIMEOUT
    state = driver.get_power_state(instance_uuid)
    while state != power_states.SHUTDOWN and time.monotonic() < deadline:
        assert driver.shutdown_acpi(instance_uuid) in ("requested",
                                                       "already-off")
        state = driver.wait_for_power_state(instance_uuid, {power_states.SHUTDOWN}, 5,
                                            poll_interval=0.2)
    assert state == power_states.SHUTDOWN
    assert driver.shutdown_acpi(instance_uuid) == "already-off"
    assert driver.get_domain_id(instance_uuid) == -1


def test_guest_without_acpi_button_ignores_the_power_button(driver,
                                                            tiny_guest):
    instance = make_instance()
    image = kernel_image(tiny_guest, tiny_guest.initrd_noacpi)
    try:
        disks = driver.create_disks(instance, image, FLAVOR)
        driver.define_domain(driver.generate_xml(instance, image, FLAVOR,
                                                 disks))
        driver.start(instance["uuid"])
        wait_for_console(driver, instance["uuid"], tiny_guest.marker)
        assert driver.shutdown_acpi(instance["uuid"]) == "requested"
        assert driver.wait_for_power_state(
            instance["uuid"], {power_states.SHUTDOWN}, 5, poll_interval=0.2) == power_states.RUNNING
    finally:
        assert cleanup(driver, instance["uuid"]) == (
            "destroyed", "undefined", "removed")


def test_pause_resume_and_managed_save(driver, booted):
    instance_uuid, _ = booted
    assert driver.pause(instance_uuid) == "paused"
    assert driver.pause(instance_uuid) == "already-paused"
    assert driver.get_power_state(instance_uuid) == "paused"
    assert driver.resume(instance_uuid) == "resumed"
    assert driver.resume(instance_uuid) == "already-running"

    assert driver.managed_save(instance_uuid) == "saved"
    assert driver.managed_save(instance_uuid) == "already-saved"
    assert driver.get_power_state(instance_uuid) == power_states.SHUTDOWN
    assert driver.has_managed_save(instance_uuid)
    assert driver.start(instance_uuid) == "started"
    assert driver.get_power_state(instance_uuid) == power_states.RUNNING
    assert not driver.has_managed_save(instance_uuid)

    # undefine removes a managed save image too
    assert driver.managed_save(instance_uuid) == "saved"
    assert driver.undefine(instance_uuid) == "undefined"
    assert not driver.domain_exists(instance_uuid)
