"""Guest operations on libvirt's in-memory test driver (no mocks)."""
import re

import libvirt
import pytest

from vmflow import exception, power_states
from vmflow.drivers.libvirt import connection as libvirt_connection
from vmflow.drivers.libvirt import guest as libvirt_guest

from tests.unit.drivers.conftest import TEST_URI, new_uuid


def test_defined_domain_is_shut_off_with_no_id(driver, defined):
    assert driver.get_power_state(defined) == power_states.SHUTDOWN
    assert driver.get_domain_id(defined) == -1
    assert driver.domain_exists(defined)


def test_start_twice_starts_once(driver, defined):
    assert driver.start(defined) == "started"
    assert driver.start(defined) == "already-running"
    assert driver.get_power_state(defined) == power_states.RUNNING
    assert driver.get_domain_id(defined) > 0


def test_start_paused(driver, defined):
    assert driver.start(defined, paused=True) == "started-paused"
    assert driver.get_power_state(defined) == "paused"
    assert driver.start(defined, paused=True) == "already-paused"
    assert driver.start(defined) == "already-paused"
    assert driver.resume(defined) == "resumed"
    assert driver.get_power_state(defined) == power_states.RUNNING


def test_pause_and_resume_are_idempotent(driver, defined):
    driver.start(defined)
    assert driver.pause(defined) == "paused"
    assert driver.pause(defined) == "already-paused"
    assert driver.get_power_state(defined) == "paused"
    assert driver.resume(defined) == "resumed"
    assert driver.resume(defined) == "already-running"
    assert driver.get_power_state(defined) == power_states.RUNNING


def test_pause_or_resume_of_a_shut_off_domain_fails(driver, defined):
    with pytest.raises(exception.GuestOperationFailed) as caught:
        driver.pause(defined)
    assert defined in str(caught.value)
    with pytest.raises(exception.GuestOperationFailed):
        driver.resume(defined)


def test_destroy_of_a_shut_off_domain_is_a_no_op(driver, defined):
    assert driver.destroy(defined) == "already-off"
    driver.start(defined)
    assert driver.destroy(defined) == "destroyed"
    assert driver.destroy(defined) == "already-off"
    assert driver.get_power_state(defined) == power_states.SHUTDOWN


def test_domain_id_changes_on_each_start(driver, defined):
    driver.start(defined)
    first = driver.get_domain_id(defined)
    driver.destroy(defined)
    assert driver.get_domain_id(defined) == -1
    driver.start(defined)
    second = driver.get_domain_id(defined)
    assert second > 0 and second != first


def test_acpi_shutdown(driver, defined):
    assert driver.shutdown_acpi(defined) == "already-off"
    driver.start(defined)
    assert driver.shutdown_acpi(defined) == "requested"
    # The test driver's guests obey at once; real guests take a while.
    assert driver.wait_for_power_state(defined, {power_states.SHUTDOWN}, 5) == power_states.SHUTDOWN
    assert driver.shutdown_acpi(defined) == "already-off"


def test_managed_save_and_restore(driver, defined):
    driver.start(defined)
    assert driver.managed_save(defined) == "saved"
    assert driver.managed_save(defined) == "already-saved"
    assert driver.has_managed_save(defined)
    assert driver.get_power_state(defined) == power_states.SHUTDOWN
    assert driver.start(defined) == "started"
    assert not driver.has_managed_save(defined)


def test_managed_save_of_a_shut_off_domain_fails(driver, defined):
    with pytest.raises(exception.GuestOperationFailed):
        driver.managed_save(defined)


def test_undefine_removes_managed_save_and_is_idempotent(driver, defined):
    driver.start(defined)
    driver.managed_save(defined)
    assert driver.undefine(defined) == "undefined"
    assert driver.undefine(defined) == "already-undefined"
    assert driver.destroy(defined) == "not-found"
    assert not driver.domain_exists(defined)


def test_guest_undefine_of_a_vanished_domain_reports_it(driver, defined):
    guest = libvirt_guest.lookup(driver.connection, defined)
    assert guest.undefine() == "undefined"
    assert guest.undefine() == "already-undefined"


