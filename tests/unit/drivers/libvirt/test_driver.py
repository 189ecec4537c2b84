import inspect
import time
from importlib import metadata

from vmflow import power_states
from vmflow.drivers import base
from vmflow.drivers.libvirt import driver as libvirt_driver


def test_libvirt_driver_implements_the_compute_driver():
    assert issubclass(libvirt_driver.LibvirtDriver, base.ComputeDriver)
    assert not inspect.isabstract(libvirt_driver.LibvirtDriver)


def test_driver_entry_point_names_the_libvirt_driver():
    entry_points = metadata.entry_points(group="vmflow.drivers")
    loaded = {entry.name: entry.load() for entry in entry_points}
    assert loaded["libvirt"] is libvirt_driver.LibvirtDriver


def test_health_check_names_the_host(driver):
    health = driver.health_check()
    assert health["host"] == "unit-host"
    assert health["hypervisor_type"] == "TEST"


def test_mac_address_is_stable_and_local():
    instance_uuid = "0f6c5a3e-0000-4000-8000-00000000000a"
    mac = libvirt_driver.mac_address_for(instance_uuid)
    assert mac == libvirt_driver.mac_address_for(instance_uuid)
    assert mac.startswith("52:54:00:") and len(mac) == 17


def test_wait_for_power_state_returns_the_last_state_on_timeout(driver,
                                                                 defined):
    started = time.monotonic()
    state = driver.wait_for_power_state(defined, {"running"}, 0.2,
                                        poll_interval=0.05)
    assert state == power_states.SHUTDOWN
    assert 0.2 <= time.monotonic() - started < 2


def test_default_prefix_and_instances_path(conf, host, instance):
    host = dict(host, instances_path=None)
    drv = libvirt_driver.LibvirtDriver(host)
    assert drv.domain_name(instance) == f"vmflow-{instance['uuid']}"
    assert drv.images.instances_path == f"{conf.state_path}/instances"
    assert drv.virt_type == conf.libvirt.virt_type
