"""Reboot and power operations through the real CLI on real QEMU guests.

Two tests, one guest each (booted once, then put through several
operations, to keep the wall time low):

* the ACPI guest (answers the power button with poweroff): a soft reboot
  that really reboots (a second boot on its console, a new libvirt domain
  id, only soft atoms ran), then stop (clean), start, pause, unpause,
  suspend, resume;
* the no-ACPI guest (ignores the power button): a soft reboot that falls
  back to hard within ``wait_soft_reboot_seconds`` plus a deadline
  margin, a stop that powers it off after ``shutdown_timeout_seconds``, a
  start, and a hard reboot after its overlay disk was deleted (the disk is
  recreated, the guest boots).

Every operation is checked in the server's vm_state, in libvirt's own
state of the domain, in the atoms persisted by TaskFlow in the project
database (the job's flow detail, found by the action's request id) and in
its instance action's events (one per run of each step).

The serial console file is appended to (``append='on'``), so every boot
of the guest adds one marker line: a reboot is proved by one more.
"""
import datetime
import json
import os
import time

import libvirt
import pytest
from taskflow import states
from taskflow import storage

from tests.conftest import Cli, started_steps, write_config
from tests.functional import flowdraw
from tests.integration.conftest import wait_until
from vmflow import exception
from vmflow.engine import persistence as engine_persistence
from vmflow.flows import reboot

BOOT_TIMEOUT = 90
FLAVOR_RAM_MB = 128
HOST = "local"
# Deadlines (not benchmarks) on top of the configured waits.
MARGIN_SECONDS = 30

# The reboot flow's two paths (vmflow/flows/reboot.py), atom by atom.
SOFT_ATOMS = ("ShutdownGuestAcpi", "MarkInstanceRebootStarted",
              "RetryUntilShutOff-soft", "WaitForGuestReboot",
              "StartDomain-soft", "RetryUntilRunning-soft",
              "WaitForDomainRunning-soft", "MarkInstanceRebooted-soft")
HARD_ATOMS = ("MarkInstanceRebootingHard", "PowerOffDomain",
              "RecreateMissingDisks", "GenerateDomainXml", "RedefineDomain",
              "StartDomain", "RetryUntilRunning", "WaitForDomainRunning",
              "MarkInstanceRebooted")
# Polls: run again (one event each run) until the domain is where they wait.
POLLS = ("WaitForGuestReboot", "WaitForCleanShutdown",
         "WaitForDomainRunning", "WaitForDomainRunning-soft")
RETRIES = ("FallBackToHardReboot", "RetryUntilShutOff",
           "RetryUntilShutOff-soft", "RetryUntilRunning",
           "RetryUntilRunning-soft")

# (CLI command, vm_state, libvirt state) of each power operation.
POWER_OPERATIONS = {
    "stop": ("stopped", libvirt.VIR_DOMAIN_SHUTOFF),
    "start": ("active", libvirt.VIR_DOMAIN_RUNNING),
    "pause": ("paused", libvirt.VIR_DOMAIN_PAUSED),
    "unpause": ("active", libvirt.VIR_DOMAIN_RUNNING),
    "suspend": ("suspended", libvirt.VIR_DOMAIN_SHUTOFF),
    "resume": ("active", libvirt.VIR_DOMAIN_RUNNING),
}