def test_operations_on_a_missing_domain_raise_domain_not_found(driver):
    missing = new_uuid()
    for operation in (driver.start, driver.pause, driver.resume,
                      driver.shutdown_acpi, driver.managed_save,
                      driver.get_power_state, driver.get_domain_id):
        with pytest.raises(exception.DomainNotFound) as caught:
            operation(missing)
        assert missing in str(caught.value)
        assert TEST_URI in str(caught.value)


def test_every_libvirt_state_maps_to_a_neutral_power_state():
    libvirt_states = {value for name, value in vars(libvirt).items()
                      if re.fullmatch(r"VIR_DOMAIN_(NOSTATE|RUNNING|BLOCKED|"
                                      r"PAUSED|SHUTDOWN|SHUTOFF|CRASHED|"
                                      r"PMSUSPENDED)", name)}
    assert set(libvirt_guest.POWER_STATES) == libvirt_states
    assert libvirt_guest.POWER_STATES == {
        libvirt.VIR_DOMAIN_NOSTATE: power_states.NOSTATE,
        libvirt.VIR_DOMAIN_RUNNING: power_states.RUNNING,
        libvirt.VIR_DOMAIN_BLOCKED: power_states.RUNNING,
        libvirt.VIR_DOMAIN_PAUSED: power_states.PAUSED,
        libvirt.VIR_DOMAIN_SHUTDOWN: power_states.SHUTDOWN,
        libvirt.VIR_DOMAIN_SHUTOFF: power_states.SHUTDOWN,
        libvirt.VIR_DOMAIN_CRASHED: power_states.CRASHED,
        libvirt.VIR_DOMAIN_PMSUSPENDED: power_states.SUSPENDED}
    assert set(libvirt_guest.POWER_STATES.values()) == set(power_states.ALL)


def test_redefine_keeps_the_domain_and_state(driver, defined, instance,
                                             kernel_image, flavor):
    driver.start(defined)
    flavor = dict(flavor, ram_mb=128)
    xml = driver.generate_xml(instance, kernel_image, flavor)
    assert driver.define_domain(xml) == defined
    assert driver.get_power_state(defined) == power_states.RUNNING


def test_define_of_invalid_xml_is_guest_operation_failed(driver):
    with pytest.raises(exception.GuestOperationFailed) as caught:
        driver.define_domain("<domain type='qemu'><name>x</name></domain>")
    assert "define" in str(caught.value)


def test_list_domains_reads_the_instance_uuid_from_metadata(
        driver, defined, instance):
    domains = {d["uuid"]: d for d in driver.list_domains()}
    assert domains[defined] == {
        "uuid": defined, "name": f"vmflow-test-{instance['uuid']}",
        "instance_uuid": instance["uuid"], "state": power_states.SHUTDOWN}
    # test:///default ships a domain 'test' that vmflow did not create.
    foreign = [d for d in domains.values() if d["name"] == "test"]
    assert foreign and foreign[0]["instance_uuid"] is None


def test_console_log_path_is_read_back_from_the_domain(driver, defined):
    guest = libvirt_guest.lookup(driver.connection, defined)
    assert guest.console_log_path() == driver.console_log_path(defined)
    assert guest.instance_uuid() == defined


class _ClosedConnection:
    """Our connection wrapper handing out a connection that was closed."""

    uri = TEST_URI

    def __init__(self):
        self.conn = libvirt_connection.LibvirtConnection(TEST_URI).get()
        self.conn.close()

    def get(self):
        return self.conn


def test_a_broken_connection_is_hypervisor_unavailable():
    broken = _ClosedConnection()
    with pytest.raises(exception.HypervisorUnavailable):
        libvirt_guest.list_guests(broken)
    with pytest.raises(exception.HypervisorUnavailable):
        libvirt_guest.lookup(broken, new_uuid())


def test_list_domains_knows_its_domains_by_name_without_metadata(
        driver, instance):
    # A domain vmflow defined before it wrote metadata still is vmflow's.
    connection = driver.connection.get()
    uuid = new_uuid()
    connection.defineXML(
        f"<domain type='test'><name>vmflow-test-{uuid}</name>"
        f"<uuid>{uuid}</uuid><memory>65536</memory>"
        "<os><type>hvm</type></os></domain>")
    domains = {d["uuid"]: d for d in driver.list_domains()}
    assert domains[uuid]["instance_uuid"] == uuid
    assert domains[uuid]["state"] == power_states.SHUTDOWN
