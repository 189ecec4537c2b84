"""Test hooks every task runs through (see :class:`base.VmflowTask`).

Both read the environment at each call, so a test sets them for its own
process (``monkeypatch.setenv``) or for a ``vmflow-engine`` it starts.
Unset, they do nothing.

``VMFLOW_CRASH_AT=<task name>:<point>[,...]``
    The process kills itself with SIGKILL at ``<point>`` of that task:
    ``before-execute`` (nothing done yet), ``after-execute`` (the work is
    done, TaskFlow has not saved the result) or ``during-revert`` (the
    revert did its work, TaskFlow has not recorded it: the revert runs
    again on resume).
``VMFLOW_CRASH_MARKER=<path>``
    Optional: crash only if ``<path>`` does not exist, and create it
    first, so a runner restarted with the same environment goes on.
``VMFLOW_PAUSE_AT=<task name>:<point>[,...]`` and ``VMFLOW_PAUSE_DIR=<dir>``
    At ``<point>`` of that task the process writes
    ``<dir>/<task name>:<point>.paused`` and waits (at most
    ``PAUSE_TIMEOUT`` seconds) until ``<dir>/release`` exists: a test does
    something to the world (restarts the job board, cuts the database)
    while the step is at a known place, then lets it go on.
``VMFLOW_FAIL_AT=<task name>[@<host name>][,...]``
    The task's execute raises :class:`~vmflow.exception.InjectedFault` (a
    RescheduleableError) before doing anything; with ``@<host name>`` only
    when its ``host_name`` or its ``dest_host`` argument is that host (a
    resize's steps on its destination, each candidate of prep in turn).
``VMFLOW_FAIL_REVERT_AT=<task name>[@<host name>][,...]``
    The same for revert: it raises before cleaning up, as a revert whose
    cleanup fails does, so the flow ends REVERT_FAILURE with a real leak.
"""
import os
import signal
import time

from vmflow import exception

CRASH_AT = "VMFLOW_CRASH_AT"
CRASH_MARKER = "VMFLOW_CRASH_MARKER"
FAIL_AT = "VMFLOW_FAIL_AT"
FAIL_REVERT_AT = "VMFLOW_FAIL_REVERT_AT"
PAUSE_AT = "VMFLOW_PAUSE_AT"
PAUSE_DIR = "VMFLOW_PAUSE_DIR"
PAUSE_TIMEOUT = 300
CRASH_POINTS = ("before-execute", "after-execute", "during-revert")


def _entries(variable):
    return [entry.strip() for entry in os.environ.get(variable, "").split(",")
            if entry.strip()]


def crash_point(task_name, point):
    pause_point(task_name, point)
    if f"{task_name}:{point}" not in _entries(CRASH_AT):
        return
    marker = os.environ.get(CRASH_MARKER)
    if marker:
        if os.path.exists(marker):
            return
        with open(marker, "w") as handle:
            handle.write(f"{task_name}:{point}\n")
    os.kill(os.getpid(), signal.SIGKILL)


def pause_point(task_name, point):
    here = f"{task_name}:{point}"
    if here not in _entries(PAUSE_AT):
        return
    folder = os.environ[PAUSE_DIR]
    with open(os.path.join(folder, here + ".paused"), "w"):
        pass
    deadline = time.monotonic() + PAUSE_TIMEOUT
    release = os.path.join(folder, "release")
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.05)


def inject_fault(variable, task_name, phase, host_names=()):
    """Raise InjectedFault if ``variable`` names ``task_name`` (at one of
    ``host_names``, when the entry names a host)."""
    for entry in _entries(variable):
        name, _, host = entry.partition("@")
        if name == task_name and (not host or host in host_names):
            raise exception.InjectedFault(task=task_name, phase=phase)