@pytest.fixture
def power_cloud(conf, tmp_path, tiny_guest, instances_root, libvirt_uri,
                clean_domains):
    """A CLI on a fresh SQLite database (the one ``conf`` points at, so
    the test reads TaskFlow's persisted atoms from it) with a flavor, both
    variants of the tiny guest as images and one host, qemu:///system.
    ``cli.configure(**libvirt_options)`` rewrites its [libvirt] options."""
    config_file = tmp_path / "vmflow.conf"
    cli = Cli(str(config_file))

    def configure(**libvirt_options):
        write_config(config_file, {
            "DEFAULT": {"state_path": conf.state_path},
            "libvirt": dict({"virt_type": "qemu",
                             "wait_running_seconds": 30,
                             "poll_interval_seconds": 0.2},
                            **libvirt_options)})

    configure()
    cli.configure = configure
    cli("db", "sync")
    cli("flavor", "create", "tiny", "--vcpus", "1", "--ram",
        str(FLAVOR_RAM_MB), "--disk", "1")
    for variant in ("acpi", "noacpi"):
        cli("image", "add", f"tiny-{variant}", "--file", str(tiny_guest.disk),
            "--kernel", str(tiny_guest.kernel), "--initrd",
            str(tiny_guest.initrd(variant)), "--cmdline", tiny_guest.cmdline)
    cli("quota", "set", "demo", "--instances", "2", "--cores", "2",
        "--ram", str(2 * FLAVOR_RAM_MB))
    host_path = os.path.join(instances_root, HOST)
    os.makedirs(host_path, mode=0o755)
    cli("host", "add", HOST, "--uri", libvirt_uri, "--vcpus", "2",
        "--memory-mb", "1024", "--disk-gb", "10", "--instances-path",
        host_path)
    cli.host_path = host_path
    cli.uuids = []
    yield cli
    for uuid in cli.uuids:
        _remove_domain(libvirt_uri, uuid)
    engine_persistence.forget_persistence()


def _remove_domain(uri, uuid):
    """Test cleanup only: what a failing test may leave behind."""
    connection = libvirt.open(uri)
    try:
        domain = connection.lookupByUUIDString(uuid)
        if domain.isActive():
            domain.destroy()
        domain.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
    except libvirt.libvirtError:
        pass
    finally:
        connection.close()


def show(cli, *args):
    return json.loads(cli(*args, "-f", "json").stdout)


class Domain:
    """libvirt's own view of an instance's domain."""

    def __init__(self, uri, uuid):
        self.uri, self.uuid = uri, uuid

    def _ask(self, question):
        connection = libvirt.open(self.uri)
        try:
            return question(connection.lookupByUUIDString(self.uuid))
        finally:
            connection.close()

    def id(self):
        return self._ask(lambda domain: domain.ID())

    def state(self):
        return self._ask(lambda domain: domain.state()[0])

    def has_managed_save(self):
        return bool(self._ask(lambda domain: domain.hasManagedSaveImage(0)))


def console_markers(cli, name, line):
    return cli("server", "console-log", name, "--max-bytes",
               str(16 * 1024 * 1024)).stdout.count(line)


def boot(cli, name, image, uri, tiny_guest, variant):
    started = time.monotonic()
    server = show(cli, "server", "create", name, "--flavor", "tiny",
                  "--image", image, "--wait")
    cli.uuids.append(server["uuid"])
    assert (server["vm_state"], server["power_state"]) == ("active",
                                                           "running")
    wait_marker(cli, name, server["uuid"], tiny_guest.marker_line(variant),
                boots=1)
    print(f"\n{name}: created and booted in "
          f"{time.monotonic() - started:.1f}s")
    return server["uuid"], Domain(uri, server["uuid"])


def wait_marker(cli, name, uuid, line, boots):
    """Wait until the console file shows ``boots`` marker lines (read
    here: cheaper than a CLI call a poll), then see exactly as many in
    ``server console-log``."""
    path = os.path.join(cli.host_path, uuid, "console.log")

    def printed():
        with open(path, "rb") as console:
            return console.read().count(line.encode()) >= boots

    wait_until(printed, BOOT_TIMEOUT,
               f"{boots} x {line!r} on {name}'s console")
    assert console_markers(cli, name, line) == boots


def timed(cli, *args):
    started = time.monotonic()
    result = cli(*args)
    return result, time.monotonic() - started


# --- persisted atoms and events ------------------------------------------

