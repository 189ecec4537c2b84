"""The rules of the reconcile at runner start (vmflow.engine.reconcile):
what a stranded instance becomes, and which operations can still go on."""
import datetime
import types

import pytest

from vmflow import instances, power_states, server_actions
from vmflow.engine import locks, reconcile

UUID = "0f6c5a3e-0000-4000-8000-0000000000aa"
NOW = datetime.datetime(2024, 5, 1, 12, 0, 0)
GRACE = datetime.timedelta(seconds=5)
OTHER_POWER = {power_states.RUNNING: power_states.SHUTDOWN,
               power_states.SHUTDOWN: power_states.RUNNING,
               power_states.PAUSED: power_states.RUNNING}


def instance(task_state, host="host1", age_seconds=3600):
    return {"uuid": UUID, "name": "vm1", "vm_state": instances.ACTIVE,
            "task_state": task_state, "host": host,
            "power_state": power_states.RUNNING,
            "created_at": NOW - datetime.timedelta(seconds=age_seconds)}


def lock(job_uuid="job-1", finish_time=None, job_state=None):
    return types.SimpleNamespace(instance_uuid=UUID, job_uuid=job_uuid,
                                 finish_time=finish_time,
                                 job_state=job_state)


def board(job_uuids=(), instance_uuids=()):
    return locks.BoardJobs(frozenset(job_uuids), frozenset(instance_uuids))


@pytest.mark.parametrize("task_state", sorted(server_actions.BY_TASK_STATE))
def test_an_operation_whose_end_state_is_shown_is_cleared(task_state):
    action = server_actions.BY_TASK_STATE[task_state]
    decided = reconcile.verdict(instance(task_state), action.power_state)
    assert decided.fault is None
    assert decided.values == {"vm_state": action.vm_state,
                              "power_state": action.power_state,
                              "task_state": None}
    assert decided.outcome == reconcile.CLEARED


@pytest.mark.parametrize("task_state", sorted(server_actions.BY_TASK_STATE))
def test_an_operation_whose_end_state_is_not_shown_is_an_error(task_state):
    action = server_actions.BY_TASK_STATE[task_state]
    shown = OTHER_POWER[action.power_state]
    decided = reconcile.verdict(instance(task_state), shown)
    assert decided.values is None
    assert decided.fault == (
        f"task_state {task_state} was left by a job that no longer exists; "
        f"the hypervisor shows the domain {shown}, not {action.power_state}")
    assert reconcile.verdict(instance(task_state), reconcile.NO_DOMAIN
                             ).fault.endswith("shows no domain, not "
                                              f"{action.power_state}")


@pytest.mark.parametrize("task_state, host, why", [
    (instances.SCHEDULING, None, "the build did not finish"),
    (instances.SCHEDULING, "host1", "the build did not finish"),
    (instances.DELETING, "host1", "run the delete again"),
    ("resize_migrating", "host1", "no rule tells how it ends"),
    (instances.POWERING_OFF, None, "the instance is on no host"),
])
def test_what_the_hypervisor_cannot_tell_is_an_error(task_state, host, why):
    decided = reconcile.verdict(instance(task_state, host),
                                power_states.SHUTDOWN)
    assert decided.fault == (f"task_state {task_state} was left by a job "
                             f"that no longer exists: {why}")
    assert decided.outcome == reconcile.ERRORED


@pytest.mark.parametrize("situation, row, jobs, task_state, age, goes_on", [
    ("a board job works on the instance", None, board(instance_uuids=[UUID]),
     instances.PAUSING, 3600, True),
    ("its lock's job is on the board", lock(), board(job_uuids=["job-1"]),
     instances.PAUSING, 3600, True),
    ("lost: the lock's job has not ended", lock(), board(),
     instances.PAUSING, 3600, True),
    ("its action finished", lock(finish_time=NOW), board(),
     instances.PAUSING, 3600, False),
    ("the board consumed its job", lock(job_state="COMPLETE"), board(),
     instances.PAUSING, 3600, False),
    ("no lock, no job", None, board(), instances.PAUSING, 3600, False),
    ("no lock, a young build record", None, board(), instances.SCHEDULING,
     2, True),
    ("no lock, an old build record", None, board(), instances.SCHEDULING,
     60, False),
    ("no lock, young but not a build", None, board(), instances.PAUSING,
     2, False),
])
def test_which_operations_can_go_on(situation, row, jobs, task_state, age,
                                    goes_on):
    assert reconcile.operation_may_go_on(
        instance(task_state, age_seconds=age), row, jobs, NOW,
        GRACE) is goes_on, situation
