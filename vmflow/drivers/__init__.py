"""Hypervisor drivers: an abstract base and the libvirt implementation.

:func:`get_driver` is the one way to get the driver of a host: it loads
the class that ``[DEFAULT] compute_driver`` names from the
``vmflow.drivers`` entry points (setup.cfg). Nothing outside
``vmflow/drivers/libvirt/`` imports that package.
"""
import functools
from importlib import metadata

from vmflow import conf as vmflow_conf
from vmflow import exception

ENTRY_POINT_GROUP = "vmflow.drivers"


@functools.lru_cache(maxsize=None)
def driver_class(name):
    """The ComputeDriver subclass installed as entry point ``name``."""
    found = metadata.entry_points(group=ENTRY_POINT_GROUP, name=name)
    if not found:
        installed = sorted(entry.name for entry in
                           metadata.entry_points(group=ENTRY_POINT_GROUP))
        raise exception.InvalidInput(
            reason=f"[DEFAULT] compute_driver = {name!r} is not an installed "
                   f"driver (installed: {', '.join(installed) or 'none'})")
    return next(iter(found)).load()


def probe_disk_file(path, conf=vmflow_conf.CONF):
    """What the configured driver's disk tools say of a local image file
    (before it is registered: no host is involved yet)."""
    return driver_class(conf.compute_driver).probe_disk_file(path)


def get_driver(host, conf=vmflow_conf.CONF):
    """The driver of ``host``, a host dict as the inventory stores it
    (``name``, ``uri``, ``instances_path``, ``ssh_*``)."""
    return driver_class(conf.compute_driver)(host)