def persisted_atoms(conf, request_id):
    """The atom details of the job posted with ``request_id``, by name,
    read back through vmflow's TaskFlow persistence backend."""
    backend = engine_persistence.get_persistence(conf)
    with engine_persistence.persistence_connection(backend) as connection:
        books = [book.uuid for book in connection.get_logbooks(lazy=True)
                 if (book.meta or {}).get("vmflow", {}).get("request_id")
                 == request_id]
        assert len(books) == 1, (request_id, books)
        (flow_detail,) = list(connection.get_logbook(books[0]))
    assert flow_detail.state == states.SUCCESS, flow_detail
    return {atom.name: atom for atom in flow_detail}


def last_action(cli, name, action):
    """The events of the server's latest action ``action`` and its request
    id; prints the time from its first step's start to its last's end."""
    events = show(cli, "server", "event-list", name)
    request_id = [event["request_id"] for event in events
                  if event["action"] == action][-1]
    events = [event for event in events if event["request_id"] == request_id]
    steps = (datetime.datetime.fromisoformat(events[-1]["finish_time"])
             - datetime.datetime.fromisoformat(events[0]["start_time"]))
    print(f"  {action} {name}: {len(events)} events, steps took "
          f"{steps.total_seconds():.1f}s")
    return request_id, events


def assert_one_event_per_step(atoms, events, reverted=()):
    """Every task that ran has its events, one per run: polls one per poll
    (failures until the last, which succeeded), other steps exactly one
    (success); a task that did not run (IGNORE) has none. ``reverted``:
    the steps of an attempt a retry reverted, whose events of that attempt
    say ``reverted`` (or ``failure``, the one that failed), followed by
    ``success`` when the next attempt ran them again."""
    by_step = {}
    for event in events:
        # Steps that act on a host name it; state writes name none.
        assert event["host"] in (HOST, None), event
        by_step.setdefault(event["event"], []).append(event["result"])
    ran = {name for name, atom in atoms.items()
           if name not in RETRIES + (storage.Storage.injector_name,)
           and atom.state == states.SUCCESS}
    assert set(by_step) == ran | set(reverted), (sorted(by_step),
                                                 sorted(ran))
    undone = {"reverted", "failure"}
    for step, results in by_step.items():
        first_attempt = results
        if step in ran:
            assert results[-1] == "success", (step, results)
            first_attempt = results[:-1]
        if step in POLLS:
            assert set(first_attempt) <= undone, (step, results)
        elif step in reverted:
            assert len(first_attempt) == 1, (step, results)
            assert set(first_attempt) <= undone, (step, results)
        else:
            assert results == ["success"], (step, results)


def assert_audit_ok(cli):
    """``vmflow audit`` finds nothing wrong, apart from domains of other
    test sessions on the shared qemu:///system (not this test's)."""
    report = json.loads(cli("audit", check=False).stdout)
    problems = [problem for check in report["checks"].values()
                for problem in check["problems"]]
    foreign = [problem for problem in problems
               if problem.startswith("domain vmflow-")
               and " belongs to no live instance " in problem
               and not any(uuid in problem for uuid in cli.uuids)]
    assert set(problems) == set(foreign), problems


def assert_state(cli, name, domain, vm_state, libvirt_state):
    server = show(cli, "server", "show", name)
    assert (server["vm_state"], server["task_state"]) == (vm_state, None), \
        server
    assert domain.state() == libvirt_state, (name, domain.state())


# --- the tests ---------------------------------------------------------------

