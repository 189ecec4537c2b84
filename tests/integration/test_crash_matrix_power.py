"""The crash matrix of reboot, stop and start: a real ``vmflow-engine`` is
killed with SIGKILL at every atom boundary of each scenario, started
again, and the job must end consistent with the audit passing; the guest's
disk and domain definition are never lost.

Scenarios (each case is scenario x task x crash point, the tasks taken
from the flows with :func:`vmflow.flows.iter_tasks`):

``soft``
    A soft reboot of the tiny real guest that powers off on ACPI: the
    reboot's common tasks and the soft path (the hard path is IGNOREd).
``fallback``
    A soft reboot of the flowbed's blank guest, which ignores ACPI: the
    soft tasks that run until ``[libvirt] wait_soft_reboot_seconds`` passes
    (GuestIgnoredShutdown), then every task of the hard path.
``hard``
    A hard reboot: the common tasks and the hard path.
``stop``, ``start``
    Stop of the running blank guest (it ignores ACPI: powered off after
    ``shutdown_timeout_seconds``), start of the stopped one.

Crash points as in :mod:`tests.integration.test_crash_matrix`; for
``during-revert`` the scenario's next task fails (the last one fails
itself), except in the fallback's soft tasks, which the guest's ignoring
ACPI reverts by itself. What must hold then comes from the flows: a
failure inside the soft path of a soft reboot falls back to the hard
path, which succeeds (ACTIVE); any other failure of a reboot ends ERROR
with the injected fault; a failed stop or start gives the previous
vm_state back with a fault.

Each case builds its server in this process on a copy of one template
database (and stops it, for ``start``); its two runners are forked from one
process that imported vmflow once (:mod:`tests.integration.forkserver`).
126 cases took 21 min on the shared 2-core test bed (load 3-4): soft 17 s a
case (the tiny guest boots before its reboot), fallback 10 s, hard 7 s,
start 8 s, stop 6 s.

A crash point a scenario never reaches is not skipped: it is listed in
:data:`UNREACHED` with the reason, and its case asserts that the runner
ran the job to its end without ever getting there.
"""
import dataclasses
import shutil
import signal

import pytest

from tests.functional.engine import helpers
from tests.integration import forkserver
from tests.integration.flowbed import (  # noqa: F401 (fixtures)
    EVERYTHING_THERE, FLAVOR, HOST, IMAGE, PROJECT, disks_root, make_cloud,
    sweeper, template_db)
from vmflow import compute, power_states
from vmflow.engine import actions, operations, power_sync
from vmflow.flows import constants, find_subflow, iter_tasks, pieces
from vmflow.flows import power, reboot
from vmflow.inventory import flavors, images
from vmflow.persistence import api, models
from vmflow.tasks import base, hooks

DURING_REVERT = "during-revert"
BEFORE, AFTER = hooks.CRASH_POINTS[:2]
RUNNER_TIMEOUT = 90
BOOT_TIMEOUT = 60
ACPI_IMAGE = ACPI_FLAVOR = "acpi-guest"
ACPI_FLAVOR_RAM_MB = 128  # the tiny guest's kernel needs it


def subflow_tasks(flow, name):
    """Names of the tasks of the subflow ``name`` of ``flow``."""
    return [task.name for task in iter_tasks(find_subflow(flow, name))]


REBOOT_FLOW = reboot.get_reboot_flow()
REBOOT_TASKS = [task.name for task in iter_tasks(REBOOT_FLOW)]
SOFT_TASKS = subflow_tasks(REBOOT_FLOW, constants.SOFT_REBOOT_FLOW)
HARD_TASKS = subflow_tasks(REBOOT_FLOW, constants.HARD_REBOOT_FLOW)
COMMON_TASKS = [task for task in REBOOT_TASKS
                if task not in SOFT_TASKS + HARD_TASKS]
# A guest that ignores ACPI never goes down: the soft path ends in its wait.
SOFT_WAIT_TASK, = subflow_tasks(
    REBOOT_FLOW, pieces.tagged(constants.WAIT_SHUTDOWN_FLOW, constants.SOFT))
SOFT_TASKS_RUN_ON_IGNORE = SOFT_TASKS[:SOFT_TASKS.index(SOFT_WAIT_TASK) + 1]
STOP_TASKS = [task.name for task in iter_tasks(power.get_stop_flow())]
START_TASKS = [task.name for task in iter_tasks(power.get_start_flow())]
POWERS_OFF = "PowerOffDomain"  # the hard path's step after which it is off

SOFT, FALLBACK, HARD, STOP, START = (
    "soft", "fallback", "hard", "stop", "start")
SCENARIO_TASKS = {
    SOFT: COMMON_TASKS + SOFT_TASKS,
    FALLBACK: SOFT_TASKS_RUN_ON_IGNORE + HARD_TASKS,
    HARD: COMMON_TASKS + HARD_TASKS,
    STOP: STOP_TASKS,
    START: START_TASKS,
}
REBOOTS = (SOFT, FALLBACK, HARD)
# (scenario, task, point) never reached, and why.
UNREACHED = {
    (FALLBACK, SOFT_WAIT_TASK, AFTER):
        "a guest that ignores ACPI never goes down: every poll of the "
        "soft wait raises (not yet, then GuestIgnoredShutdown)",
}
CASES = [pytest.param(scenario, task, point,
                      id=f"{scenario}-{task}-{point}")
         for scenario, tasks in SCENARIO_TASKS.items() for task in tasks
         for point in hooks.CRASH_POINTS]


