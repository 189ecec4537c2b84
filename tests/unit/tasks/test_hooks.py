"""The crash and fault hooks every task runs through."""
import subprocess
import sys

import pytest

from vmflow import exception
from vmflow.tasks import base, hooks

SCRIPT = """
from vmflow.tasks import base

class Touch(base.VmflowTask):
    def execute(self, path):
        open(path, "a").write("executed\\n")

    def revert(self, result, path, **kwargs):
        open(path, "a").write("reverted\\n")

task = Touch()
task.execute(path={path!r})
task.revert(None, path={path!r})
"""


def run_script(tmp_path, env):
    log = tmp_path / "log"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(path=str(log))],
        env=dict(env, PATH="/usr/bin:/bin"), capture_output=True, text=True,
        timeout=60, check=False)
    return result.returncode, log.read_text() if log.exists() else ""


@pytest.mark.parametrize("point, logged", [
    ("before-execute", ""),
    ("after-execute", "executed\n"),
    ("during-revert", "executed\nreverted\n"),
])
def test_crash_hook_kills_the_process_at_its_point(tmp_path, point, logged):
    returncode, log = run_script(tmp_path, {hooks.CRASH_AT: f"Touch:{point}"})
    assert returncode == -9
    assert log == logged


def test_crash_hook_with_a_marker_fires_once(tmp_path):
    env = {hooks.CRASH_AT: "Touch:after-execute",
           hooks.CRASH_MARKER: str(tmp_path / "crashed")}
    assert run_script(tmp_path, env)[0] == -9
    assert (tmp_path / "crashed").read_text() == "Touch:after-execute\n"
    assert run_script(tmp_path, env) == (
        0, "executed\nexecuted\nreverted\n")


def test_no_hook_without_the_variables(tmp_path):
    assert run_script(tmp_path, {hooks.CRASH_AT: "Other:before-execute"}) == (
        0, "executed\nreverted\n")


class Probe(base.VmflowTask):
    """Reversion strategy: nothing to undo (a test task)."""

    def execute(self, host_name):
        return host_name


def test_fail_at_raises_a_rescheduleable_injected_fault(monkeypatch):
    monkeypatch.setenv(hooks.FAIL_AT, "Other, Probe@host1")
    with pytest.raises(exception.InjectedFault) as caught:
        Probe().execute(host_name="host1")
    assert isinstance(caught.value, exception.RescheduleableError)
    assert str(caught.value) == "injected fault in Probe execute"
    assert getattr(caught.value, base.FAILURE_ORDER) > 0
    assert Probe().execute(host_name="host2") == "host2"
    monkeypatch.setenv(hooks.FAIL_AT, "Probe")
    with pytest.raises(exception.InjectedFault):
        Probe().execute(host_name="host2")


def test_fail_revert_at_raises_in_revert(monkeypatch):
    monkeypatch.setenv(hooks.FAIL_REVERT_AT, "Probe")
    with pytest.raises(exception.InjectedFault,
                       match="injected fault in Probe revert"):
        Probe().revert("host1", host_name="host1")


def test_tasks_keep_their_signature_for_taskflow():
    assert Probe().name == "Probe"
    assert set(Probe().requires) == {"host_name"}


class DestinationProbe(base.VmflowTask):
    """Reversion strategy: nothing to undo (a test task)."""

    def execute(self, host_name, dest_host):
        return dest_host


def test_fail_at_a_host_also_matches_the_destination(monkeypatch):
    monkeypatch.setenv(hooks.FAIL_AT, "DestinationProbe@host2")
    with pytest.raises(exception.InjectedFault):
        DestinationProbe().execute(host_name="host1", dest_host="host2")
    assert DestinationProbe().execute(host_name="host1",
                                      dest_host="host3") == "host3"
