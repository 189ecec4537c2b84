"""``vmflow server resize|migrate``, ``server resize confirm|revert`` and
``vmflow migration list`` through the real CLI, on SQLite and two private
libvirt test-driver hypervisors (hosts h1 and h2).

The commands run by cliff in this process (libvirt's test driver lives in
the process that opened it, so a ``--wait`` run here leaves its domains
for the next command); the migration list seen *while* a resize runs is
read by the installed ``vmflow`` console script, started at the steps
that change the migration's status.

A refusal prints one stderr line naming the bad value, exits 1, prints
nothing on stdout and leaves every row of every table as it was: no job,
no migration, no lock, no instance action.
"""
import json
import subprocess

import pytest

from tests.cloud import NODE_XML, image_file  # noqa: F401 (fixture)
from tests.conftest import Cli, started_steps
from tests.functional.test_cli_server_actions import (  # noqa: F401
    bring_to, cloud_cli, every_row)
from vmflow import compute
from vmflow.flows import iter_tasks, resize
from vmflow.tasks import hooks

HOSTS = ("h1", "h2")


@pytest.fixture
def two_hosts(cloud_cli):  # noqa: F811
    """``cloud_cli`` (host h1, flavor tiny, image img, quota of two
    servers) with host h2 on its own test-driver hypervisor and instances
    path, and flavor small (2 vCPUs, 128 MiB, 2 GiB)."""
    cli = cloud_cli
    node = cli.tmp_path / "h2-node.xml"
    node.write_text(NODE_XML)
    (cli.tmp_path / "h2-instances").mkdir()
    cli("host", "add", "h2", "--uri", f"test://{node}", "--vcpus", "4",
        "--memory-mb", "4096", "--disk-gb", "20", "--instances-path",
        str(cli.tmp_path / "h2-instances"))
    cli("flavor", "create", "small", "--vcpus", "2", "--ram", "128",
        "--disk", "2")
    return cli


def other_host(host):
    return next(name for name in HOSTS if name != host)


def shown_steps(result):
    return started_steps(result.stderr)


def task_names(factory):
    return [task.name for task in iter_tasks(factory())]


def migrations_of(cli, server="vm1"):
    return cli.json("migration", "list", "--server", server)


def server_json(result):
    return json.loads(result.stdout)


def assert_audit_ok(cli):
    report = cli("audit", check=False)
    assert report.returncode == 0, report.stdout


def test_resize_revert_migrate_confirm_through_the_cli(two_hosts):
    cli = two_hosts
    uuid = bring_to(cli, "active")
    source = cli.json("server", "show", "vm1")["host"]
    dest = other_host(source)

    resized = cli("server", "resize", "vm1", "--flavor", "small", "--wait",
                  "-f", "json")
    server = server_json(resized)
    assert (server["vm_state"], server["task_state"], server["host"],
            server["flavor"], server["power_state"]) == (
        "resized", None, dest, "small", "running")
    assert shown_steps(resized) == task_names(resize.get_resize_flow)
    [migration] = migrations_of(cli)
    assert (migration["migration_type"], migration["status"],
            migration["source_host"], migration["dest_host"],
            migration["old_flavor"], migration["new_flavor"]) == (
        "resize", "finished", source, dest, "tiny", "small")
    assert_audit_ok(cli)

    reverted = server_json(cli("server", "resize", "revert", "vm1", "--wait",
                               "-f", "json"))
    assert (reverted["vm_state"], reverted["task_state"], reverted["host"],
            reverted["flavor"], reverted["power_state"]) == (
        "active", None, source, "tiny", "running")
    assert [row["status"] for row in migrations_of(cli)] == ["reverted"]
    assert_audit_ok(cli)

    cli("server", "stop", "vm1", "--wait")
    migrated = server_json(cli("server", "migrate", "vm1", "--wait", "-f",
                               "json"))
    assert (migrated["vm_state"], migrated["host"], migrated["flavor"],
            migrated["power_state"]) == ("resized", dest, "tiny", "shutdown")
    confirmed = cli("server", "resize", "confirm", "vm1", "--wait", "-f",
                    "json")
    server = server_json(confirmed)
    assert (server["vm_state"], server["task_state"], server["host"],
            server["flavor"]) == ("stopped", None, dest, "tiny")
    assert shown_steps(confirmed) == task_names(
        resize.get_confirm_resize_flow)
    rows = migrations_of(cli)
    assert [(row["migration_type"], row["status"], row["dest_host"])
            for row in rows] == [("resize", "reverted", dest),
                                 ("migration", "confirmed", dest)]
    # Every server's migrations: the same rows (one server here).
    assert cli.json("migration", "list") == rows
    events = {event["action"] for event in
              cli.json("server", "event-list", uuid)}
    assert {"resize", "revertResize", "migrate",
            "confirmResize"} <= events
    assert every_row(cli)["instance_locks"] == []
    assert_audit_ok(cli)


