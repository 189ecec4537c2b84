"""Host registration: what ``host add`` checks before it writes."""
import re

import pytest

from vmflow import exception
from vmflow.inventory import hosts

SIZES = dict(vcpus=2, memory_mb=1024, disk_gb=10)


def test_an_ssh_endpoint_is_stored_in_parts(session, tmp_path):
    host = hosts.add_host(session, "remote", "qemu+ssh://192.0.2.10/system",
                          instances_path=str(tmp_path),
                          ssh="stack@192.0.2.10:2222", verify=False, **SIZES)
    assert (host["ssh_user"], host["ssh_host"], host["ssh_port"]) == (
        "stack", "192.0.2.10", 2222)


@pytest.mark.parametrize("first, second", [
    ("qemu:///system", "qemu:///system/"),
    ("qemu:///system", "QEMU+unix:///system"),
    ("qemu+ssh://root@HV1.example/system", "qemu+ssh://hv1.example/system"),
])
def test_one_hypervisor_is_one_host(session, tmp_path, first, second):
    hosts.add_host(session, "a", first, instances_path=str(tmp_path),
                   verify=False, **SIZES)
    with pytest.raises(exception.InvalidInput, match=re.escape(
            f"libvirt URI '{second}' is already host 'a'")):
        hosts.add_host(session, "b", second, instances_path=str(tmp_path),
                       verify=False, **SIZES)


@pytest.mark.parametrize("first, second", [
    ("qemu:///system", "qemu+ssh://hv1/system"),
    ("qemu+ssh://hv1/system", "qemu+ssh://hv2/system"),
    ("qemu+unix:///system?socket=/a/sock", "qemu+unix:///system?socket=/b"),
])
def test_different_hypervisors_are_told_apart(first, second):
    assert hosts.hypervisor_key(first) != hosts.hypervisor_key(second)


def test_a_local_instances_path_must_be_a_directory(tmp_path):
    hosts.check_instances_path({"instances_path": str(tmp_path),
                                "ssh_host": None})
    regular = tmp_path / "file"
    regular.write_text("")
    for path in (regular, tmp_path / "missing"):
        with pytest.raises(exception.InvalidInput,
                           match="does not exist or is not a directory"):
            hosts.check_instances_path({"instances_path": str(path),
                                        "ssh_host": None})
