"""Every task of every flow follows DESIGN.md's task style."""
import inspect

import pytest

from vmflow.flows import build, delete, iter_tasks
from vmflow.tasks import base

ALL_TASKS = [*iter_tasks(build.get_build_flow()),
             *iter_tasks(delete.get_delete_flow())]


@pytest.mark.parametrize("task", ALL_TASKS, ids=lambda task: task.name)
def test_task_style(task):
    assert isinstance(task, base.VmflowTask)
    assert task.name == type(task).__name__
    assert "Reversion strategy:" in type(task).__doc__
    parameters = list(inspect.signature(task.revert).parameters.values())
    assert parameters[0].name == "result"
    assert parameters[-1].kind == inspect.Parameter.VAR_KEYWORD