def test_migration_list_follows_each_status_as_it_happens(two_hosts,
                                                          monkeypatch):
    """The installed ``vmflow migration list`` is run at each step that
    changes the migration's status, while the resize runs."""
    cli = two_hosts
    bring_to(cli, "active")
    console = Cli(cli.config_file)
    watched = {"CreateMigrationRecord", "SetMigrationMigrating",
               "SetMigrationPostMigrating", "SetMigrationFinished",
               "SetMigrationConfirming", "SetMigrationConfirmed"}
    seen = []
    real_pause = hooks.pause_point

    def look(task_name, point):
        if task_name in watched and point == "after-execute":
            listed = json.loads(console("migration", "list", "--server",
                                        "vm1", "-f", "json").stdout)
            seen.append((task_name, [row["status"] for row in listed]))
        real_pause(task_name, point)

    monkeypatch.setattr(hooks, "pause_point", look)
    cli("server", "resize", "vm1", "--flavor", "small", "--wait")
    cli("server", "resize", "confirm", "vm1", "--wait")
    assert seen == [
        ("CreateMigrationRecord", ["pre-migrating"]),
        ("SetMigrationMigrating", ["migrating"]),
        ("SetMigrationPostMigrating", ["post-migrating"]),
        ("SetMigrationFinished", ["finished"]),
        ("SetMigrationConfirming", ["confirming"]),
        ("SetMigrationConfirmed", ["confirmed"])]


def test_a_failed_resize_ends_its_migration_in_error(two_hosts,
                                                     monkeypatch):
    cli = two_hosts
    bring_to(cli, "active")
    source = cli.json("server", "show", "vm1")["host"]
    monkeypatch.setenv(hooks.FAIL_AT, "DefineDomainOnDestination")
    failed = cli("server", "resize", "vm1", "--flavor", "small", "--wait",
                 check=False)
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1].startswith(
        "vmflow: error: resize of server vm1 failed: "
        "DefineDomainOnDestination failed: injected fault")
    monkeypatch.delenv(hooks.FAIL_AT)
    server = cli.json("server", "show", "vm1")
    assert (server["vm_state"], server["task_state"], server["host"],
            server["flavor"], server["power_state"]) == (
        "active", None, source, "tiny", "running")
    assert [(row["status"], row["dest_host"])
            for row in migrations_of(cli)] == [("error", other_host(source))]
    assert_audit_ok(cli)


# --- refusals ----------------------------------------------------------------

def assert_refused(cli, args, expected):
    """``vmflow ARGS`` refused with the one line ``expected``, nothing
    written."""
    before = every_row(cli)
    result = cli(*args, check=False)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr == f"vmflow: error: {expected}\n"
    assert every_row(cli) == before


