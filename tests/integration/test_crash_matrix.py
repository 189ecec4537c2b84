"""The crash matrix: a real ``vmflow-engine`` is killed with SIGKILL at
every atom boundary of the build and delete flows, started again, and the
job must end ACTIVE (build), DELETED (delete) or fully reverted (ERROR with
a fault, nothing left), with the audit passing.

The cases are the flows' tasks (:func:`vmflow.flows.iter_tasks`) times the
crash points of :mod:`vmflow.tasks.hooks`: ``before-execute`` (nothing
done yet), ``after-execute`` (done, its result not saved: it runs again)
and ``during-revert`` (reverted, not recorded: it reverts again). A revert
needs a failure after the task ran: in those cases the task after it fails
(``VMFLOW_FAIL_AT``; the last task fails itself), so it and every task
before it revert. ``VMFLOW_CRASH_MARKER`` makes the crash happen once; the
runner is restarted with the same environment. A reverted delete is run
again (delete must be safe to run twice) and must then leave nothing.

The test bed (:mod:`tests.integration.flowbed`): the private libvirtd of
``second_libvirt_uri`` as the only host, a guest that needs no boot, a
copy of one synced database per case, and a claim expiry of 5 s that the
restarted runner does not wait for: it takes the job of its dead
predecessor over at once.
"""
import signal

import pytest

from tests.functional.engine import helpers
from tests.integration.flowbed import (  # noqa: F401 (fixtures)
    EVERYTHING_THERE, FLAVOR, FLAVOR_RAM_MB, HOST, IMAGE, NOTHING_LEFT,
    PROJECT, disks_root, make_cloud, sweeper, template_db)
from vmflow import compute
from vmflow.engine import actions, operations
from vmflow.flows import build, constants, delete, iter_tasks
from vmflow.persistence import models
from vmflow.tasks import base, hooks

FLOWS = {constants.BUILD_FLOW: build.get_build_flow,
         constants.DELETE_FLOW: delete.get_delete_flow}
TASKS = {flow: [task.name for task in iter_tasks(factory())]
         for flow, factory in FLOWS.items()}
DURING_REVERT = "during-revert"
CASES = [pytest.param(flow, task, point, id=f"{flow}-{task}-{point}")
         for flow, tasks in TASKS.items() for task in tasks
         for point in hooks.CRASH_POINTS]

RUNNER_TIMEOUT = 60
NO_USAGE = {"instances": 0, "cores": 0, "ram": 0}
ONE_INSTANCE = {"instances": 1, "cores": 1, "ram": FLAVOR_RAM_MB}


def test_the_matrix_covers_every_task_of_both_flows():
    build_tasks, delete_tasks = TASKS.values()
    assert len(CASES) == 3 * (len(build_tasks) + len(delete_tasks))
    assert (build_tasks[-1], delete_tasks[-1]) == (
        "MarkInstanceActive", "MarkInstanceDeleted")


@pytest.fixture
def cloud(conf, tmp_path, template_db, disks_root, sweeper):  # noqa: F811
    with make_cloud(conf, tmp_path, template_db, disks_root,
                    sweeper) as cloud:
        yield cloud


# --- the matrix --------------------------------------------------------------

def failing_task(flow, task):
    """The task that fails so that ``task`` is reverted: the next one (the
    last task fails itself)."""
    tasks = TASKS[flow]
    return tasks[min(tasks.index(task) + 1, len(tasks) - 1)]


def crash_env(flow, task, point, marker):
    env = {hooks.CRASH_AT: f"{task}:{point}", hooks.CRASH_MARKER: str(marker)}
    if point == DURING_REVERT:
        env[hooks.FAIL_AT] = failing_task(flow, task)
    return env


def built_server(cloud):
    request = compute.create_server("vm1", FLAVOR, IMAGE, PROJECT,
                                    conf=cloud.conf)
    status = cloud.run_inline(request)
    assert status.succeeded, status
    return request.instance_uuid


def assert_job_ended(cloud, request, succeeded):
    status = operations.operation_status(request.job_uuid, cloud.conf)
    assert status.finished, (status, cloud.log())
    assert status.result == (actions.SUCCESS if succeeded
                             else actions.ERROR), (status, cloud.log())
    row, = helpers.rows(cloud.engine, models.Job, uuid=request.job_uuid)
    assert (row.state, row.owner.split("@")[0]) == ("COMPLETE", "restarted")
    assert helpers.rows(cloud.engine, models.InstanceLock,
                        instance_uuid=request.instance_uuid) == []


def assert_active(cloud, uuid):
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"], instance["host"],
            instance["power_state"]) == ("active", None, HOST, "running")
    assert base.get_driver(HOST).get_power_state(uuid) == "running"
    assert cloud.leftovers(uuid) == EVERYTHING_THERE
    assert cloud.usage() == ONE_INSTANCE


def assert_deleted(cloud, uuid):
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"]) == (
        "deleted", None)
    assert cloud.leftovers(uuid) == NOTHING_LEFT
    assert cloud.usage() == NO_USAGE


def assert_reverted(cloud, flow, task, uuid):
    """ERROR with the injected fault and no task_state; a reverted build
    gave everything back (a reverted delete keeps its host: it is run
    again)."""
    failed = failing_task(flow, task)
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"]) == ("error", None)
    assert cloud.fault(uuid) == (
        f"{failed} failed: injected fault in {failed} execute")
    if flow == constants.BUILD_FLOW:
        assert instance["host"] is None
        assert cloud.leftovers(uuid) == NOTHING_LEFT
        assert cloud.usage() == NO_USAGE
    else:
        assert instance["host"] == HOST


@pytest.mark.parametrize("flow, task, point", CASES)
def test_sigkill_at_an_atom_boundary_then_restart(cloud, flow, task, point):
    if flow == constants.BUILD_FLOW:
        request = compute.create_server("vm1", FLAVOR, IMAGE, PROJECT,
                                        conf=cloud.conf)
    else:
        request = compute.delete_server(built_server(cloud), PROJECT,
                                        conf=cloud.conf)
    uuid = request.instance_uuid
    marker = cloud.tmp_path / "crashed"
    env = crash_env(flow, task, point, marker)

    crashed = cloud.start_runner("crashed", env)
    status = crashed.wait(timeout=RUNNER_TIMEOUT)
    assert status == -signal.SIGKILL, cloud.log()
    assert marker.read_text() == f"{task}:{point}\n"
    row, = helpers.rows(cloud.engine, models.Job, uuid=request.job_uuid)
    assert (row.state, row.owner.split("@")[0]) == ("CLAIMED", "crashed")

    # Same environment: the marker keeps it from crashing again; the dead
    # runner's claim (same machine, no such pid) is taken over at once.
    restarted = cloud.start_runner("restarted", env)
    status = restarted.wait(timeout=RUNNER_TIMEOUT)
    assert status == 0, cloud.log()

    reverted = point == DURING_REVERT
    assert_job_ended(cloud, request, succeeded=not reverted)
    if reverted:
        assert_reverted(cloud, flow, task, uuid)
    elif flow == constants.BUILD_FLOW:
        assert_active(cloud, uuid)  # removed in the background afterwards
    else:
        assert_deleted(cloud, uuid)
    cloud.assert_audit_ok()

    if reverted and flow == constants.DELETE_FLOW:
        request = compute.delete_server(uuid, PROJECT, conf=cloud.conf)
        assert cloud.run_inline(request).succeeded
        assert_deleted(cloud, uuid)
        cloud.assert_audit_ok()
