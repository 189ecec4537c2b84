"""Boot one VM through vmflow's scheduler and libvirt driver, check that it
booted, power it off by ACPI, and remove it again; print each step's time.

Used by tools/demo.sh until the build/delete flows land (`vmflow server`).
"""
import argparse
import sys
import time
import uuid

from vmflow import conf as vmflow_conf
from vmflow.drivers.libvirt import driver as libvirt_driver
from vmflow.inventory import flavors, hosts, images
from vmflow.persistence import migration
from vmflow.scheduler import manager

MARKER = "VMFLOW-GUEST-BOOTED"


def step(label, func, *args):
    started = time.monotonic()
    result = func(*args)
    print(f"  {label:<28} {time.monotonic() - started:6.2f} s  {result}")
    return result


def wait_for_marker(path, timeout_seconds=90):
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        with open(path, errors="replace") as console:
            for line in console:
                if MARKER in line:
                    return line.strip()
        time.sleep(0.2)
    raise SystemExit(f"demo: no {MARKER!r} on {path} after "
                     f"{timeout_seconds} s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--config-file", action="append", required=True)
    parser.add_argument("--flavor", required=True)
    parser.add_argument("--image", required=True)
    args = parser.parse_args()
    vmflow_conf.parse(config_files=args.config_file)

    with migration.ready_session() as session:
        flavor = flavors.show_flavor(session, args.flavor)
        image = images.show_image(session, args.image)
        request = {"vcpus": flavor["vcpus"], "memory_mb": flavor["ram_mb"],
                   "disk_gb": flavor["disk_gb"]}
        chosen = manager.select_destinations(session, request)
        host = hosts.show_host(session, chosen[0])
    instance = {"uuid": str(uuid.uuid4()), "name": "demo"}
    driver = libvirt_driver.LibvirtDriver(host)
    print(f"demo: instance {instance['uuid']} on host {host['name']} "
          f"({host['uri']})")
    try:
        disks = driver.create_disks(instance, image, flavor)
        print(f"  created {', '.join(disks['created'])}")
        xml = driver.generate_xml(instance, image, flavor, disks)
        step("define domain", driver.define_domain, xml)
        step("start", driver.start, instance["uuid"])
        step("wait for boot marker", wait_for_marker, disks["console_log"])
        step("ACPI power button", driver.shutdown_acpi, instance["uuid"])
        step("wait for shutoff", driver.wait_for_power_state,
             instance["uuid"], ("shutoff",), 30)
    finally:
        step("destroy", driver.destroy, instance["uuid"])
        step("undefine", driver.undefine, instance["uuid"])
        step("remove disks", driver.remove_disks, instance["uuid"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
