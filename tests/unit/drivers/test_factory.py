"""vmflow.drivers.get_driver is the one way to a host's driver."""
import ast
import os

import pytest

from tests.conftest import REPO_ROOT
from vmflow import drivers, exception
from vmflow.drivers.libvirt import driver as libvirt_driver

PACKAGE = os.path.join(REPO_ROOT, "vmflow")
LIBVIRT_PACKAGE = "vmflow.drivers.libvirt"


def test_the_configured_driver_comes_from_its_entry_point(conf, host):
    driver = drivers.get_driver(host)
    assert type(driver) is libvirt_driver.LibvirtDriver
    assert driver.health_check()["host"] == "unit-host"


def test_an_unknown_driver_is_one_line_naming_it(conf, host):
    conf.set_override("compute_driver", "xen")
    with pytest.raises(exception.InvalidInput) as raised:
        drivers.get_driver(host)
    assert str(raised.value) == (
        "invalid input: [DEFAULT] compute_driver = 'xen' is not an installed "
        "driver (installed: libvirt)")


def imported_modules(path):
    with open(path) as source:
        tree = ast.parse(source.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_only_the_libvirt_driver_imports_the_libvirt_driver():
    outside = []
    for folder, _dirs, files in os.walk(PACKAGE):
        if folder.startswith(os.path.join(PACKAGE, "drivers", "libvirt")):
            continue
        for name in (name for name in files if name.endswith(".py")):
            path = os.path.join(folder, name)
            outside.extend(
                f"{os.path.relpath(path, REPO_ROOT)}: {module}"
                for module in imported_modules(path)
                if module == "libvirt" or module.startswith(LIBVIRT_PACKAGE))
    assert outside == []
