"""The live progress ``--wait`` shows while an operation runs.

Counts (steps done / total, the steps running, the failing step) are the
job's persisted flow detail read through :func:`vmflow.engine.progress.
flow_progress`: again at each step transition when the job runs in this
process, and at each status poll (and step start the poll finds) when a
``vmflow-engine`` runs it.

On a terminal one live line is redrawn (rich)::

    build vm1 ━━━━━━━━━━╸━━━━━━━━━ 4/11 CreateDisks 0:00:03

elsewhere (a log, CI) plain lines, with no escape sequences: a line per
step started (``done`` instead of ``running`` when a runner finished it
between two polls), then the result::

    build vm1: [4/11] CreateDisks running (3.2 s)
    build vm1: [11/11] succeeded (5.1 s)

The count is steps done / total, so a step starts at ``[done/total]``.

Both show, once per run of a step, a step that failed, is reverted or
whose revert failed. A poll step fails on every expected "not yet" and is
reverted before its retry: those are not shown, and its "running" only
once while it polls; its other failures (its deadline passed) are.
"""
import logging
import os
import sys
import threading
import time

from rich import console as rich_console
from rich import progress as rich_progress
from rich import text as rich_text
from taskflow import states
from taskflow.persistence import models as tf_models

from vmflow import conf as vmflow_conf
from vmflow.engine import persistence as engine_persistence
from vmflow.engine import progress as engine_progress

REVERT_STATES = (states.REVERTING, states.REVERTED)
DUMB_TERMINALS = ("dumb", "unknown")  # no cursor movement (as rich says)


class JobFlow:
    """The persisted flow detail of job ``job_uuid`` (whose uuid is its
    logbook's), read again by :meth:`read`."""

    def __init__(self, job_uuid, conf=vmflow_conf.CONF):
        self._backend = engine_persistence.get_persistence(conf)
        with engine_persistence.persistence_connection(self._backend) as conn:
            flow_detail = next(iter(conn.get_logbook(job_uuid)))
        self._flow_uuid = flow_detail.uuid
        self._flow = engine_progress.factory_flow(flow_detail)
        self.not_yet = (engine_progress.expected_failures(self._flow)
                        if self._flow is not None else {})

    def read(self):
        """(:class:`~vmflow.engine.progress.FlowProgress`, {task name:
        atom detail}) as persisted now."""
        flow_detail = engine_persistence.get_flow_detail(self._backend,
                                                         self._flow_uuid)
        details = {name: detail for name, detail
                   in engine_progress.atom_details(flow_detail).items()
                   if isinstance(detail, tf_models.TaskDetail)}
        return engine_progress.flow_progress(flow_detail, self._flow), details


class StepNotices:
    """Which step lines to show: a step's start once per run (a poll's
    once while it polls) and, once per run of a step, its failure, its
    revert and its revert's failure -- not a poll's expected "not yet"
    and the revert that follows it (``not_yet``: {poll step: its "not
    yet" exception class}, :func:`~vmflow.engine.progress.
    expected_failures`)."""

    def __init__(self, not_yet):
        self._not_yet = not_yet
        self._polling = set()
        self._shown = {}

    def started(self, step):
        """Whether to show that ``step`` started running."""
        self._shown.pop(step, None)
        if step not in self._not_yet:
            self._polling.clear()
            return True
        if step in self._polling:
            return False
        self._polling.add(step)
        return True

    def new(self, details):
        """[(step, what happened)] not shown yet, in flow order."""
        notices = []
        for step, detail in details.items():
            shown = self._shown.setdefault(step, set())
            for kind, text in _happenings(detail, self._not_yet.get(step)):
                if kind not in shown:
                    shown.add(kind)
                    notices.append((step, text))
        return notices


def _happenings(detail, not_yet):
    """[(kind, text)] of what a step's atom detail records."""
    happened = []
    if detail.failure is not None:
        if not_yet is not None and detail.failure.check(not_yet):
            return []  # the poll goes on
        happened.append(("failed",
                         f"failed: {_first_line(detail.failure)}"))
    if detail.state in REVERT_STATES:
        happened.append(("reverted", detail.state.lower()))
    if detail.revert_failure is not None:
        happened.append(("revert failed", "revert failed: "
                         f"{_first_line(detail.revert_failure)}"))
    return happened


def _first_line(failure):
    return (failure.exception_str or failure.exception_type_names[0]
            ).strip().splitlines()[0]


def step_line(label, progress, step, what, elapsed):
    """One plain line: ``build vm1: [4/11] CreateDisks running (3.2 s)``."""
    return f"{label}: [{progress}] {step} {what} ({elapsed:.1f} s)"


def outcome_text(progress, succeeded):
    """``succeeded``, or ``failed at <the failing step>``."""
    if succeeded:
        return "succeeded"
    return f"failed at {progress.failing}" if progress.failing else "failed"


def end_line(label, progress, succeeded, elapsed):
    """The last plain line: ``build vm1: [11/11] succeeded (5.1 s)``."""
    return (f"{label}: [{progress}] {outcome_text(progress, succeeded)} "
            f"({elapsed:.1f} s)")


