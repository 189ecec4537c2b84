"""Every task of every flow follows DESIGN.md's task style."""
import inspect

import pytest

from vmflow.flows import build, delete, iter_tasks, power, reboot
from vmflow.tasks import base, instance

FACTORIES = [build.get_build_flow, delete.get_delete_flow,
             reboot.get_reboot_flow, *power.FACTORIES.values()]
ALL_TASKS = [task for factory in FACTORIES for task in iter_tasks(factory())]
# Tasks named after the state they write, not their class.
STATE_WRITERS = (instance.MarkInstanceTaskState, instance.MarkInstanceDone)


def test_every_flow_has_uniquely_named_tasks():
    for factory in FACTORIES:
        names = [task.name for task in iter_tasks(factory())]
        assert len(names) == len(set(names)), factory


@pytest.mark.parametrize("task", ALL_TASKS, ids=lambda task: task.name)
def test_task_style(task):
    assert isinstance(task, base.VmflowTask)
    if isinstance(task, STATE_WRITERS):
        assert task.name.startswith("MarkInstance")
    else:  # a second one of a kind in a flow is tagged: StartDomain-soft
        assert task.name.split("-")[0] == type(task).__name__
    assert "Reversion strategy:" in type(task).__doc__
    parameters = list(inspect.signature(task.revert).parameters.values())
    assert parameters[0].name == "result"
    assert parameters[-1].kind == inspect.Parameter.VAR_KEYWORD
