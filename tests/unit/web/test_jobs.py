"""How the web view counts a job's progress: a poll's "not yet" is no
failure while it polls."""
from taskflow import states
from taskflow.persistence import models as tf_models
from taskflow.types import failure

from vmflow import flows
from vmflow.flows import build
from vmflow.web import jobs

POLL = "WaitForDomainRunning"


def flow_detail(atom_states, errors=()):
    detail = tf_models.FlowDetail("build", "flow-uuid")
    for name, state in atom_states.items():
        atom = tf_models.TaskDetail(name, name + "-uuid")
        atom.state = state
        if name in errors:
            atom.failure = failure.Failure.from_exception(
                RuntimeError(errors[name]))
        detail.add(atom)
    return detail


def states_until(step, state):
    """SUCCESS for every build step before ``step``, ``state`` for it."""
    names = [task.name for task in flows.iter_tasks(build.get_build_flow())]
    before = names[:names.index(step)]
    return dict({name: states.SUCCESS for name in before}, **{step: state})


def test_a_polling_step_is_not_shown_failing_while_it_polls():
    flow = build.get_build_flow()
    detail = flow_detail(states_until(POLL, states.FAILURE),
                         {POLL: "domain not running yet"})
    shown = jobs.shown_progress(detail, finished=False, flow=flow)
    assert (shown.failing, shown.error) == (None, None)
    ended = jobs.shown_progress(detail, finished=True, flow=flow)
    assert (ended.failing, ended.error) == (POLL, "domain not running yet")


def test_a_poll_that_failed_for_good_is_shown_while_the_flow_reverts():
    atom_states = states_until(POLL, states.FAILURE)
    atom_states["ClaimResources"] = states.REVERTING
    detail = flow_detail(atom_states, {POLL: "timed out"})
    shown = jobs.shown_progress(detail, finished=False,
                                flow=build.get_build_flow())
    assert (shown.failing, shown.error) == (POLL, "timed out")


def test_any_other_failing_step_is_shown_at_once():
    atom_states = states_until("CreateDisks", states.FAILURE)
    detail = flow_detail(atom_states, {"CreateDisks": "disk full"})
    shown = jobs.shown_progress(detail, finished=False,
                                flow=build.get_build_flow())
    assert (shown.failing, shown.error, shown.done) == (
        "CreateDisks", "disk full", len(atom_states) - 1)
