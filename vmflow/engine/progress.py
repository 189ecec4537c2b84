"""How far an operation's flow got, read from its persisted flow detail.

The steps are the tasks of the flow its factory builds (so a job no
runner loaded yet counts all of them as pending); their states are the
persisted atom details. Used by ``--wait``'s progress line, ``vmflow job
list/show`` and the web view, so all three count the same way:

* ``total``: the tasks, minus those a decider skipped (IGNORE: the soft
  reboot's hard path when the soft one worked);
* ``done``: the tasks that succeeded (a reverted task is not done);
* ``failing``: the first task, in flow order, whose failure is recorded
  (its revert's failure too), with that error's message; neither a
  failure in a branch a later attempt skipped (IGNORE) nor a poll's
  expected "not yet" (below) counts.

A poll (a task its retry controller runs again on an expected "not yet",
:class:`~vmflow.tasks.domain.RetryPollUntilDeadline`) fails on every
"not yet": :func:`poll_steps` names them (:func:`expected_failures` with
the "not yet" of each) so a display can leave those failures out while
the poll goes on.
"""
import dataclasses

from taskflow import engines
from taskflow import flow as tf_flow
from taskflow.persistence import models as tf_models
from taskflow import states
from taskflow import storage

from vmflow import flows
from vmflow.tasks import domain

ACTIVE_STATES = (states.RUNNING, states.REVERTING)


@dataclasses.dataclass(frozen=True)
class FlowProgress:
    done: int
    total: int
    running: tuple
    failing: str | None
    error: str | None

    def __str__(self):
        return f"{self.done}/{self.total}"


def factory_flow(flow_detail):
    """The unloaded flow the job's factory builds; None for a flow detail
    saved without a factory."""
    if not (flow_detail.meta or {}).get("factory"):
        return None
    return engines.flow_from_detail(flow_detail)


def atom_details(flow_detail):
    """{atom name: atom detail}, without TaskFlow's injector atom."""
    return {detail.name: detail for detail in flow_detail
            if detail.name != storage.Storage.injector_name}


def flow_progress(flow_detail, flow=None):
    """The :class:`FlowProgress` of ``flow_detail`` (``flow``: its factory
    flow, when the caller built it already)."""
    flow = flow if flow is not None else factory_flow(flow_detail)
    details = atom_details(flow_detail)
    if flow is not None:
        names = [task.name for task in flows.iter_tasks(flow)]
    else:
        names = [name for name, detail in details.items()
                 if isinstance(detail, tf_models.TaskDetail)]
    task_states = {name: _state(details.get(name)) for name in names}
    not_yet = expected_failures(flow) if flow is not None else {}
    failing, error = _first_failure(names, details, not_yet)
    return FlowProgress(
        done=sum(state == states.SUCCESS for state in task_states.values()),
        total=sum(state != states.IGNORE for state in task_states.values()),
        running=tuple(name for name, state in task_states.items()
                      if state in ACTIVE_STATES),
        failing=failing, error=error)


def _state(detail):
    return states.PENDING if detail is None else detail.state


def _first_failure(names, details, not_yet):
    for name in names:
        detail = details.get(name)
        if detail is None or detail.state == states.IGNORE:
            continue  # an IGNOREd failure was a retried attempt's
        if detail.failure is not None and name in not_yet and (
                detail.failure.check(not_yet[name])):
            continue  # a poll's "not yet": it polls again
        for failure in (detail.failure,
                        getattr(detail, "revert_failure", None)):
            if failure is not None:
                return name, failure.exception_str
    return None, None


def poll_steps(flow):
    """Names of the tasks run by a polling retry controller."""
    return set(expected_failures(flow))


def expected_failures(flow):
    """{poll task name: the "not yet" exception class its retry controller
    polls again on}: a failure of another class is a real one."""
    found = {}
    _collect_polls(flow, found, not_yet=None)
    return found


def _collect_polls(flow, found, not_yet):
    if isinstance(flow.retry, domain.RetryPollUntilDeadline):
        not_yet = flow.retry.not_yet
    for node, _meta in flow.iter_nodes():
        if isinstance(node, tf_flow.Flow):
            _collect_polls(node, found, not_yet)
        elif not_yet is not None:
            found[node.name] = not_yet
