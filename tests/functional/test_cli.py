"""The vmflow CLI as a user runs it: the installed console script."""
import json
import shutil
import sqlite3

import pytest

from vmflow.persistence import migration


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
