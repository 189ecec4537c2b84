"""Rules of posting and of judging an operation's end, without a board."""
import pytest
from taskflow import states
from taskflow.persistence import models as tf_models
from taskflow.types import failure

from vmflow import exception
from vmflow.engine import actions, outcome, posting, runner


def test_checked_store_adds_the_ids_and_copies():
    store = {"x": [1, 2]}
    checked = posting.checked_store(store, "uuid-1", "req-1")
    assert checked == {"x": [1, 2], "instance_uuid": "uuid-1",
                       "request_id": "req-1"}
    assert store == {"x": [1, 2]}


@pytest.mark.parametrize("store", [
    {"x": object()}, {"x": {1, 2}}, {"password": "x"},
    {"conn": {"Secret": 1}}, {"request_id": "other"}])
def test_checked_store_refuses(store):
    with pytest.raises(exception.InvalidInput):
        posting.checked_store(store, "uuid-1", "req-1")


def flow_detail(state, *atoms):
    detail = tf_models.FlowDetail("flow", "flow-uuid")
    detail.state = state
    for atom in atoms:
        detail.add(atom)
    return detail


def atom(name, error=None, revert_error=None):
    detail = tf_models.TaskDetail(name, name + "-uuid")
    if error:
        detail.failure = failure.Failure.from_exception(RuntimeError(error))
    if revert_error:
        detail.revert_failure = failure.Failure.from_exception(
            RuntimeError(revert_error))
    return detail


def test_describe_flow():
    assert outcome.describe_flow(flow_detail(states.SUCCESS)) == (
        actions.SUCCESS, None)
    assert outcome.describe_flow(flow_detail(
        states.REVERTED, atom("a"), atom("b", "disk full"))) == (
        actions.ERROR, "reverted after b: disk full")
    assert outcome.describe_flow(flow_detail(
        states.FAILURE, atom("a", revert_error="cannot undefine"),
        atom("b", "disk full"))) == (
        actions.ERROR,
        "revert failed: a (revert): cannot undefine; b: disk full")
    assert outcome.describe_flow(flow_detail(states.SUSPENDED)) == (
        actions.ERROR, "the flow stopped in state SUSPENDED")


def test_engine_options(conf):
    assert runner.engine_options(conf) == ("serial",
                                           {"defer_reverts": True})
    conf.set_override("executor", "threaded", group="engine")
    conf.set_override("max_workers", 3, group="engine")
    pool = object()
    assert runner.engine_options(conf, pool) == (
        "parallel", {"executor": pool, "defer_reverts": True})
    conductor = runner.build_conductor("r", conf, board=object(),
                                       persistence=_Persistence())
    assert conductor.task_pool._max_workers == 3
    conductor.close_task_pool()


class _Persistence:
    source_engine = None


def test_stop_when_idle_interrupts_instead_of_waiting():
    idle = [False]
    timeout = runner._StopWhenIdle(0.01, lambda: idle[0])
    timeout.wait()
    assert not timeout.is_stopped()
    idle[0] = True
    timeout.wait()
    assert timeout.is_stopped()


def test_runner_identity_names_host_and_pid():
    import os
    import socket
    assert runner.runner_identity("r") == (
        f"r@{socket.gethostname()}:{os.getpid()}")
