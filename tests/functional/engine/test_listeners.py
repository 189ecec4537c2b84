"""Engine listeners: action events and the claim keep-alive."""
import threading
import time

import pytest
from taskflow import engines, states

from tests.functional.engine import helpers, sample_flows
from vmflow.engine import actions, listeners, runner
from vmflow.engine import persistence as engine_persistence
from vmflow.engine import persistence_backend, posting
from vmflow.persistence import models


def run_inline(conf, db, factory, trace_file, **store):
    instance = helpers.add_instance(db)
    job_uuid = posting.post_operation(
        sample_flows.SAMPLE_ACTION, instance, factory,
        dict(store, trace_file=trace_file), conf=conf)
    assert runner.run_job_inline(job_uuid, conf)
    action, = helpers.rows(db, models.InstanceAction, instance_uuid=instance)
    events = helpers.rows(db, models.InstanceActionEvent,
                          action_id=action.id)
    return instance, action, {event.event: event for event in events}


def test_events_of_a_successful_flow(conf, db, trace_file):
    instance, action, events = run_inline(conf, db, sample_flows.QUICK,
                                          trace_file)
    assert (action.result, action.message) == (actions.SUCCESS, None)
    assert action.finish_time >= action.start_time
    assert list(events) == ["first", "second"]
    for event in events.values():
        assert event.result == actions.EVENT_SUCCESS
        assert event.start_time <= event.finish_time
        assert event.traceback is None
    assert events["first"].finish_time <= events["second"].start_time
    assert helpers.rows(db, models.InstanceLock, instance_uuid=instance) == []


def test_events_of_a_reverted_flow(conf, db, trace_file):
    instance, action, events = run_inline(conf, db, sample_flows.FAILING,
                                          trace_file)
    assert action.result == actions.ERROR
    assert action.message == "reverted after boom: boom fails on purpose"
    assert set(events) == {"first", "boom"}  # "never" never ran
    assert events["first"].result == actions.EVENT_REVERTED
    # A reverted run keeps the time it ended, so its duration is its own.
    assert events["first"].finish_time <= events["boom"].start_time
    assert events["boom"].result == actions.EVENT_FAILURE
    assert "RuntimeError: boom fails on purpose" in events["boom"].traceback
    assert "Traceback" in events["boom"].traceback
    assert sample_flows.read_trace(trace_file) == [
        "execute:first", "execute:boom", "revert:boom", "revert:first"]
    assert helpers.rows(db, models.InstanceLock, instance_uuid=instance) == []


def test_events_of_a_failed_revert(conf, db, trace_file):
    _instance, action, events = run_inline(
        conf, db, sample_flows.REVERT_FAILING, trace_file)
    assert action.result == actions.ERROR
    assert action.message.startswith("revert failed: stuck (revert): ")
    assert events["stuck"].result == actions.EVENT_REVERT_FAILURE
    assert "stuck revert fails on purpose" in events["stuck"].traceback
    assert events["boom"].result == actions.EVENT_FAILURE


def test_an_event_records_the_host_a_task_works_on(conf, db, trace_file):
    _instance, _action, events = run_inline(
        conf, db, sample_flows.ON_HOST, trace_file, host_name="host7")
    assert events["on_host"].host == "host7"


def _run_gated(conf, db, trace_file, tmp_path, factory, while_gated):
    """Run ``factory``'s flow inline; once its ``wait`` step waits for its
    gate, call ``while_gated(action id)``. Returns {task: (result,
    finished)} of the events after the run."""
    gate = tmp_path / "gate"
    instance = helpers.add_instance(db)
    job_uuid = posting.post_operation(
        sample_flows.SAMPLE_ACTION, instance, factory,
        {"trace_file": trace_file, "gate_file": str(gate)}, conf=conf)
    action, = helpers.rows(db, models.InstanceAction, instance_uuid=instance)
    worker = threading.Thread(
        target=lambda: runner.run_job_inline(job_uuid, conf))
    worker.start()
    try:
        helpers.wait_until(
            lambda: "execute:wait" in sample_flows.read_trace(trace_file),
            30, "the wait step")
        while_gated(action.id)
    finally:
        gate.touch()
        worker.join(30)
    return _event_states(db, action.id)


def _event_states(db, action_id):
    return {event.event: (event.result, event.finish_time is not None)
            for event in helpers.rows(db, models.InstanceActionEvent,
                                      action_id=action_id)}


def test_a_success_is_recorded_before_the_next_step_runs(
        conf, db, trace_file, tmp_path):
    def while_gated(action_id):
        assert _event_states(db, action_id) == {
            "first": (actions.EVENT_SUCCESS, True), "wait": (None, False)}

    after = _run_gated(conf, db, trace_file, tmp_path, sample_flows.GATED,
                       while_gated)
    assert after == dict.fromkeys(["first", "wait", "last"],
                                  (actions.EVENT_SUCCESS, True))