def started_text(detail):
    """``running``; ``done`` for a step that ended before the display
    learnt it started (a runner ran it between two polls)."""
    if detail is not None and detail.state == states.SUCCESS:
        return "done"
    return "running"


def running_text(progress, details):
    """The steps running now, a reverting one marked so."""
    return ", ".join(
        f"{name} (reverting)" if details[name].state == states.REVERTING
        else name for name in progress.running)


class PlainDisplay:
    """One line per step start, notice and end, flushed at once."""

    def __init__(self, stream, label):
        self._stream = stream
        self._label = label

    def _write(self, line):
        self._stream.write(line + "\n")
        self._stream.flush()

    def started(self, step, progress, details, elapsed):
        self._write(step_line(self._label, progress, step,
                              started_text(details.get(step)), elapsed))

    def notice(self, step, what, progress, elapsed):
        self._write(step_line(self._label, progress, step, what, elapsed))

    def update(self, progress, details):
        pass

    def end(self, progress, succeeded, elapsed):
        self._write(end_line(self._label, progress, succeeded, elapsed))

    def close(self):
        pass


class LiveDisplay:
    """A rich progress bar redrawn in place; notices (and log records)
    print above it; its last state stays on screen."""

    def __init__(self, console, label, progress, details):
        self._label = label
        self._bar = rich_progress.Progress(
            rich_progress.TextColumn("{task.description}", markup=False),
            rich_progress.BarColumn(),
            rich_progress.MofNCompleteColumn(),
            rich_progress.TextColumn("{task.fields[step]}", markup=False),
            rich_progress.TimeElapsedColumn(),
            console=console, redirect_stdout=False, refresh_per_second=4)
        self._task = self._bar.add_task(label, step="")
        self.update(progress, details)
        self._bar.start()
        self._log_handlers = _log_above(self._bar.console.file)

    def started(self, step, progress, details, elapsed):
        self.update(progress, details)

    def notice(self, step, what, progress, elapsed):
        self._bar.console.print(
            rich_text.Text(step_line(self._label, progress, step, what,
                                     elapsed)), highlight=False)

    def update(self, progress, details):
        self._bar.update(self._task, completed=progress.done,
                         total=progress.total,
                         step=running_text(progress, details))

    def end(self, progress, succeeded, elapsed):
        self._bar.update(self._task, completed=progress.done,
                         total=progress.total,
                         step=outcome_text(progress, succeeded))
        self._bar.stop_task(self._task)
        self.close()

    def close(self):
        for handler, stream in self._log_handlers:
            handler.setStream(stream)
        self._log_handlers = []
        self._bar.stop()


def _log_above(stream):
    """Point the root logger's handlers on ``stream`` at the stderr proxy
    the live display installed (it prints above the bar); [(handler, its
    stream)] to put back."""
    if getattr(sys.stderr, "rich_proxied_file", None) is not stream:
        return []
    moved = []
    for handler in logging.getLogger().handlers:
        if (isinstance(handler, logging.StreamHandler)
                and handler.stream is stream):
            moved.append((handler, handler.setStream(sys.stderr)))
    return moved


def open_display(stream, label, progress, details):
    """A :class:`LiveDisplay` when ``stream`` is a terminal that can redraw
    a line, else a :class:`PlainDisplay` (FORCE_COLOR and the like do not
    turn a log into a terminal)."""
    if is_terminal(stream):
        return LiveDisplay(rich_console.Console(file=stream,
                                                force_terminal=True),
                           label, progress, details)
    return PlainDisplay(stream, label)


def is_terminal(stream):
    isatty = getattr(stream, "isatty", None)
    return (isatty is not None and isatty()
            and os.environ.get("TERM") not in DUMB_TERMINALS)


class WaitProgress:
    """What ``--wait`` hands to :func:`~vmflow.engine.operations.
    wait_for_operation` (``on_progress=step_changed``, ``on_poll=polled``)
    to show job ``job_uuid``'s progress on ``stream``; :meth:`end` shows
    the result, :meth:`close` (always) puts the terminal back."""

    def __init__(self, job_uuid, label, stream, conf=vmflow_conf.CONF):
        self._started = time.monotonic()
        self._flow = JobFlow(job_uuid, conf)
        self._notices = StepNotices(self._flow.not_yet)
        self._lock = threading.Lock()
        self._display = open_display(stream, label, *self._flow.read())

    def _elapsed(self):
        return time.monotonic() - self._started

    def step_changed(self, step, state):
        # A read costs about a millisecond on SQLite: done at every
        # transition, the counts never lag behind the steps.
        with self._lock:
            progress, details = self._flow.read()
            if state == states.RUNNING and self._notices.started(step):
                self._display.started(step, progress, details,
                                      self._elapsed())
            self._show(progress, details)

    def polled(self, status):
        if status.finished:
            return  # end() shows it
        with self._lock:
            self._show(*self._flow.read())

    def _show(self, progress, details):
        self._display.update(progress, details)
        for step, what in self._notices.new(details):
            self._display.notice(step, what, progress, self._elapsed())

    def end(self, succeeded):
        with self._lock:
            progress, details = self._flow.read()
            self._show(progress, details)
            self._display.end(progress, succeeded, self._elapsed())

    def close(self):
        self._display.close()