def test_the_matrix_covers_every_task_of_the_flows():
    assert COMMON_TASKS == ["MarkInstanceErrorOnRevert",
                            "MarkInstanceRebooting", "SelectRebootMethod"]
    assert SOFT_TASKS_RUN_ON_IGNORE == [
        "ShutdownGuestAcpi", "MarkInstanceRebootStarted",
        "WaitForGuestReboot"]
    assert HARD_TASKS[-1] == "MarkInstanceRebooted"
    assert SOFT_TASKS[-1] == "MarkInstanceRebooted-soft"
    assert POWERS_OFF in HARD_TASKS
    # Every task of every flow is crashed in some scenario.
    covered = {task for tasks in SCENARIO_TASKS.values() for task in tasks}
    assert covered == set(REBOOT_TASKS + STOP_TASKS + START_TASKS)
    assert len(CASES) == 3 * sum(map(len, SCENARIO_TASKS.values()))
    assert set(UNREACHED) <= {tuple(case.values) for case in CASES}


# --- the test bed ------------------------------------------------------------

@pytest.fixture(scope="module")
def power_template_db(template_db, tmp_path_factory, tiny_guest):
    """The flowbed's template plus the tiny real guest that powers off on
    ACPI (kernel + ACPI initrd) and a flavor it boots with."""
    path = tmp_path_factory.mktemp("crash-matrix-power") / "template.sqlite"
    shutil.copyfile(template_db, path)
    engine = api.create_engine(f"sqlite:///{path}")
    try:
        with api.session_scope(engine) as session:
            flavors.create_flavor(session, ACPI_FLAVOR, 1,
                                  ACPI_FLAVOR_RAM_MB, 1)
            images.add_image(session, ACPI_IMAGE, str(tiny_guest.disk),
                             kernel=str(tiny_guest.kernel),
                             initrd=str(tiny_guest.initrd_acpi),
                             cmdline=tiny_guest.cmdline)
    finally:
        engine.dispose()
    return path


def scenario_options(scenario):
    """Small waits: the blank guest ignores ACPI, so a soft reboot of it
    falls back after 1 s and a stop powers it off after 1 s; the ACPI
    guest gets time to power off by itself."""
    return {"wait_soft_reboot_seconds": 30 if scenario == SOFT else 1,
            "shutdown_timeout_seconds": 1,
            "poll_interval_seconds": 0.1}


@pytest.fixture
def cloud(request, conf, tmp_path, power_template_db, disks_root,
          sweeper):  # noqa: F811
    scenario = request.node.callspec.params["scenario"]
    with make_cloud(conf, tmp_path, power_template_db, disks_root, sweeper,
                    libvirt=scenario_options(scenario)) as cloud:
        yield cloud


@pytest.fixture(scope="module")
def runners():
    """Runner processes forked from one that imported vmflow once (see
    :mod:`tests.integration.forkserver`): a case starts two."""
    server = forkserver.ForkServer()
    yield server
    server.close()


def start_runner(runners, cloud, name, env):
    return runners.start_runner(cloud.config_file, "--once", name=name,
                                log_path=cloud.log_path, env=env)


def driver():
    return base.get_driver(HOST)


def prepared_server(cloud, scenario, tiny_guest):
    """The server the scenario starts from, built (and stopped) in this
    process: the ACPI guest booted far enough to answer ACPI for a soft
    reboot, the blank guest otherwise."""
    flavor, image = ((ACPI_FLAVOR, ACPI_IMAGE) if scenario == SOFT
                     else (FLAVOR, IMAGE))
    request = compute.create_server("vm1", flavor, image, PROJECT,
                                    conf=cloud.conf)
    assert cloud.run_inline(request).succeeded
    uuid = request.instance_uuid
    if scenario == SOFT:
        tiny_guest.wait_for_marker(driver().console_log_path(uuid), "acpi",
                                   timeout=BOOT_TIMEOUT)
    if scenario == START:
        stop = compute.power_server("stop", uuid, PROJECT, conf=cloud.conf)
        assert cloud.run_inline(stop).succeeded
    return uuid


def post(cloud, scenario, uuid):
    if scenario in REBOOTS:
        return compute.reboot_server(uuid, hard=scenario == HARD,
                                     project=PROJECT, conf=cloud.conf)
    return compute.power_server(scenario, uuid, PROJECT, conf=cloud.conf)


# --- what must hold -----------------------------------------------------------

def failing_task(scenario, task):
    """The task that fails so that ``task`` is reverted: the next one of
    the scenario (the last fails itself); None in the fallback's soft
    tasks, which the guest's ignoring ACPI reverts by itself."""
    if scenario == FALLBACK and task in SOFT_TASKS:
        return None
    tasks = SCENARIO_TASKS[scenario]
    return tasks[min(tasks.index(task) + 1, len(tasks) - 1)]


