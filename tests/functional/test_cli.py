"""The vmflow CLI as a user runs it: the installed console script."""
import json
import sqlite3
import shutil
import subprocess

import pytest

from tests.conftest import Cli, write_config
from vmflow.persistence import migration, models

UNREACHABLE_URI = "qemu+tcp://127.0.0.1:1/system"


def snapshot(state_dir):
    """Every row of every vmflow table, to prove a failed command wrote
    nothing."""
    with sqlite3.connect(state_dir / "vmflow.sqlite") as connection:
        return {table: connection.execute(
                    f"SELECT * FROM {table} ORDER BY 1").fetchall()
                for table in models.Base.metadata.tables}


@pytest.fixture(scope="module")
def disk_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("disks")
    qcow2 = folder / "disk.qcow2"
    raw = folder / "disk.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow2),
                    "64M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(raw), "1M"],
                   check=True)
    kernel = folder / "vmlinuz"
    kernel.write_bytes(b"not really a kernel")
    (folder / "instances").mkdir()
    return {"qcow2": str(qcow2), "raw": str(raw), "kernel": str(kernel),
            "instances": str(folder / "instances")}


@pytest.fixture(scope="module")
def populated_state(tmp_path_factory, disk_files):
    """A database with one of everything, made once through the CLI."""
    folder = tmp_path_factory.mktemp("populated")
    cli = Cli(write_config(folder / "vmflow.conf", {
        "DEFAULT": {"state_path": folder / "state"}}))
    cli("db", "sync")
    cli("host", "add", "local", "--uri", "test:///default", "--vcpus", "4",
        "--memory-mb", "4096", "--disk-gb", "40",
        "--instances-path", disk_files["instances"])
    cli("flavor", "create", "tiny", "--vcpus", "1", "--ram", "128",
        "--disk", "1")
    cli("image", "add", "cirros", "--file", disk_files["qcow2"],
        "--kernel", disk_files["kernel"], "--cmdline", "console=ttyS0")
    cli("quota", "set", "demo", "--instances", "3", "--ram", "1024")
    return folder / "state"


@pytest.fixture
def populated(cli, tmp_path, populated_state):
    """A private copy of the populated database for one test."""
    shutil.copytree(populated_state, tmp_path / "state")
    return cli


def as_json(result):
    return json.loads(result.stdout)


def test_db_sync_reports_the_revision(cli):
    data = as_json(cli("db", "sync", "-f", "json"))
    assert data["revision"] == migration.head_revision()
    assert data["database"].endswith("vmflow.sqlite")
    version = as_json(cli("db", "version", "-f", "json"))
    assert version["head"] == version["revision"] == data["revision"]


def test_commands_before_db_sync_say_what_to_do(cli):
    result = cli("flavor", "list", check=False)
    assert result.returncode == 1
    assert "run 'vmflow db sync'" in result.stderr


def test_inventory_round_trip_in_every_format(populated, tmp_path,
                                             disk_files):
    cli = populated
    hosts = as_json(cli("host", "list", "-f", "json"))
    assert [(h["name"], h["vcpus"], h["enabled"]) for h in hosts] == [
        ("local", 4, True)]
    host = as_json(cli("host", "show", "local", "-f", "json"))
    assert host["instances_path"] == disk_files["instances"]
    assert host["ssh_host"] is None

    disabled = as_json(cli("host", "set", "local", "--disable", "--reason",
                           "disk swap", "-f", "json"))
    assert (disabled["enabled"], disabled["disabled_reason"]) == (
        False, "disk swap")
    enabled = as_json(cli("host", "set", "local", "--enable", "-f", "json"))
    assert (enabled["enabled"], enabled["disabled_reason"]) == (True, None)

    assert cli("flavor", "list", "-f", "value").stdout.split() == [
        "1", "tiny", "1", "128", "1"]
    image = as_json(cli("image", "list", "-f", "json"))[0]
    assert image["disk_format"] == "qcow2"
    assert image["virtual_size_bytes"] == 64 * 1024 * 1024
    assert image["kernel"] == disk_files["kernel"]
    assert "cirros" in cli("image", "list", "-f", "table").stdout

    quota = {row["resource"]: row for row in
             as_json(cli("quota", "show", "demo", "-f", "json"))}
    assert quota["instances"]["limit"] == 3
    assert quota["instances"]["source"] == "project"
    assert quota["cores"]["source"] == "default"
    assert quota["ram"] == {"resource": "ram", "limit": 1024, "in_use": 0,
                            "source": "project"}

    cli("flavor", "delete", "tiny")
    cli("image", "delete", "cirros")
    assert as_json(cli("flavor", "list", "-f", "json")) == []
    assert as_json(cli("image", "list", "-f", "json")) == []


