"""Reboot and the power operations as whole flows on libvirt's test
driver and SQLite, with a fault injected at every task of every flow (the
task lists come from the flows themselves).

Every failure must leave the server consistent: a failed reboot ERROR with
a fault naming the step, a failed power operation in its previous vm_state
with no task_state and a fault; the domain still defined, the disks still
there, and the audit passing.
"""
import os

import pytest
from taskflow import states

from tests.cloud import cloud, image_file  # noqa: F401 (fixtures)
from tests.functional.test_build_delete_flows import (
    assert_audit_ok, built, fault, leftovers)
from vmflow import server_actions
from vmflow.flows import constants, find_subflow, iter_tasks, power
from vmflow.flows import reboot
from vmflow.tasks import base, hooks

HOST = "host1"
EVERYTHING_THERE = {"claim": True, "domain": True, "disks": True}
REBOOT_TASKS = [task.name for task in iter_tasks(reboot.get_reboot_flow())]
POWER_TASKS = {name: [task.name for task in iter_tasks(factory())]
               for name, factory in power.FACTORIES.items()}
# What each power operation needs first, and the states it goes between.
PREPARE = {"stop": (), "start": ("stop",), "pause": (),
           "unpause": ("pause",), "suspend": (), "resume": ("suspend",)}
POWER_CASES = [pytest.param(action, task, id=f"{action}-{task}")
               for action, tasks in POWER_TASKS.items() for task in tasks]


def subflow_tasks(flow, name):
    """Names of the tasks of the subflow ``name`` of ``flow``."""
    return [task.name for task in iter_tasks(find_subflow(flow, name))]


SOFT_TASKS = subflow_tasks(reboot.get_reboot_flow(),
                           constants.SOFT_REBOOT_FLOW)
HARD_TASKS = subflow_tasks(reboot.get_reboot_flow(),
                           constants.HARD_REBOOT_FLOW)


def run_reboot(cloud, uuid, reboot_type=constants.SOFT):
    return cloud.run(reboot.get_reboot_flow, uuid, host_name=HOST,
                     reboot_type=reboot_type)


def run_power(cloud, action, uuid):
    return cloud.run(power.FACTORIES[action], uuid, host_name=HOST)


def state_of(cloud, uuid):
    instance = cloud.instance(uuid)
    return (instance["vm_state"], instance["task_state"],
            instance["power_state"])


def atom_states(run):
    storage = run.engine.storage
    return {name: storage.get_atom_state(name)
            for name in REBOOT_TASKS}


def driver():
    return base.get_driver(HOST)


def test_the_task_lists_come_from_the_flows():
    assert SOFT_TASKS == [
        "ShutdownGuestAcpi", "MarkInstanceRebootStarted",
        "WaitForGuestReboot", "StartDomain-soft",
        "WaitForDomainRunning-soft", "MarkInstanceRebooted-soft"]
    assert HARD_TASKS == [
        "MarkInstanceRebootingHard", "PowerOffDomain",
        "RecreateMissingDisks", "GenerateDomainXml", "RedefineDomain",
        "StartDomain", "WaitForDomainRunning", "MarkInstanceRebooted"]
    assert REBOOT_TASKS == (
        ["MarkInstanceErrorOnRevert", "MarkInstanceRebooting",
         "SelectRebootMethod"] + SOFT_TASKS + HARD_TASKS)
    assert POWER_TASKS["stop"] == [
        "RestoreInstanceStateOnRevert", "MarkInstancePoweringOff",
        "ShutdownGuestAcpi", "WaitForCleanShutdown", "PowerOffDomain",
        "MarkInstanceStopped"]


# --- reboot ------------------------------------------------------------------

def test_a_soft_reboot_runs_the_soft_path_only(cloud):
    uuid = built(cloud)
    domain_id = driver().get_domain_id(uuid)
    run = run_reboot(cloud, uuid)
    assert run.state == states.SUCCESS, run.error
    assert state_of(cloud, uuid) == ("active", None, "running")
    assert driver().get_domain_id(uuid) not in (-1, domain_id)
    atoms = atom_states(run)
    assert {atoms[name] for name in SOFT_TASKS} == {states.SUCCESS}
    assert {name: atoms[name] for name in HARD_TASKS} == dict.fromkeys(
        HARD_TASKS, states.IGNORE)
    history = run.engine.storage.get_retry_history("FallBackToHardReboot")
    assert [value for value, _failures in history] == ["soft"]
    assert_audit_ok(cloud)


def test_a_soft_reboot_of_a_guest_already_off_skips_the_shutdown(cloud):
    uuid = built(cloud)
    driver().destroy(uuid)  # the guest powered off; the record says active
    run = run_reboot(cloud, uuid)
    assert run.state == states.SUCCESS, run.error
    assert run.engine.storage.get("ShutdownGuestAcpi")["result"] == (
        "already-off")
    assert driver().get_power_state(uuid) == "running"
    assert state_of(cloud, uuid) == ("active", None, "running")


def test_a_failed_soft_step_falls_back_to_a_hard_reboot(cloud, monkeypatch):
    uuid = built(cloud)
    monkeypatch.setenv(hooks.FAIL_AT, "WaitForGuestReboot")
    run = run_reboot(cloud, uuid)
    assert run.state == states.SUCCESS, run.error
    assert state_of(cloud, uuid) == ("active", None, "running")
    atoms = atom_states(run)
    assert {atoms[name] for name in SOFT_TASKS} == {states.IGNORE}
    assert {atoms[name] for name in HARD_TASKS} == {states.SUCCESS}
    history = run.engine.storage.get_retry_history("FallBackToHardReboot")
    (first, failures), (second, _none) = history
    assert (first, second) == ("soft", "hard")
    # The wait's own retry controller handed the failure on.
    assert [failure.exception_str for failure in failures.values()] == [
        "injected fault in WaitForGuestReboot execute"]
    assert run.executed("ShutdownGuestAcpi") == ["ShutdownGuestAcpi"]
    assert_audit_ok(cloud)


