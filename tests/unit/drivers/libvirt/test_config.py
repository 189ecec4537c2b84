"""Domain XML: valid against libvirt's schema, values escaped by lxml."""
import pytest
from lxml import etree

from vmflow.drivers.libvirt import config

from tests.unit.drivers.conftest import new_uuid
from tests.unit.drivers.xml_validation import assert_valid_domain_xml

HOSTILE = "a<b>&c\"d'e"


def kernel_guest(**overrides):
    values = dict(
        name="vmflow-test-kernel", uuid=new_uuid(), memory_mb=128, vcpus=2,
        virt_type="qemu",
        os=config.KernelBoot("/var/lib/vmflow/_base/k.kernel",
                             "/var/lib/vmflow/_base/k.initrd",
                             "console=ttyS0 panic=-1"),
        disks=[config.DiskConfig("/var/lib/vmflow/i/disk")],
        serial_log_path="/var/lib/vmflow/i/console.log",
        interfaces=[config.InterfaceConfig()],
        instance_uuid=new_uuid())
    values.update(overrides)
    return config.GuestConfig(**values)


def test_kernel_boot_xml_is_valid():
    guest = kernel_guest()
    xml = guest.to_xml()
    assert_valid_domain_xml(xml)
    root = etree.fromstring(xml)
    assert root.get("type") == "qemu"
    assert root.findtext("os/kernel") == "/var/lib/vmflow/_base/k.kernel"
    assert root.findtext("os/initrd") == "/var/lib/vmflow/_base/k.initrd"
    assert root.findtext("os/cmdline") == "console=ttyS0 panic=-1"
    assert root.find("os/boot") is None
    assert root.find("features/acpi") is not None
    assert root.findtext("on_poweroff") == "destroy"
    assert root.findtext("on_reboot") == "restart"
    assert root.findtext("on_crash") == "destroy"
    assert root.findtext("memory") == "128"
    assert root.find("memory").get("unit") == "MiB"
    assert root.findtext("vcpu") == "2"
    assert root.find("devices/interface").get("type") == "user"
    assert (root.find("devices/serial/source").get("path")
            == "/var/lib/vmflow/i/console.log")
    # A restart of the domain must not wipe what the guest printed.
    assert [source.get("append") for source in root.findall(
        "devices/*/source[@path='/var/lib/vmflow/i/console.log']")] == [
            "on", "on"]
    assert config.instance_uuid_from_xml(xml) == guest.instance_uuid
    assert config.domain_uuid_from_xml(xml) == guest.uuid
    assert (config.serial_log_path_from_xml(xml)
            == "/var/lib/vmflow/i/console.log")


def test_disk_boot_xml_is_valid():
    guest = kernel_guest(
        os=config.DiskBoot(), virt_type="kvm",
        disks=[config.DiskConfig("/d/disk", driver_type="raw")],
        interfaces=[config.InterfaceConfig(network="default",
                                           mac_address="52:54:00:01:02:03")],
        serial_log_path=None, instance_uuid=None)
    xml = guest.to_xml()
    assert_valid_domain_xml(xml)
    root = etree.fromstring(xml)
    assert root.get("type") == "kvm"
    assert root.find("os/boot").get("dev") == "hd"
    assert root.find("os/kernel") is None
    assert root.find("devices/disk/driver").get("type") == "raw"
    interface = root.find("devices/interface")
    assert interface.get("type") == "network"
    assert interface.find("source").get("network") == "default"
    assert interface.find("mac").get("address") == "52:54:00:01:02:03"
    assert root.find("metadata") is None
    assert root.find("devices/serial") is None
    assert config.instance_uuid_from_xml(xml) is None


def test_kernel_boot_without_initrd_or_cmdline_is_valid():
    xml = kernel_guest(os=config.KernelBoot("/k")).to_xml()
    assert_valid_domain_xml(xml)
    root = etree.fromstring(xml)
    assert root.find("os/initrd") is None
    assert root.find("os/cmdline") is None


def test_without_acpi_there_is_no_acpi_feature():
    xml = kernel_guest(acpi=False).to_xml()
    assert_valid_domain_xml(xml)
    assert etree.fromstring(xml).find("features") is None