HOST = ("host", "add")
SIZES = ("--vcpus", "2", "--memory-mb", "512", "--disk-gb", "5")


@pytest.mark.parametrize("args, bad_value", [
    (HOST + ("h2", "--uri", "test:///default", "--vcpus", "-2",
             "--memory-mb", "512", "--disk-gb", "5"), "'-2'"),
    (HOST + ("h2", "--uri", "test:///default", "--vcpus", "2",
             "--memory-mb", "0", "--disk-gb", "5"), "'0'"),
    (HOST + ("local", "--uri", "test:///default") + SIZES, "'local'"),
    (HOST + ("a/b", "--uri", "test:///default") + SIZES, "'a/b'"),
    (HOST + ("..", "--uri", "test:///default") + SIZES, "'..'"),
    (HOST + ("bad\x07name", "--uri", "test:///default") + SIZES,
     r"'bad\x07name'"),
    (HOST + ("h" * 64, "--uri", "test:///default") + SIZES, "'" + "h" * 64),
    (HOST + ("h2", "--uri", UNREACHABLE_URI) + SIZES, UNREACHABLE_URI),
    (HOST + ("h2", "--uri", "test:///default", "--ssh", "nobody") + SIZES,
     "'nobody'"),
    (HOST + ("h2", "--uri", "test:///default", "--instances-path",
             "/srv/../etc") + SIZES, "'/srv/../etc'"),
    (("host", "show", "ghost"), "'ghost'"),
    (("host", "set", "ghost", "--disable"), "'ghost'"),
    (("flavor", "create", "tiny", "--vcpus", "1", "--ram", "64", "--disk",
      "1"), "'tiny'"),
    (("flavor", "create", "f2", "--vcpus", "1", "--ram", "-64", "--disk",
      "1"), "'-64'"),
    (("flavor", "create", "f/2", "--vcpus", "1", "--ram", "64", "--disk",
      "1"), "'f/2'"),
    (("flavor", "delete", "ghost"), "'ghost'"),
    (("image", "add", "img2", "--file", "/nonexistent/disk.qcow2"),
     "'/nonexistent/disk.qcow2'"),
    (("image", "add", "cirros", "--file", "{qcow2}"), "'cirros'"),
    (("image", "add", "img2", "--file", "{raw}", "--format", "qcow2"),
     "'{raw}'"),
    (("image", "add", "img2", "--file", "{qcow2}", "--kernel",
      "/nonexistent/vmlinuz"), "'/nonexistent/vmlinuz'"),
    (("image", "add", "img2", "--file", "{qcow2}", "--format", "vmdk"),
     "'vmdk'"),
    (("image", "add", "../img", "--file", "{qcow2}"), "'../img'"),
    (("image", "delete", "ghost"), "'ghost'"),
    (("quota", "set", "demo", "--cores", "-5"), "'-5'"),
    (("quota", "set", "de/mo", "--cores", "5"), "'de/mo'"),
    (("quota", "show", "x" * 70), "'" + "x" * 70),
])
def test_bad_input_is_one_line_error_and_changes_nothing(
        populated, tmp_path, disk_files, args, bad_value):
    args = tuple(arg.format(**disk_files) for arg in args)
    bad_value = bad_value.format(**disk_files)
    before = snapshot(tmp_path / "state")
    result = populated(*args, check=False)
    assert result.returncode in (1, 2), result
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1, result.stderr
    assert bad_value in error_lines[0]
    assert result.stdout == ""
    assert snapshot(tmp_path / "state") == before


def test_in_use_flavor_and_image_cannot_be_deleted(populated, tmp_path):
    with sqlite3.connect(tmp_path / "state" / "vmflow.sqlite") as db:
        db.execute(
            "INSERT INTO instances (uuid, name, project, flavor_id, "
            "image_id, vcpus, memory_mb, disk_gb, vm_state, power_state, "
            "created_at) VALUES ('u1', 'vm1', 'demo', 1, 1, 1, 128, 1, "
            "'active', 'running', '2026-01-01')")
        # Quota usage is the sum of the project's holds: a live instance
        # holds one (committed once its build finished).
        db.execute(
            "INSERT INTO quota_holds (consumer_uuid, project, instances, "
            "cores, ram, state, created_at) VALUES ('u1', 'demo', 1, 1, 128, "
            "'committed', '2026-01-01')")
    for kind, name in (("flavor", "tiny"), ("image", "cirros")):
        result = populated(kind, "delete", name, check=False)
        assert result.returncode == 1
        assert f"{kind} '{name}' is in use: 1 instance(s)" in result.stderr
    quota = {row["resource"]: row["in_use"] for row in as_json(
        populated("quota", "show", "demo", "-f", "json"))}
    assert quota == {"instances": 1, "cores": 1, "ram": 128}