def test_a_hard_reboot_recreates_a_missing_overlay_and_redefines(cloud):
    uuid = built(cloud)
    disk = driver().disk_paths({"uuid": uuid}, {"name": "tiny"})["disk"] \
        if False else None
    overlay = os.path.join(cloud.tmp_path, HOST, "instances", uuid, "disk")
    assert os.path.exists(overlay) and disk is None
    os.remove(overlay)
    run = run_reboot(cloud, uuid, constants.HARD)
    assert run.state == states.SUCCESS, run.error
    assert os.path.exists(overlay)
    assert run.engine.storage.get_atom_state("ShutdownGuestAcpi") == (
        states.IGNORE)
    assert driver().get_power_state(uuid) == "running"
    assert state_of(cloud, uuid) == ("active", None, "running")
    assert_audit_ok(cloud)


@pytest.mark.parametrize("vm_state_action", ["stop", "pause", "suspend"])
def test_a_hard_reboot_rescues_a_stopped_paused_or_suspended_server(
        cloud, vm_state_action):
    uuid = built(cloud)
    assert run_power(cloud, vm_state_action, uuid).state == states.SUCCESS
    run = run_reboot(cloud, uuid, constants.HARD)
    assert run.state == states.SUCCESS, run.error
    assert state_of(cloud, uuid) == ("active", None, "running")
    assert driver().get_power_state(uuid) == "running"


def reboot_outcome(task, reboot_type):
    """A fault in a soft step of a soft reboot falls back to hard, which
    succeeds; a fault anywhere else fails the reboot."""
    return reboot_type == constants.SOFT and task in SOFT_TASKS


REBOOT_CASES = (
    [pytest.param(constants.SOFT, task, id=f"soft-{task}")
     for task in REBOOT_TASKS if task not in HARD_TASKS]
    + [pytest.param(constants.HARD, task, id=f"hard-{task}")
       for task in REBOOT_TASKS if task not in SOFT_TASKS]
    # A soft reboot whose soft attempt failed, then a hard step fails.
    + [pytest.param("fallback", task, id=f"fallback-{task}")
       for task in HARD_TASKS])


@pytest.mark.parametrize("reboot_type, task", REBOOT_CASES)
def test_a_failure_at_any_reboot_task(cloud, monkeypatch, reboot_type, task):
    uuid = built(cloud)
    failing = [task]
    if reboot_type == "fallback":
        failing.append("WaitForGuestReboot")
        reboot_type = constants.SOFT
    monkeypatch.setenv(hooks.FAIL_AT, ",".join(failing))
    run = run_reboot(cloud, uuid, reboot_type)
    if reboot_outcome(task, reboot_type):
        assert run.state == states.SUCCESS, run.error
        assert state_of(cloud, uuid) == ("active", None, "running")
    else:
        assert run.state == states.REVERTED, run.error
        instance = cloud.instance(uuid)
        assert (instance["vm_state"], instance["task_state"]) == (
            "error", None)
        assert fault(cloud, uuid) == (
            f"{task} failed: injected fault in {task} execute")
    # Never a lost machine: the domain and disks are still there.
    assert leftovers(cloud, uuid, HOST) == EVERYTHING_THERE
    assert_audit_ok(cloud)
    # And a hard reboot (allowed from ERROR) brings it back.
    monkeypatch.delenv(hooks.FAIL_AT)
    assert run_reboot(cloud, uuid, constants.HARD).state == states.SUCCESS
    assert state_of(cloud, uuid) == ("active", None, "running")


# --- power operations -----------------------------------------------------

def prepared(cloud, action):
    uuid = built(cloud)
    for step in PREPARE[action]:
        assert run_power(cloud, step, uuid).state == states.SUCCESS
    return uuid


@pytest.mark.parametrize("action", list(power.FACTORIES))
def test_each_power_operation_ends_in_its_state(cloud, action):
    uuid = prepared(cloud, action)
    run = run_power(cloud, action, uuid)
    assert run.state == states.SUCCESS, run.error
    target = server_actions.POWER_ACTIONS[action]
    assert state_of(cloud, uuid) == (target.vm_state, None,
                                     target.power_state)
    assert driver().get_power_state(uuid) == target.power_state
    assert driver().has_managed_save(uuid) == (action == "suspend")
    assert_audit_ok(cloud)


@pytest.mark.parametrize("action, task", POWER_CASES)
def test_a_failure_at_any_power_task_gives_the_previous_state_back(
        cloud, monkeypatch, action, task):
    uuid = prepared(cloud, action)
    before = state_of(cloud, uuid)
    domain_before = driver().get_power_state(uuid)
    monkeypatch.setenv(hooks.FAIL_AT, task)
    run = run_power(cloud, action, uuid)
    assert run.state == states.REVERTED, run.error
    assert state_of(cloud, uuid) == before
    assert driver().get_power_state(uuid) == domain_before
    assert fault(cloud, uuid) == (
        f"{task} failed: injected fault in {task} execute")
    assert leftovers(cloud, uuid, HOST) == EVERYTHING_THERE
    assert_audit_ok(cloud)
    monkeypatch.delenv(hooks.FAIL_AT)
    assert run_power(cloud, action, uuid).state == states.SUCCESS
