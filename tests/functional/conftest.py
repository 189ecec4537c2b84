"""Disk files good and bad, and a database with one of everything, for
the CLI tests (import the fixtures into a test module)."""
import os
import subprocess

import pytest

from tests.cloud import NODE_XML
from tests.conftest import Cli, write_config


def qemu_img(*args):
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


@pytest.fixture(scope="session")
def disk_files(tmp_path_factory):
    """Path by name: disks good and bad, a kernel, an instances folder, a
    test-driver node file, an empty known_hosts, a garbled config file."""
    folder = tmp_path_factory.mktemp("files")
    paths = {name: str(folder / name) for name in (
        "qcow2", "raw", "kernel", "instances", "regular_file",
        "data_file_qcow2", "data_file", "empty", "short_text", "sector_text",
        "backed_qcow2", "broken_qcow2", "node_xml", "known_hosts",
        "garbled")}
    qemu_img("create", "-q", "-f", "qcow2", paths["qcow2"], "64M")
    qemu_img("create", "-q", "-f", "raw", paths["raw"], "1M")
    qemu_img("create", "-q", "-f", "raw", paths["data_file"], "1M")
    qemu_img("create", "-q", "-f", "qcow2", "-o",
             f"data_file={paths['data_file']},data_file_raw=on",
             paths["data_file_qcow2"], "1M")
    qemu_img("create", "-q", "-f", "qcow2", "-b", paths["qcow2"], "-F",
             "qcow2", paths["backed_qcow2"])
    with open(paths["broken_qcow2"], "wb") as broken:
        broken.write(b"QFI\xfb\x00\x00\x00\x03" + b"\xff" * 1016)
    os.mkdir(paths["instances"])
    contents = {"kernel": "not really a kernel", "regular_file": "",
                "empty": "", "short_text": "just a line of text\n",
                "sector_text": "a line of text.\n" * 64, "node_xml": NODE_XML,
                "known_hosts": "", "garbled": "no section header\n"}
    for name, text in contents.items():
        with open(paths[name], "w") as out:
            out.write(text)
    return paths


def populate(cli, files):
    """One host, flavor, image and project quota, through the CLI."""
    cli("db", "sync")
    cli("host", "add", "local", "--uri", "test:///default", "--vcpus", "4",
        "--memory-mb", "4096", "--disk-gb", "40",
        "--instances-path", files["instances"])
    cli("flavor", "create", "tiny", "--vcpus", "1", "--ram", "128",
        "--disk", "1")
    cli("image", "add", "cirros", "--file", files["qcow2"],
        "--kernel", files["kernel"], "--cmdline", "console=ttyS0")
    cli("quota", "set", "demo", "--instances", "3", "--ram", "1024")


@pytest.fixture(scope="session")
def populated_state(tmp_path_factory, disk_files):
    """An SQLite state folder made by :func:`populate` (copy it to use)."""
    folder = tmp_path_factory.mktemp("populated")
    populate(Cli(write_config(folder / "vmflow.conf", {
        "DEFAULT": {"state_path": folder / "state"}})), disk_files)
    return folder / "state"
