"""Fixtures for the driver unit tests: libvirt's in-memory test driver."""
import uuid

import pytest

from vmflow.drivers.libvirt import driver as libvirt_driver

TEST_URI = "test:///default"
PREFIX = "vmflow-test-"


def new_uuid():
    return str(uuid.uuid4())


def _remove_test_domains(driver):
    for domain in driver.list_domains():
        if domain["name"].startswith(PREFIX):
            driver.destroy(domain["uuid"])
            driver.undefine(domain["uuid"])


@pytest.fixture
def host(tmp_path):
    return {"name": "unit-host", "uri": TEST_URI,
            "instances_path": str(tmp_path / "instances"),
            "ssh_user": None, "ssh_host": None, "ssh_port": None}


@pytest.fixture
def driver(host):
    """A LibvirtDriver on test:///default; removes its domains afterwards."""
    drv = libvirt_driver.LibvirtDriver(host, virt_type="qemu",
                                       domain_name_prefix=PREFIX)
    yield drv
    _remove_test_domains(drv)


@pytest.fixture
def instance():
    return {"uuid": new_uuid(), "name": "unit-vm"}


@pytest.fixture
def flavor():
    return {"name": "tiny", "vcpus": 1, "ram_mb": 64, "disk_gb": 1}


@pytest.fixture
def kernel_image():
    return {"uuid": new_uuid(), "name": "tiny", "file": "/images/tiny.qcow2",
            "disk_format": "qcow2", "kernel": "/images/vmlinuz",
            "initrd": "/images/initrd.gz", "cmdline": "console=ttyS0 quiet"}


@pytest.fixture
def disk_image():
    return {"uuid": new_uuid(), "name": "cirros", "file": "/images/c.raw",
            "disk_format": "raw", "kernel": None, "initrd": None,
            "cmdline": None}


@pytest.fixture
def defined(driver, instance, kernel_image, flavor):
    """uuid of a defined (shut off) domain for ``instance``."""
    xml = driver.generate_xml(instance, kernel_image, flavor)
    return driver.define_domain(xml)
