"""Tiny flows for the engine tests, importable by dotted name so a runner
process can re-create them (``tests.functional.engine.sample_flows.*``).

Every task appends ``<phase>:<task name>`` to the file ``trace_file`` (from
the store), so a test can count how often each step ran, also across
runner processes. ``WaitForGate`` blocks until the file ``gate_file``
exists: a test kills or stops a runner while it waits; ``TimedGate`` also
records when it started (``started:<task name>@<time.time()>``, read back
by :func:`start_times`), for benchmarks of resumption.
"""
import os
import time

from taskflow import task
from taskflow.patterns import linear_flow, unordered_flow

TRACE_FILE = "trace_file"
GATE_FILE = "gate_file"
SAMPLE_ACTION = "sample"
GATE_POLL_SECONDS = 0.02
SLEEP_SECONDS = 0.2


def record(trace_file, line):
    with open(trace_file, "a") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_trace(trace_file):
    if not os.path.exists(trace_file):
        return []
    with open(trace_file) as handle:
        return handle.read().split()


class RecordStep(task.Task):
    """Reversion strategy: records the revert."""

    def execute(self, trace_file):
        record(trace_file, f"execute:{self.name}")
        return self.name

    def revert(self, trace_file, **kwargs):
        record(trace_file, f"revert:{self.name}")


class WaitForGate(RecordStep):
    """Records that it started, then waits for the gate file."""

    def execute(self, trace_file, gate_file):
        record(trace_file, f"execute:{self.name}")
        while not os.path.exists(gate_file):
            time.sleep(GATE_POLL_SECONDS)
        record(trace_file, f"passed:{self.name}")
        return self.name


class TimedGate(WaitForGate):
    """A WaitForGate that first records the wall-clock time it started."""

    def execute(self, trace_file, gate_file):
        record(trace_file, f"started:{self.name}@{time.time():.6f}")
        return super().execute(trace_file, gate_file)


def start_times(trace_file, name):
    """The times (``time.time()``) at which TimedGate ``name`` started,
    in order."""
    prefix = f"started:{name}@"
    return [float(line[len(prefix):]) for line in read_trace(trace_file)
            if line.startswith(prefix)]


class FailStep(RecordStep):
    def execute(self, trace_file):
        record(trace_file, f"execute:{self.name}")
        raise RuntimeError(f"{self.name} fails on purpose")


class FailRevertStep(RecordStep):
    def revert(self, trace_file, **kwargs):
        record(trace_file, f"revert:{self.name}")
        raise RuntimeError(f"{self.name} revert fails on purpose")


class HostStep(RecordStep):
    def execute(self, trace_file, host_name):
        record(trace_file, f"execute:{self.name}@{host_name}")


class SleepStep(RecordStep):
    """Takes a little time, so concurrent runners overlap."""

    def execute(self, trace_file):
        record(trace_file, f"execute:{self.name}")
        time.sleep(SLEEP_SECONDS)


def get_quick_flow():
    return linear_flow.Flow("quick").add(
        RecordStep("first"), RecordStep("second"))


def get_gated_flow():
    return linear_flow.Flow("gated").add(
        RecordStep("first"), WaitForGate("wait"), RecordStep("last"))


def get_timed_gated_flow():
    return linear_flow.Flow("timed-gated").add(
        RecordStep("first"), TimedGate("wait"), RecordStep("last"))


def get_failing_flow():
    return linear_flow.Flow("failing").add(
        RecordStep("first"), FailStep("boom"), RecordStep("never"))


def get_revert_failing_flow():
    return linear_flow.Flow("revert-failing").add(
        FailRevertStep("stuck"), FailStep("boom"))


def get_host_flow():
    return linear_flow.Flow("on-host").add(HostStep("on_host"))


def get_slow_flow():
    return linear_flow.Flow("slow").add(
        RecordStep("first"), SleepStep("sleep"), RecordStep("last"))


def get_parallel_gated_flow():
    """A quick step beside a gated one (run in parallel by the threaded
    executor)."""
    return unordered_flow.Flow("parallel-gated").add(
        RecordStep("quick"), WaitForGate("wait"))


QUICK = get_quick_flow
GATED = get_gated_flow
TIMED_GATED = get_timed_gated_flow
FAILING = get_failing_flow
REVERT_FAILING = get_revert_failing_flow
ON_HOST = get_host_flow
SLOW = get_slow_flow
PARALLEL_GATED = get_parallel_gated_flow