def crash_env(scenario, task, point, marker):
    env = {hooks.CRASH_AT: f"{task}:{point}", hooks.CRASH_MARKER: str(marker)}
    failed = failing_task(scenario, task) if point == DURING_REVERT else None
    if failed:
        env[hooks.FAIL_AT] = failed
    return env


@dataclasses.dataclass(frozen=True)
class Outcome:
    vm_state: str
    power_state: str
    fault_task: str = None  # the injected fault recorded, if any

    @property
    def succeeded(self):
        return self.fault_task is None


def expected(scenario, task, point):
    """What the job must end in, derived from the flows."""
    running, off = power_states.RUNNING, power_states.SHUTDOWN
    failed = failing_task(scenario, task) if point == DURING_REVERT else None
    if scenario == STOP:
        return (Outcome("active", running, failed) if failed
                else Outcome("stopped", off))
    if scenario == START:
        return (Outcome("stopped", off, failed) if failed
                else Outcome("active", running))
    if failed is None or (scenario != HARD and failed in SOFT_TASKS):
        return Outcome("active", running)  # rebooted (soft, or fell back)
    # A failed reboot: ERROR; the guest is off once the hard path powered
    # it off (its StartDomain reverts by powering off, PowerOffDomain does
    # not start it again).
    powered_off = (failed in HARD_TASKS and HARD_TASKS.index(failed)
                   > HARD_TASKS.index(POWERS_OFF))
    return Outcome("error", off if powered_off else running, failed)


def assert_job_ended(cloud, request, outcome, runner="restarted"):
    status = operations.operation_status(request.job_uuid, cloud.conf)
    assert status.finished, (status, cloud.log())
    assert status.result == (actions.SUCCESS if outcome.succeeded
                             else actions.ERROR), (status, cloud.log())
    row, = helpers.rows(cloud.engine, models.Job, uuid=request.job_uuid)
    assert (row.state, row.owner.split("@")[0]) == ("COMPLETE", runner)
    assert helpers.rows(cloud.engine, models.InstanceLock,
                        instance_uuid=request.instance_uuid) == []


def assert_outcome(cloud, uuid, outcome):
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"],
            instance["host"]) == (outcome.vm_state, None, HOST)
    if outcome.fault_task:
        failed = outcome.fault_task
        assert cloud.fault(uuid) == (
            f"{failed} failed: injected fault in {failed} execute")
    # Never a lost machine: the domain is defined, its disks are there.
    assert cloud.leftovers(uuid) == EVERYTHING_THERE
    assert driver().get_power_state(uuid) == outcome.power_state
    if outcome.vm_state == "error" and (
            instance["power_state"] != outcome.power_state):
        # A failed reboot does not write power_state (the host watch
        # keeps it true): the runner's next sync sets it, leaving ERROR.
        assert power_sync.sync_instance(
            cloud.engine, NoLock(), uuid, HOST,
            outcome.power_state) == power_sync.WRITTEN
        instance = cloud.instance(uuid)
        assert instance["vm_state"] == "error"
    assert instance["power_state"] == outcome.power_state
    cloud.assert_audit_ok()


class NoLock:
    """The instance's lock is gone (asserted before)."""

    def is_locked(self, session, instance_uuid):
        return False


# --- the matrix --------------------------------------------------------------

@pytest.mark.parametrize("scenario, task, point", CASES)
def test_sigkill_at_an_atom_boundary_then_restart(cloud, tiny_guest, runners,
                                                  scenario, task, point):
    uuid = prepared_server(cloud, scenario, tiny_guest)
    request = post(cloud, scenario, uuid)
    marker = cloud.tmp_path / "crashed"
    env = crash_env(scenario, task, point, marker)
    outcome = expected(scenario, task, point)

    crashed = start_runner(runners, cloud, "crashed", env)
    status = crashed.wait(timeout=RUNNER_TIMEOUT)
    if (scenario, task, point) in UNREACHED:
        # Never got there: the runner ran the job to its end.
        assert status == 0, cloud.log()
        assert not marker.exists()
        assert_job_ended(cloud, request, outcome, runner="crashed")
        assert_outcome(cloud, uuid, outcome)
        return
    assert status == -signal.SIGKILL, cloud.log()
    assert marker.read_text() == f"{task}:{point}\n"
    row, = helpers.rows(cloud.engine, models.Job, uuid=request.job_uuid)
    assert (row.state, row.owner.split("@")[0]) == ("CLAIMED", "crashed")

    # Same environment: the marker keeps it from crashing again; the dead
    # runner's claim (same machine, no such pid) is taken over at once.
    restarted = start_runner(runners, cloud, "restarted", env)
    status = restarted.wait(timeout=RUNNER_TIMEOUT)
    assert status == 0, cloud.log()
    assert_job_ended(cloud, request, outcome)
    assert_outcome(cloud, uuid, outcome)