def test_acpi_guest_soft_reboots_and_power_operations(
        power_cloud, conf, libvirt_uri, tiny_guest):
    cli = power_cloud
    cli.configure(wait_soft_reboot_seconds=60, shutdown_timeout_seconds=60)
    line = tiny_guest.marker_line("acpi")
    uuid, domain = boot(cli, "vm-acpi", "tiny-acpi", libvirt_uri, tiny_guest,
                        "acpi")
    assert console_markers(cli, "vm-acpi", line) == 1
    id_before = domain.id()

    # 1. Soft reboot: the guest powers off on ACPI and is started again.
    result, seconds = timed(cli, "server", "reboot", "vm-acpi", "--wait",
                            "-f", "json")
    # One boot before the reboot, one after.
    wait_marker(cli, "vm-acpi", uuid, line, boots=2)
    print(f"soft reboot (ACPI) took {seconds:.1f}s")
    server = json.loads(result.stdout)
    assert (server["vm_state"], server["power_state"],
            server["task_state"]) == ("active", "running", None)
    assert domain.state() == libvirt.VIR_DOMAIN_RUNNING
    assert domain.id() != id_before, id_before

    request_id, events = last_action(cli, "vm-acpi", "reboot")
    atoms = persisted_atoms(conf, request_id)
    assert {name: atoms[name].state for name in SOFT_ATOMS} == dict.fromkeys(
        SOFT_ATOMS, states.SUCCESS)
    assert {name: atoms[name].state for name in HARD_ATOMS} == dict.fromkeys(
        HARD_ATOMS, states.IGNORE)
    assert atoms["WaitForGuestReboot"].results == "shut-off"
    assert [value for value, _failures in
            atoms["FallBackToHardReboot"].results] == ["soft"]
    assert_one_event_per_step(atoms, events)

    # 4. Power operations, in turn, on the same guest.
    for operation, (vm_state, libvirt_state) in POWER_OPERATIONS.items():
        _result, seconds = timed(cli, "server", operation, "vm-acpi",
                                 "--wait")
        print(f"{operation} took {seconds:.1f}s")
        assert_state(cli, "vm-acpi", domain, vm_state, libvirt_state)
        request_id, events = last_action(cli, "vm-acpi", operation)
        atoms = persisted_atoms(conf, request_id)
        assert_one_event_per_step(atoms, events)
        if operation == "stop":
            # Clean: the guest powered itself off, nothing was destroyed.
            assert atoms["WaitForCleanShutdown"].results is True
            assert atoms["PowerOffDomain"].results == "already-off"
            assert seconds < 60 + MARGIN_SECONDS
        if operation == "suspend":
            assert domain.has_managed_save()
        if operation in ("start", "resume"):
            assert not domain.has_managed_save()
        if operation == "start":
            wait_marker(cli, "vm-acpi", uuid, line, boots=3)  # a new boot
        if operation == "resume":
            # Went on from the saved memory: no new boot.
            assert console_markers(cli, "vm-acpi", line) == 3

    cli("server", "delete", "vm-acpi", "--wait")
    assert_audit_ok(cli)


