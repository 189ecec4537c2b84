"""Domain XML built from small config objects with lxml.

Each object has ``to_element()`` returning an lxml element; the XML is
never assembled from string templates, so names, paths and kernel command
lines containing ``<``, ``&`` or quotes are escaped by lxml. The output is
valid against libvirt's own schema (``virt-xml-validate FILE domain``).
"""
import dataclasses

from lxml import etree

VMFLOW_NAMESPACE = "http://vmflow.org/xmlns/instance/1.0"
VMFLOW_PREFIX = "vmflow"
VIRT_TYPES = ("kvm", "qemu")


def _sub(parent, tag, text=None, **attrs):
    element = etree.SubElement(parent, tag,
                               {k: str(v) for k, v in attrs.items()
                                if v is not None})
    if text is not None:
        element.text = str(text)
    return element


@dataclasses.dataclass
class KernelBoot:
    """Direct kernel boot: the kernel and initrd are files on the host."""

    kernel: str
    initrd: str | None = None
    cmdline: str | None = None

    def fill(self, os_element):
        _sub(os_element, "kernel", self.kernel)
        if self.initrd:
            _sub(os_element, "initrd", self.initrd)
        if self.cmdline:
            _sub(os_element, "cmdline", self.cmdline)


@dataclasses.dataclass
class DiskBoot:
    """Boot from the first disk (its boot loader)."""

    def fill(self, os_element):
        _sub(os_element, "boot", dev="hd")


@dataclasses.dataclass
class DiskConfig:
    path: str
    target_dev: str = "vda"
    driver_type: str = "qcow2"
    bus: str = "virtio"

    def to_element(self):
        disk = etree.Element("disk", type="file", device="disk")
        _sub(disk, "driver", name="qemu", type=self.driver_type)
        _sub(disk, "source", file=self.path)
        _sub(disk, "target", dev=self.target_dev, bus=self.bus)
        return disk


@dataclasses.dataclass
class InterfaceConfig:
    """``network`` None: user-mode (slirp) networking, no host setup."""

    network: str | None = None
    mac_address: str | None = None
    model: str = "virtio"

    def to_element(self):
        if self.network:
            interface = etree.Element("interface", type="network")
        else:
            interface = etree.Element("interface", type="user")
        if self.mac_address:
            _sub(interface, "mac", address=self.mac_address)
        if self.network:
            _sub(interface, "source", network=self.network)
        _sub(interface, "model", type=self.model)
        return interface


@dataclasses.dataclass
class SerialLogConfig:
    """Serial port 0 written to a file, also the domain's console.

    Appended to (``append='on'``): without it every start of the domain
    (a reboot, a start after a stop) truncates the file, and what the
    guest printed before is lost to ``server console-log``."""

    path: str

    def to_elements(self):
        serial = etree.Element("serial", type="file")
        _sub(serial, "source", path=self.path, append="on")
        _sub(serial, "target", port=0)
        console = etree.Element("console", type="file")
        _sub(console, "source", path=self.path, append="on")
        _sub(console, "target", type="serial", port=0)
        return [serial, console]


@dataclasses.dataclass
class InstanceMetadata:
    """``<vmflow:instance uuid=.../>`` so audits map domains to instances."""

    instance_uuid: str
    name: str | None = None

    def to_element(self):
        element = etree.Element(f"{{{VMFLOW_NAMESPACE}}}instance",
                                nsmap={VMFLOW_PREFIX: VMFLOW_NAMESPACE})
        element.set("uuid", self.instance_uuid)
        if self.name is not None:
            element.set("name", self.name)
        return element


@dataclasses.dataclass
class GuestConfig:
    name: str
    uuid: str
    memory_mb: int
    vcpus: int
    virt_type: str = "kvm"
    os: KernelBoot | DiskBoot = dataclasses.field(default_factory=DiskBoot)
    disks: list = dataclasses.field(default_factory=list)
    serial_log_path: str | None = None
    interfaces: list = dataclasses.field(default_factory=list)
    acpi: bool = True
    instance_uuid: str | None = None
    instance_name: str | None = None
    arch: str = "x86_64"

    def __post_init__(self):
        if self.virt_type not in VIRT_TYPES:
            raise ValueError(f"virt_type {self.virt_type!r} is not one of "
                             f"{', '.join(VIRT_TYPES)}")
        if self.memory_mb < 1 or self.vcpus < 1:
            raise ValueError("memory_mb and vcpus must be at least 1")

    def to_element(self):
        domain = etree.Element("domain", type=self.virt_type)
        _sub(domain, "name", self.name)
        _sub(domain, "uuid", self.uuid)
        if self.instance_uuid:
            metadata = _sub(domain, "metadata")
            metadata.append(InstanceMetadata(
                self.instance_uuid, self.instance_name).to_element())
        _sub(domain, "memory", int(self.memory_mb), unit="MiB")
        _sub(domain, "vcpu", int(self.vcpus))
        os_element = _sub(domain, "os")
        _sub(os_element, "type", "hvm", arch=self.arch)
        self.os.fill(os_element)
        if self.acpi:
            _sub(_sub(domain, "features"), "acpi")
        _sub(domain, "clock", offset="utc")
        _sub(domain, "on_poweroff", "destroy")
        _sub(domain, "on_reboot", "restart")
        _sub(domain, "on_crash", "destroy")
        domain.append(self._devices())
        return domain

    def _devices(self):
        devices = etree.Element("devices")
        for disk in self.disks:
            devices.append(disk.to_element())
        for interface in self.interfaces:
            devices.append(interface.to_element())
        if self.serial_log_path:
            devices.extend(SerialLogConfig(self.serial_log_path)
                           .to_elements())
        _sub(devices, "memballoon", model="virtio")
        return devices

    def to_xml(self):
        return etree.tostring(self.to_element(), encoding="unicode",
                              pretty_print=True)


# -- reading domain XML back -------------------------------------------------


def _parse(xml):
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.fromstring(xml.encode() if isinstance(xml, str) else xml,
                            parser)


def instance_uuid_from_metadata(xml):
    """The uuid in the XML of our metadata element, or None.

    ``virDomainGetMetadata`` returns the element without its namespace
    (``<instance uuid=.../>``); both forms are accepted.
    """
    element = _parse(xml)
    if etree.QName(element).localname != "instance":
        return None
    return element.get("uuid")


def instance_uuid_from_xml(xml):
    """The vmflow instance uuid in a full domain XML, or None."""
    element = _parse(xml).find(f"metadata/{{{VMFLOW_NAMESPACE}}}instance")
    return None if element is None else element.get("uuid")


def domain_uuid_from_xml(xml):
    return _parse(xml).findtext("uuid")


def serial_log_path_from_xml(xml):
    source = _parse(xml).find("devices/serial[@type='file']/source")
    return None if source is None else source.get("path")