def test_a_success_beside_a_running_step_is_recorded_at_once(
        conf, db, trace_file, tmp_path):
    conf.set_override("executor", "threaded", group="engine")

    def while_gated(action_id):
        helpers.wait_until(
            lambda: _event_states(db, action_id).get("quick") == (
                actions.EVENT_SUCCESS, True), 10, "the quick step's success")
        assert _event_states(db, action_id)["wait"] == (None, False)

    after = _run_gated(conf, db, trace_file, tmp_path,
                       sample_flows.PARALLEL_GATED, while_gated)
    assert after == dict.fromkeys(["quick", "wait"],
                                  (actions.EVENT_SUCCESS, True))


def test_a_rerun_closes_the_interrupted_event(conf, db, trace_file):
    instance = helpers.add_instance(db)
    posting.post_operation("sample", instance, sample_flows.QUICK,
                           {"trace_file": trace_file}, conf=conf)
    action, = helpers.rows(db, models.InstanceAction, instance_uuid=instance)
    first = actions.start_event(db, action.id, "step", "host1")
    second = actions.start_event(db, action.id, "step", "host2")
    rows = {row.id: row for row in helpers.rows(
        db, models.InstanceActionEvent, action_id=action.id)}
    assert (rows[first].result, rows[first].host) == (
        actions.EVENT_INTERRUPTED, "host1")
    assert (rows[second].finish_time, rows[second].host) == (None, "host2")
    assert actions.open_events(db, action.id) == ["step"]


@pytest.fixture
def gated_engine(trace_file, tmp_path):
    gate = tmp_path / "gate"
    engine = engines.load(sample_flows.get_gated_flow(),
                          store={"trace_file": trace_file,
                                 "gate_file": str(gate)})
    engine.compile()
    engine.prepare()
    return engine, gate


def test_keepalive_renews_until_deregistered(board, gated_engine):
    engine, _gate = gated_engine
    job = board.post("job")
    board.claim(job, "runner-a", expiry=1)
    keepalive = listeners.ClaimKeepAlive(engine, board, job, "runner-a",
                                         expiry=1, interval=0.2)
    with keepalive:
        time.sleep(1.6)
        assert board.find_owner(job) == "runner-a"
    assert keepalive.renewals >= 3 and not keepalive.lost
    assert not any(thread.name.startswith("claim-keepalive")
                   for thread in threading.enumerate())
    time.sleep(1.2)
    assert board.find_owner(job) is None


def test_keepalive_renews_on_transitions(board, trace_file):
    engine = engines.load(sample_flows.get_quick_flow(),
                          store={"trace_file": trace_file})
    job = board.post("job")
    board.claim(job, "runner-a")
    keepalive = listeners.ClaimKeepAlive(engine, board, job, "runner-a",
                                         interval=60, min_interval=0)
    with keepalive:
        engine.run()
    assert keepalive.renewals >= 4  # RUNNING + SUCCESS of two tasks


def test_a_lost_claim_suspends_the_engine(board, gated_engine, trace_file):
    engine, gate = gated_engine
    job = board.post("job")
    board.claim(job, "runner-a", expiry=1)
    keepalive = listeners.ClaimKeepAlive(engine, board, job, "runner-a",
                                         expiry=1, interval=60,
                                         min_interval=60)
    with keepalive:
        worker = threading.Thread(target=engine.run)
        worker.start()
        helpers.wait_until(
            lambda: "execute:wait" in sample_flows.read_trace(trace_file),
            10, "the wait step")
        time.sleep(1.1)
        board.claim(job, "runner-b")  # the claim expired: taken over
        # The heartbeat thread finds the claim lost; its suspend waits for
        # the running step to end.
        renewed = []
        heartbeat = threading.Thread(
            target=lambda: renewed.append(keepalive.renew()))
        heartbeat.start()
        helpers.wait_until(lambda: keepalive.lost, 10, "the lost claim")
        gate.touch()
        worker.join(10)
        heartbeat.join(10)
    assert renewed == [False]
    assert engine.storage.get_flow_state() == states.SUSPENDED
    assert "execute:last" not in sample_flows.read_trace(trace_file)
    assert board.find_owner(job) == "runner-b"


def test_a_success_a_dead_runner_held_back_is_closed_on_resume(
        conf, db, trace_file):
    """The runner died after ``first``'s SUCCESS was saved, holding its
    event's end back: the resumed run closes that event as a success at
    the time the state was saved, and runs only ``second``."""
    instance = helpers.add_instance(db)
    posting.post_operation("sample", instance, sample_flows.QUICK,
                           {"trace_file": trace_file}, conf=conf)
    action, = helpers.rows(db, models.InstanceAction, instance_uuid=instance)
    backend = engine_persistence.get_persistence(conf)
    engine = engines.load(sample_flows.get_quick_flow(), backend=backend,
                          store={"trace_file": trace_file})
    engine.compile()
    engine.prepare()
    actions.start_event(db, action.id, "first")
    engine.storage.save("first", None, states.SUCCESS)
    saved = persistence_backend.saved_at(
        db, engine.storage.get_atom_uuid("first"))
    with listeners.ActionEventListener(engine, action.id, db):
        engine.run()
    events = helpers.rows(db, models.InstanceActionEvent,
                          action_id=action.id)
    assert [(event.event, event.result) for event in events] == [
        ("first", actions.EVENT_SUCCESS), ("second", actions.EVENT_SUCCESS)]
    assert saved is not None and events[0].finish_time == saved
    assert sample_flows.read_trace(trace_file) == ["execute:second"]