def test_hostile_values_are_escaped_and_read_back_verbatim():
    cmdline = f"console=ttyS0 x={HOSTILE} ]]> <!-- &amp;"
    path = f"/srv/{HOSTILE}/disk"
    guest = kernel_guest(
        name=f"vmflow-test-{HOSTILE}",
        os=config.KernelBoot("/k", cmdline=cmdline),
        disks=[config.DiskConfig(path)], serial_log_path=path + ".log",
        interfaces=[config.InterfaceConfig(network=HOSTILE)],
        instance_name=HOSTILE)
    xml = guest.to_xml()
    assert_valid_domain_xml(xml)
    root = etree.fromstring(xml)
    assert root.findtext("name") == f"vmflow-test-{HOSTILE}"
    assert root.findtext("os/cmdline") == cmdline
    assert root.find("devices/disk/source").get("file") == path
    assert (root.find("devices/interface/source").get("network")
            == HOSTILE)
    metadata = root.find(f"metadata/{{{config.VMFLOW_NAMESPACE}}}instance")
    assert metadata.get("name") == HOSTILE
    # No element or entity was smuggled in by a value.
    assert [el.tag for el in root.find("os")] == ["type", "kernel",
                                                  "cmdline"]
    assert "<b>" not in xml


def test_metadata_is_in_the_vmflow_namespace():
    guest = kernel_guest()
    root = etree.fromstring(guest.to_xml())
    element = root.find("metadata")[0]
    assert element.tag == f"{{{config.VMFLOW_NAMESPACE}}}instance"
    assert element.prefix == "vmflow"
    assert element.get("uuid") == guest.instance_uuid


def test_metadata_as_returned_by_libvirt_without_namespace():
    assert config.instance_uuid_from_metadata(
        '<instance uuid="1234"/>') == "1234"
    assert config.instance_uuid_from_metadata("<other/>") is None


def test_each_config_object_has_to_element():
    assert config.DiskConfig("/d").to_element().tag == "disk"
    assert config.InterfaceConfig().to_element().tag == "interface"
    assert config.InstanceMetadata("u").to_element().get("uuid") == "u"
    assert kernel_guest().to_element().tag == "domain"


@pytest.mark.parametrize("overrides", [
    {"virt_type": "xen"}, {"memory_mb": 0}, {"vcpus": 0}])
def test_invalid_guest_config_is_refused(overrides):
    with pytest.raises(ValueError):
        kernel_guest(**overrides)


def test_driver_xml_for_kernel_boot_is_valid(driver, instance, kernel_image,
                                             flavor):
    xml = driver.generate_xml(instance, kernel_image, flavor)
    assert_valid_domain_xml(xml)
    root = etree.fromstring(xml)
    base = driver.images.base_path(kernel_image)
    assert root.findtext("name") == f"vmflow-test-{instance['uuid']}"
    assert root.findtext("uuid") == instance["uuid"]
    assert root.findtext("os/kernel") == base + ".kernel"
    assert root.findtext("os/initrd") == base + ".initrd"
    assert root.findtext("os/cmdline") == "console=ttyS0 quiet"
    assert (root.find("devices/disk/source").get("file")
            == driver.images.disk_path(instance["uuid"]))
    assert root.findtext("memory") == "64"


def test_driver_xml_for_disk_boot_is_valid(driver, instance, disk_image,
                                           flavor):
    xml = driver.generate_xml(instance, disk_image, flavor)
    assert_valid_domain_xml(xml)
    root = etree.fromstring(xml)
    assert root.find("os/boot").get("dev") == "hd"
    assert root.find("os/kernel") is None


def test_driver_xml_is_the_same_when_regenerated(driver, instance,
                                                 kernel_image, flavor):
    # Hard reboot regenerates the XML from the database: same MAC, paths.
    first = driver.generate_xml(instance, kernel_image, flavor)
    assert driver.generate_xml(instance, kernel_image, flavor) == first


def test_driver_uses_the_configured_network(conf, driver, instance,
                                            disk_image, flavor):
    conf.set_override("network", "vmflow-net", "libvirt")
    try:
        xml = driver.generate_xml(instance, disk_image, flavor)
    finally:
        conf.clear_override("network", "libvirt")
    assert_valid_domain_xml(xml)
    interface = etree.fromstring(xml).find("devices/interface")
    assert interface.get("type") == "network"
    assert interface.find("source").get("network") == "vmflow-net"
