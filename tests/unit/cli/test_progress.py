"""vmflow.cli.progress's choice of step lines and their text, on real
TaskFlow atom details and failures; the polls of real flows."""
import io
import os

from oslo_utils import uuidutils
from taskflow import states
from taskflow.persistence import models as tf_models
from taskflow.types import failure as ft

from vmflow import exception
from vmflow.cli import progress
from vmflow.engine import progress as engine_progress
from vmflow.flows import build, power, reboot

POLL = "WaitForDomainRunning"


def failure_of(error):
    try:
        raise error
    except type(error):
        return ft.Failure()


def detail(name, state, failure=None, revert_failure=None):
    task_detail = tf_models.TaskDetail(name, uuidutils.generate_uuid())
    task_detail.state = state
    task_detail.failure = failure
    task_detail.revert_failure = revert_failure
    return task_detail


def not_yet():
    return failure_of(exception.DomainNotRunningYet(
        ident="i-1", host="h1", state="shutdown"))


def notices():
    return progress.StepNotices({POLL: exception.DomainNotRunningYet})


def test_polls_and_what_they_poll_again_on_in_real_flows():
    assert engine_progress.expected_failures(build.get_build_flow()) == {
        POLL: exception.DomainNotRunningYet}
    reboot_polls = engine_progress.expected_failures(
        reboot.get_reboot_flow())
    assert reboot_polls == {
        "WaitForGuestReboot": exception.DomainNotShutOffYet,
        "WaitForDomainRunning-soft": exception.DomainNotRunningYet,
        POLL: exception.DomainNotRunningYet}
    assert engine_progress.poll_steps(reboot.get_reboot_flow()) == set(
        reboot_polls)
    assert engine_progress.expected_failures(
        power.FACTORIES["start"]()) == {POLL: exception.DomainNotRunningYet}


def test_a_polls_not_yet_and_its_revert_are_never_shown():
    shown = notices()
    assert shown.started(POLL)
    for state in (states.FAILURE, states.REVERTING, states.REVERTED):
        assert shown.new({POLL: detail(POLL, state, not_yet())}) == []
        assert not shown.started(POLL)  # polled again: not shown again


def test_a_polls_other_failure_is_shown_once():
    shown = notices()
    timeout = failure_of(exception.DomainStartTimeout(
        ident="i-1", host="h1", state="shutdown", seconds=1))
    assert shown.new({POLL: detail(POLL, states.FAILURE, timeout)}) == [
        (POLL, "failed: domain i-1 on host h1 is shutdown, not running, "
               "after 1 s")]
    assert shown.new({POLL: detail(POLL, states.FAILURE, timeout)}) == []
    assert shown.new({POLL: detail(POLL, states.REVERTED, timeout)}) == [
        (POLL, "reverted")]


def test_a_steps_failure_revert_and_revert_failure_each_once_per_run():
    shown = notices()
    fault = failure_of(exception.InjectedFault(task="CreateDisks",
                                               phase="execute"))
    revert_fault = failure_of(exception.InjectedFault(task="CreateDisks",
                                                      phase="revert"))
    reads = [
        (states.FAILURE, None, [("CreateDisks",
                                 "failed: injected fault in CreateDisks "
                                 "execute")]),
        (states.FAILURE, None, []),
        (states.REVERTING, None, [("CreateDisks", "reverting")]),
        (states.REVERTED, None, []),
        (states.REVERT_FAILURE, revert_fault, [
            ("CreateDisks", "revert failed: injected fault in CreateDisks "
                            "revert")]),
        (states.REVERT_FAILURE, revert_fault, []),
    ]
    for state, revert_failure, expected in reads:
        assert shown.new({"CreateDisks": detail(
            "CreateDisks", state, fault, revert_failure)}) == expected
    # Run again (the next host): its failure is news again.
    assert shown.started("CreateDisks")
    assert shown.new({"CreateDisks": detail(
        "CreateDisks", states.FAILURE, fault)}) == [
        ("CreateDisks", "failed: injected fault in CreateDisks execute")]


def test_a_poll_is_shown_starting_again_after_another_step_ran():
    shown = notices()
    assert [shown.started(step) for step in (
        "StartDomain", POLL, POLL, POLL, "StartDomain", POLL)] == [
        True, True, False, False, True, True]


def test_plain_lines():
    counted = engine_progress.FlowProgress(
        done=4, total=11, running=("CreateDisks",), failing=None,
        error=None)
    failed = engine_progress.FlowProgress(
        done=0, total=11, running=(), failing="CreateDisks", error="boom")
    assert progress.step_line("build vm1", counted, "CreateDisks",
                              "running", 3.21) == (
        "build vm1: [4/11] CreateDisks running (3.2 s)")
    assert progress.end_line("build vm1", counted, True, 5.06) == (
        "build vm1: [4/11] succeeded (5.1 s)")
    assert progress.end_line("build vm1", failed, False, 0.3) == (
        "build vm1: [0/11] failed at CreateDisks (0.3 s)")
    assert progress.started_text(detail("A", states.SUCCESS)) == "done"
    assert progress.started_text(detail("A", states.RUNNING)) == "running"


def test_a_stream_that_is_not_a_terminal_gets_plain_lines(monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # a log it remains
    counted = engine_progress.FlowProgress(
        done=0, total=2, running=(), failing=None, error=None)
    stream = io.StringIO()
    display = progress.open_display(stream, "stop vm1", counted, {})
    assert isinstance(display, progress.PlainDisplay)
    display.started("A", counted, {}, 0.04)
    display.end(counted, True, 0.1)
    display.close()
    assert stream.getvalue() == ("stop vm1: [0/2] A running (0.0 s)\n"
                                 "stop vm1: [0/2] succeeded (0.1 s)\n")


def test_a_dumb_terminal_is_no_terminal_to_redraw_on(monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as terminal:
        assert progress.is_terminal(terminal) is False
        monkeypatch.setenv("TERM", "xterm")
        assert progress.is_terminal(terminal) is True
    os.close(master)
