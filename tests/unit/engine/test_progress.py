"""flow_progress: the steps of a flow detail saved without a factory (a
flow a test or a tool ran with engines.load) are its task details; which
step is failing, on the build's own flow."""
from oslo_utils import uuidutils
from taskflow import states
from taskflow.persistence import models as tf_models
from taskflow.types import failure

from vmflow import exception, flows
from vmflow.engine import progress
from vmflow.flows import build


def test_without_a_factory_the_task_details_are_the_steps():
    flow_detail = tf_models.FlowDetail("plain", uuidutils.generate_uuid())
    for model, name, state in (
            (tf_models.TaskDetail, "first", states.SUCCESS),
            (tf_models.RetryDetail, "retry", states.RUNNING),
            (tf_models.TaskDetail, "second", states.RUNNING),
            (tf_models.TaskDetail, "third", states.PENDING)):
        atom = model(name, uuidutils.generate_uuid())
        atom.state = state
        flow_detail.add(atom)
    assert progress.factory_flow(flow_detail) is None
    assert progress.flow_progress(flow_detail) == progress.FlowProgress(
        done=1, total=3, running=("second",), failing=None, error=None)


# -- the failing step, on the build's own flow ------------------------------

POLL = "WaitForDomainRunning"


def build_detail(atom_states, errors=()):
    """A build flow detail with these atom states; ``errors``: {step: the
    exception its recorded failure is}."""
    detail = tf_models.FlowDetail("build", uuidutils.generate_uuid())
    for name, state in atom_states.items():
        atom = tf_models.TaskDetail(name, uuidutils.generate_uuid())
        atom.state = state
        if name in errors:
            atom.failure = failure.Failure.from_exception(errors[name])
        detail.add(atom)
    return detail


def states_until(step, state):
    """SUCCESS for every build step before ``step``, ``state`` for it."""
    names = [task.name for task in flows.iter_tasks(build.get_build_flow())]
    before = names[:names.index(step)]
    return dict(dict.fromkeys(before, states.SUCCESS), **{step: state})


def test_a_polls_not_yet_is_no_failure():
    detail = build_detail(states_until(POLL, states.FAILURE), {
        POLL: exception.DomainNotRunningYet(ident="i", host="h",
                                            state="paused")})
    counted = progress.flow_progress(detail, build.get_build_flow())
    assert (counted.failing, counted.error) == (None, None)


def test_a_poll_that_gave_up_is_the_failing_step():
    atom_states = states_until(POLL, states.FAILURE)
    atom_states["ClaimResources"] = states.REVERTING
    timeout = exception.DomainStartTimeout(ident="i", host="h",
                                           state="paused", seconds=30)
    detail = build_detail(atom_states, {POLL: timeout})
    counted = progress.flow_progress(detail, build.get_build_flow())
    assert (counted.failing, counted.error) == (POLL, str(timeout))


def test_any_other_step_fails_at_once_and_a_skipped_failure_not_at_all():
    atom_states = states_until("CreateDisks", states.FAILURE)
    detail = build_detail(atom_states,
                          {"CreateDisks": RuntimeError("disk full"),
                           "ClaimResources": RuntimeError("earlier")})
    claim = next(atom for atom in detail if atom.name == "ClaimResources")
    claim.state = states.IGNORE
    counted = progress.flow_progress(detail, build.get_build_flow())
    assert (counted.failing, counted.error, counted.done) == (
        "CreateDisks", "disk full", len(atom_states) - 2)
