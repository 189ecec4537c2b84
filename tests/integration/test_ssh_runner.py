"""SSHRunner and the image backend against a real sshd on 127.0.0.1.

Uses the ``sshd`` session fixture of tests/integration/conftest.py.
"""
import subprocess
import uuid

import paramiko
import pytest

from vmflow import exception
from vmflow.drivers.libvirt import driver as libvirt_driver
from vmflow.drivers.libvirt import imagebackend
from vmflow.drivers.remote.ssh import SSHRunner

pytestmark = pytest.mark.integration

GiB = 1024 ** 3


def make_runner(sshd, **overrides):
    options = dict(port=sshd.port, user=sshd.user,
                   key_file=str(sshd.key_file),
                   known_hosts_file=str(sshd.known_hosts_file),
                   connect_timeout=10, command_timeout=60)
    options.update(overrides)
    return SSHRunner(sshd.host, **options)


def known_hosts_name(host, port):
    return host if int(port) == 22 else f"[{host}]:{port}"


@pytest.fixture
def runner(sshd):
    ssh_runner = make_runner(sshd)
    yield ssh_runner
    ssh_runner.close()


@pytest.fixture
def remote_dir(runner):
    """A directory made (and owned) by the SSH user, removed afterwards."""
    path = runner.run(["mktemp", "-d", "/tmp/vmflow-test-ssh.XXXXXX"]).strip()
    yield path
    runner.remove_tree(path)


def test_runs_a_command(runner):
    assert runner.run(["echo", "hello", "world"]) == "hello world\n"
    assert runner.run(["id", "-un"]).strip() == runner.user


def test_failure_has_status_and_stderr(runner):
    with pytest.raises(exception.CommandFailed) as caught:
        runner.run(["sh", "-c", "echo broken >&2; exit 7"])
    assert caught.value.kwargs["status"] == 7
    assert caught.value.kwargs["stderr"] == "broken"


def test_hostile_arguments_reach_the_program_literally(runner, tmp_path):
    marker = tmp_path / "marker"
    arguments = [f"$(touch {marker})", f"`touch {marker}`",
                 f"; touch {marker}", f"&& touch {marker}", "'\"\\",
                 "*", "~", "$HOME", "line\nbreak", "", "-n"]
    output = runner.run(["printf", "%s\\0", *arguments])
    assert output.split("\0")[:-1] == arguments
    assert not marker.exists()


def test_large_output_on_both_streams_does_not_stall(runner):
    script = ("head -c 3000000 /dev/zero | tr '\\0' e >&2; "
              "head -c 3000000 /dev/zero | tr '\\0' o; exit 1")
    with pytest.raises(exception.CommandFailed) as caught:
        runner.run(["sh", "-c", script])
    assert set(caught.value.kwargs["stderr"].strip(".")) == {"e"}
    output = runner.run(["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' o"])
    assert len(output) == 3000000


def test_timeout_is_command_failed_and_the_runner_stays_usable(runner):
    with pytest.raises(exception.CommandFailed) as caught:
        runner.run(["sleep", "30"], timeout=0.5)
    assert "timeout" in str(caught.value)
    assert runner.run(["echo", "still here"]) == "still here\n"