def test_resize_and_migrate_refuse_bad_flavors_and_hosts(two_hosts):
    cli = two_hosts
    cli("server", "create", "vm1", "--flavor", "small", "--image", "img",
        "--wait")
    cli("flavor", "create", "medium", "--vcpus", "2", "--ram", "256",
        "--disk", "3")
    host = cli.json("server", "show", "vm1")["host"]
    refusals = [
        (("server", "resize", "vm1", "--flavor", "nope"),
         "flavor 'nope' not found"),
        (("server", "resize", "vm1", "--flavor", "small"),
         "invalid input: server 'vm1' already has flavor 'small'; "
         "'server migrate' moves it as it is"),
        (("server", "resize", "vm1", "--flavor", "tiny"),
         "flavor tiny has a 1 GiB disk, smaller than the server's disk "
         "(2 GiB)"),
        (("server", "resize", "vm1", "--flavor", "medium", "--host", "nope"),
         "host 'nope' not found"),
        (("server", "migrate", "vm1", "--host", host),
         f"invalid input: server 'vm1' is on host {host!r} already; a "
         "migration moves it to another host"),
        (("server", "migrate", "vm1", "--host", "nope"),
         "host 'nope' not found"),
        (("server", "resize", "confirm", "vm1"),
         "cannot confirmResize server 'vm1': it is active; confirmResize "
         "needs resized or error"),
        (("server", "resize", "revert", "vm1"),
         "cannot revertResize server 'vm1': it is active; revertResize "
         "needs resized or error"),
    ]
    for args, expected in refusals:
        assert_refused(cli, args, expected)


STATE_REFUSALS = [
    ("paused", ("server", "resize", "vm1", "--flavor", "medium"),
     "cannot resize server 'vm1': it is paused; resize needs active or "
     "stopped"),
    ("paused", ("server", "migrate", "vm1"),
     "cannot migrate server 'vm1': it is paused; migrate needs active or "
     "stopped"),
    ("resized", ("server", "resize", "vm1", "--flavor", "medium"),
     "cannot resize server 'vm1': it is resized; resize needs active or "
     "stopped"),
    ("resized", ("server", "migrate", "vm1"),
     "cannot migrate server 'vm1': it is resized; migrate needs active or "
     "stopped"),
]


def test_resize_and_migrate_need_an_active_or_stopped_server(two_hosts,
                                                             monkeypatch):
    """Refused through the whole command, then with the early check
    skipped (the check at the door, under the instance's lock, refuses on
    its own)."""
    cli = two_hosts
    cli("flavor", "create", "medium", "--vcpus", "2", "--ram", "256",
        "--disk", "3")
    bring_to(cli, "paused")
    for state in ("paused", "resized"):
        if state == "resized":
            cli("server", "unpause", "vm1", "--wait")
            cli("server", "resize", "vm1", "--flavor", "small", "--wait")
        for refused_in, args, expected in STATE_REFUSALS:
            if refused_in == state:
                assert_refused(cli, args, expected)
    real_check = compute._check_action
    calls = []

    def door_only(*args):
        calls.append(args)
        if len(calls) > 1:   # the first call is the early one
            real_check(*args)

    monkeypatch.setattr(compute, "_check_action", door_only)
    for refused_in, args, expected in STATE_REFUSALS:
        if refused_in == "resized":
            calls.clear()
            assert_refused(cli, args, expected)
            assert len(calls) == 2


def test_a_build_whose_flavor_disk_cannot_hold_the_image_is_refused(
        two_hosts):
    """At once, nothing written (it used to be scheduled, fail on every
    host and end in ERROR)."""
    cli = two_hosts
    big = cli.tmp_path / "big.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(big),
                    "2G"], check=True)
    cli("image", "add", "big", "--file", str(big))
    for wait in ((), ("--wait",)):
        assert_refused(
            cli, ("server", "create", "vm1", "--flavor", "tiny", "--image",
                  "big", *wait),
            f"flavor tiny has a 1 GiB disk, smaller than image 'big' "
            f"({2 * 1024 ** 3} bytes)")
    server = cli.json("server", "create", "vm1", "--flavor", "small",
                      "--image", "big", "--wait")
    assert server["vm_state"] == "active"