def test_noacpi_guest_falls_back_to_hard_and_is_powered_off(
        power_cloud, conf, libvirt_uri, tiny_guest, tmp_path):
    cli = power_cloud
    soft_wait, shutdown_timeout = 5, 3
    cli.configure(wait_soft_reboot_seconds=soft_wait,
                  shutdown_timeout_seconds=shutdown_timeout)
    line = tiny_guest.marker_line("noacpi")
    uuid, domain = boot(cli, "vm-noacpi", "tiny-noacpi", libvirt_uri,
                        tiny_guest, "noacpi")
    id_before = domain.id()

    # 2. Soft reboot: the guest ignores ACPI; the reboot goes on hard.
    result, seconds = timed(cli, "server", "reboot", "vm-noacpi", "--wait",
                            "-f", "json")
    wait_marker(cli, "vm-noacpi", uuid, line, boots=2)
    print(f"soft reboot falling back to hard took {seconds:.1f}s "
          f"(wait_soft_reboot_seconds={soft_wait})")
    assert seconds < soft_wait + MARGIN_SECONDS
    assert seconds >= soft_wait
    assert "PowerOffDomain" in started_steps(result.stderr)
    # The soft wait polled "not yet" for seconds: shown starting once, its
    # expected failures never; its deadline's failure is the fallback.
    assert started_steps(result.stderr).count("WaitForGuestReboot") == 1
    assert "not shut off yet" not in result.stderr
    server = json.loads(result.stdout)
    assert (server["vm_state"], server["power_state"],
            server["task_state"]) == ("active", "running", None)
    assert domain.state() == libvirt.VIR_DOMAIN_RUNNING
    assert domain.id() != id_before

    request_id, events = last_action(cli, "vm-noacpi", "reboot")
    atoms = persisted_atoms(conf, request_id)
    history = atoms["FallBackToHardReboot"].results
    assert [value for value, _failures in history] == ["soft", "hard"]
    (soft_failure,) = history[0][1].values()
    assert soft_failure.check(exception.GuestIgnoredShutdown), soft_failure
    assert history[1][1] == {}
    assert {name: atoms[name].state for name in HARD_ATOMS} == dict.fromkeys(
        HARD_ATOMS, states.SUCCESS)
    # The retried attempt's soft atoms were reset and left out.
    assert {name: atoms[name].state for name in SOFT_ATOMS} == dict.fromkeys(
        SOFT_ATOMS, states.IGNORE)
    soft_steps = [event["event"] for event in events
                  if event["event"] in SOFT_ATOMS]
    assert set(soft_steps) == {"ShutdownGuestAcpi",
                               "MarkInstanceRebootStarted",
                               "WaitForGuestReboot"}, soft_steps
    assert_one_event_per_step(
        atoms, events, reverted={"SelectRebootMethod", *soft_steps})
    # Drawn: both tries, the soft branch skipped, each colour its state.
    job = cli("flow", "show", "--server", "vm-noacpi").stdout.splitlines()[
        0].rsplit("job ", 1)[1]
    _states, _svg, text = flowdraw.check_drawing(
        cli, job, reboot.get_reboot_flow,
        f"sqlite:///{conf.state_path}/vmflow.sqlite", tmp_path)
    assert "try 1: soft failed: GuestIgnoredShutdown" in text, text
    assert "try 2: hard ok" in text
    assert "soft-reboot (linear flow) if runs_soft_path — skipped" in text

    # 4. Stop: ACPI ignored, powered off after shutdown_timeout_seconds.
    _result, seconds = timed(cli, "server", "stop", "vm-noacpi", "--wait")
    print(f"stop (no ACPI) took {seconds:.1f}s "
          f"(shutdown_timeout_seconds={shutdown_timeout})")
    assert shutdown_timeout <= seconds < shutdown_timeout + MARGIN_SECONDS
    assert_state(cli, "vm-noacpi", domain, "stopped",
                 libvirt.VIR_DOMAIN_SHUTOFF)
    request_id, events = last_action(cli, "vm-noacpi", "stop")
    atoms = persisted_atoms(conf, request_id)
    assert atoms["WaitForCleanShutdown"].results is False
    assert atoms["PowerOffDomain"].results == "destroyed"
    assert_one_event_per_step(atoms, events)

    # 3. Hard reboot (from stopped) after the overlay disk was deleted.
    disk = os.path.join(cli.host_path, uuid, "disk")
    assert os.path.isfile(disk)
    os.unlink(disk)
    result, seconds = timed(cli, "server", "reboot", "vm-noacpi", "--hard",
                            "--wait", "-f", "json")
    wait_marker(cli, "vm-noacpi", uuid, line, boots=3)
    print(f"hard reboot with its disk deleted took {seconds:.1f}s")
    server = json.loads(result.stdout)
    assert (server["vm_state"], server["power_state"],
            server["task_state"]) == ("active", "running", None)
    assert domain.state() == libvirt.VIR_DOMAIN_RUNNING
    assert os.path.isfile(disk)
    request_id, events = last_action(cli, "vm-noacpi", "reboot")
    atoms = persisted_atoms(conf, request_id)
    assert [value for value, _failures in
            atoms["FallBackToHardReboot"].results] == ["hard"]
    assert {name: atoms[name].state for name in SOFT_ATOMS} == dict.fromkeys(
        SOFT_ATOMS, states.IGNORE)
    assert {name: atoms[name].state for name in HARD_ATOMS} == dict.fromkeys(
        HARD_ATOMS, states.SUCCESS)
    assert disk in atoms["RecreateMissingDisks"].results["created"], \
        atoms["RecreateMissingDisks"].results
    assert_one_event_per_step(atoms, events)

    cli("server", "delete", "vm-noacpi", "--wait")
    assert_audit_ok(cli)