def test_host_missing_from_known_hosts_is_refused(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    runner = make_runner(sshd, known_hosts_file=str(empty))
    with pytest.raises(exception.HostKeyMismatch) as caught:
        runner.run(["true"])
    assert "not trusted" in str(caught.value)


def test_host_with_a_different_key_is_refused(sshd, tmp_path):
    impostor = paramiko.ECDSAKey.generate()
    host_keys = paramiko.HostKeys()
    host_keys.add(known_hosts_name(sshd.host, sshd.port),
                  impostor.get_name(), impostor)
    path = tmp_path / "known_hosts"
    host_keys.save(str(path))
    runner = make_runner(sshd, known_hosts_file=str(path))
    with pytest.raises(exception.HostKeyMismatch) as caught:
        runner.exists("/")
    assert impostor.fingerprint in str(caught.value)


def test_sftp_file_operations(runner, remote_dir, tmp_path):
    source = tmp_path / "payload"
    source.write_bytes(b"payload " * 1000)
    nested = f"{remote_dir}/a/b/c"
    runner.makedirs(nested)
    runner.makedirs(nested)
    runner.put_file(str(source), f"{nested}/file.part")
    runner.rename(f"{nested}/file.part", f"{nested}/file")
    runner.touch(f"{nested}/empty")
    assert runner.listdir(nested) == ["empty", "file"]
    assert runner.exists(f"{nested}/file")
    assert not runner.exists(f"{nested}/nope")
    runner.get_file(f"{nested}/file", str(tmp_path / "back"))
    assert (tmp_path / "back").read_bytes() == source.read_bytes()
    assert runner.remove_tree(f"{remote_dir}/a") is True
    assert runner.remove_tree(f"{remote_dir}/a") is False
    assert runner.listdir(remote_dir) == []


def make_local_image(directory, disk_format):
    path = directory / f"base.{disk_format}"
    subprocess.run(["qemu-img", "create", "-q", "-f", disk_format, str(path),
                    "64M"], check=True, timeout=60)
    (directory / "vmlinuz").write_bytes(b"kernel")
    return {"uuid": str(uuid.uuid4()), "name": "vmflow-test-ssh",
            "file": str(path), "disk_format": disk_format,
            "kernel": str(directory / "vmlinuz"), "initrd": None}


@pytest.mark.parametrize("disk_format", ["qcow2", "raw"])
def test_image_backend_over_ssh(runner, remote_dir, tmp_path, disk_format):
    backend = imagebackend.ImageBackend(runner, f"{remote_dir}/instances")
    image = make_local_image(tmp_path, disk_format)
    cached = backend.ensure_base_image(image)
    assert sorted(cached["copied"]) == [cached["base"], cached["kernel"]]
    assert backend.ensure_base_image(image)["copied"] == []
    assert backend.disk_info(cached["base"])["format"] == disk_format

    instance_uuid = str(uuid.uuid4())
    overlay = backend.create_overlay(instance_uuid, cached["base"],
                                     disk_format, 1)
    assert overlay["created"]
    info = backend.disk_info(overlay["path"])
    assert info["backing-filename"] == cached["base"]
    assert info["virtual-size"] == GiB
    assert backend.resize_disk(overlay["path"], 2) == "resized"
    assert backend.disk_info(overlay["path"])["virtual-size"] == 2 * GiB
    assert backend.list_instance_dirs() == [instance_uuid]
    assert backend.remove_instance_files(instance_uuid) == "removed"
    assert backend.remove_instance_files(instance_uuid) == "absent"
    assert backend.list_instance_dirs() == []
    assert not [name for name in runner.listdir(backend.base_dir)
                if ".part-" in name]


def test_driver_disks_over_ssh(sshd, runner, remote_dir, tmp_path):
    host = {"name": "remote", "uri": "test:///default",
            "instances_path": f"{remote_dir}/instances",
            "ssh_user": sshd.user, "ssh_host": sshd.host,
            "ssh_port": sshd.port}
    driver = libvirt_driver.LibvirtDriver(host, runner=runner,
                                          virt_type="qemu",
                                          domain_name_prefix="vmflow-test-")
    instance = {"uuid": str(uuid.uuid4()), "name": "vmflow-test-remote"}
    image = make_local_image(tmp_path, "qcow2")
    flavor = {"vcpus": 1, "ram_mb": 64, "disk_gb": 1}
    disks = driver.create_disks(instance, image, flavor)
    assert runner.exists(disks["disk"])
    assert runner.exists(disks["console_log"])
    assert driver.instance_dir_exists(instance["uuid"])
    assert driver.disk_info(instance["uuid"])["backing-filename"] == \
        disks["base"]
    assert driver.remove_disks(instance["uuid"]) == "removed"
    assert not driver.instance_dir_exists(instance["uuid"])
