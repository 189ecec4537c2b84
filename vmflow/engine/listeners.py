"""Engine listeners the runner attaches to every job's engine.

* :class:`ActionEventListener` writes one instance action event per run of
  a task: opened when it starts running, finished with ``success`` or
  ``failure`` (+ traceback), later marked ``reverted`` or
  ``revert_failure`` (+ traceback) if the flow reverts it. A success is
  written with the next task's start (one transaction a step).
* :class:`ClaimKeepAlive` renews the runner's claim on the job on atom
  transitions and from a heartbeat thread, so a long task never lets the
  claim expire; if the claim turns out lost (another runner took the job
  over) it suspends the engine so two runners do not work the job at once.
* :class:`ProgressListener` calls a function with (task name, state), for
  ``--wait`` showing which step runs.
"""
import threading
import time

from taskflow import exceptions as tf_exc
from taskflow import logging as tf_logging
from taskflow import states
from taskflow import task as tf_task
from taskflow.listeners import base

from vmflow.engine import actions, outage, persistence_backend
from vmflow.flows import constants
from vmflow.persistence import models

LOG = tf_logging.getLogger(__name__)
HOST_ARGUMENT = constants.HOST_NAME
# The event result of a task run that ended in this (saved) state.
ENDED_RESULTS = {states.SUCCESS: actions.EVENT_SUCCESS,
                 states.FAILURE: actions.EVENT_FAILURE,
                 states.REVERTED: actions.EVENT_REVERTED,
                 states.REVERT_FAILURE: actions.EVENT_REVERT_FAILURE}


class ActionEventListener(base.Listener):
    """Writes the events of instance action ``action_id``.

    A start is written before its task runs (a dead runner's run must
    show as ``interrupted``). A success is written with the next start,
    in one transaction, when no other task of the flow runs; else, and
    for every other result, at once. So a success waits only for the
    engine's next move: it is written before any task or retry runs or
    reverts, at the flow's end and when the listener is deregistered.
    """

    def __init__(self, engine, action_id, db_engine, claim=None):
        super().__init__(engine, task_listen_for=(
            states.RUNNING, states.SUCCESS, states.FAILURE, states.REVERTING,
            states.REVERTED, states.REVERT_FAILURE), flow_listen_for=(
            states.RUNNING, states.SUCCESS, states.FAILURE, states.REVERTED,
            states.SUSPENDED), retry_listen_for=(states.RUNNING,
                                                 states.REVERTING))
        self._action_id = action_id
        self._db = db_engine
        self._claim = claim
        self._open_events = {}
        self._pending_success = None
        self._atoms = None

    def deregister(self):
        try:
            self._write_pending_success()
        except Exception:  # the database is down: the event stays open
            LOG.exception("Recording the end of an event of action %s "
                          "failed", self._action_id)
        super().deregister()

    def _flow_receiver(self, state, details):
        """When the flow (re)starts, tasks a dead runner left RUNNING run
        again without a new RUNNING notification (TaskFlow skips identity
        transitions), so their new events are opened here. (Any flow
        transition writes the success held back first.) Nothing is written
        when the claim on the job was lost: the engine does not run
        (:class:`ClaimKeepAlive`)."""
        self._write_pending_success()
        if state != states.RUNNING or (self._claim is not None
                                       and self._claim.lost):
            return
        self._close_runs_a_dead_runner_left_open()
        for name in self._tasks():
            if self._engine.storage.get_atom_state(name) == states.RUNNING:
                self._start(name)

    def _close_runs_a_dead_runner_left_open(self):
        """A runner that died after saving a task's end but before writing
        its event (or holding a success back) left the event open: it is
        closed as the task ended, at the time that state was saved."""
        storage = self._engine.storage
        for name in set(actions.open_events(self._db, self._action_id)):
            result = ENDED_RESULTS.get(storage.get_atom_state(name)) \
                if name in self._tasks() else None
            if result is not None:
                actions.close_open_event(
                    self._db, self._action_id, name, result,
                    persistence_backend.saved_at(
                        self._db, storage.get_atom_uuid(name)))

    def _retry_receiver(self, state, details):
        self._write_pending_success()

    def _task_receiver(self, state, details):
        name = details["task_name"]
        if state == states.RUNNING:
            self._start(name)
            return
        self._write_pending_success()
        if state == states.SUCCESS:
            self._finish(name, actions.EVENT_SUCCESS)
        elif state == states.FAILURE:
            self._finish(name, actions.EVENT_FAILURE,
                         _traceback_of(details.get("result")))
        elif state == states.REVERTED:
            actions.mark_event_reverted(self._db, self._action_id, name)
        elif state == states.REVERT_FAILURE:
            actions.mark_event_revert_failed(
                self._db, self._action_id, name,
                _traceback_of(details.get("result")))

    def _start(self, name):
        self._open_events[name] = actions.start_event(
            self._db, self._action_id, name, self._host_of(name),
            self._pending_success)
        self._pending_success = None

    def _finish(self, name, result, traceback=None):
        event_id = self._open_events.pop(name, None)
        if event_id is None:
            LOG.warning("Task %s ended (%s) without a start this listener "
                        "saw; recording it on a new event", name, result)
            event_id = actions.start_event(self._db, self._action_id, name,
                                           self._host_of(name))
        finish = actions.EventFinish(event_id, result, traceback,
                                     models.utcnow())
        if result == actions.EVENT_SUCCESS and not self._open_events:
            self._pending_success = finish
        else:
            actions.finish_event(self._db, finish)

    def _write_pending_success(self):
        """Write the success held back, if any (held on when the write
        fails: the next write tries again)."""
        if self._pending_success is not None:
            actions.finish_event(self._db, self._pending_success)
            self._pending_success = None

    def _tasks(self):
        if self._atoms is None:
            graph = self._engine.compilation.execution_graph
            self._atoms = {node.name: node for node in graph.nodes
                           if isinstance(node, tf_task.Task)}
        return self._atoms

    def _host_of(self, task_name):
        """The ``host_name`` argument the task runs with, if it takes one."""
        task = self._tasks()[task_name]
        if HOST_ARGUMENT not in task.rebind:
            return None
        arguments = self._engine.storage.fetch_mapped_args(
            {HOST_ARGUMENT: task.rebind[HOST_ARGUMENT]}, atom_name=task_name,
            optional_args={HOST_ARGUMENT})
        return arguments.get(HOST_ARGUMENT)


def _traceback_of(failure):
    if failure is None:
        return None
    return failure.pformat(traceback=True)


class ClaimKeepAlive(base.Listener):
    """Keeps ``who``'s claim on ``job`` alive while the engine runs.

    Renews on atom transitions (at most every ``min_interval`` seconds) and
    every ``interval`` seconds from a daemon thread that runs between
    ``register()`` and ``deregister()`` (the conductor enters and leaves the
    listener around the job's run).
    """

    def __init__(self, engine, board, job, who, expiry=None, interval=None,
                 min_interval=None):
        super().__init__(engine)
        self._board = board
        self._job = job
        self._who = who
        self._expiry = float(expiry or board.claim_expiry)
        self._interval = interval or self._expiry / 3.0
        self._min_interval = (self._expiry / 10.0 if min_interval is None
                              else min_interval)
        self._last_renewal = time.monotonic()
        self._renew_lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = None
        self.lost = False
        self.renewals = 0
        self._outage = outage.OutageLog(
            LOG, f"Renewing the claim on job {job.uuid}")

    def register(self):
        super().register()
        if self._thread is None:
            self._stopped.clear()
            self._thread = threading.Thread(
                target=self._heartbeat, daemon=True,
                name=f"claim-keepalive-{self._job.uuid[:8]}")
            self._thread.start()

    def deregister(self):
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        super().deregister()

    def _heartbeat(self):
        while not self._stopped.wait(self._interval):
            try:
                self.renew()
            except Exception as error:  # the database or Redis is down
                self._outage.failed(error)
            else:
                self._outage.succeeded()

    def _task_receiver(self, state, details):
        self._renew_if_due()

    def _retry_receiver(self, state, details):
        self._renew_if_due()

    def _flow_receiver(self, state, details):
        if state != states.RUNNING:
            self._renew_if_due()
        elif not self.renew():
            # Lost before the engine ran (while it was loading): suspend()
            # did nothing then (TaskFlow only suspends a running flow), so
            # the flow is stopped now, before any task runs.
            self._engine.suspend()

    def _renew_if_due(self):
        if time.monotonic() - self._last_renewal >= self._min_interval:
            self.renew()

    def renew(self):
        """Extend the claim. When the board lost the job (it restarted
        without its data), post it again and claim it: the work goes on.
        When another runner took the job over, suspend the engine."""
        with self._renew_lock:
            if self.lost:
                return False
            if (self._board.extend_claim(self._job, self._who, self._expiry)
                    or self._reclaim_if_board_lost_job()):
                self._last_renewal = time.monotonic()
                self.renewals += 1
                return True
            self.lost = True
        LOG.error("Runner %s lost its claim on job %s (another runner took "
                  "it over); suspending the engine", self._who,
                  self._job.uuid)
        self._engine.suspend()
        return False

    def _reclaim_if_board_lost_job(self):
        if self._board.find_job(self._job.uuid) is not None:
            return False
        LOG.warning("Job %s, run by %s, was lost by the job board (it is "
                    "no longer listed); posting it again, claimed, the run "
                    "goes on", self._job.uuid, self._who)
        try:
            self._board.post_claimed(self._job, self._who, self._expiry)
        except (tf_exc.UnclaimableJob, tf_exc.JobFailure):
            return False  # another runner posted it first: theirs now
        return True


class ProgressListener(base.Listener):
    """Calls ``on_progress(task_name, state)`` on every task transition."""

    def __init__(self, engine, on_progress):
        super().__init__(engine, flow_listen_for=(), retry_listen_for=())
        self._on_progress = on_progress

    def _task_receiver(self, state, details):
        self._on_progress(details["task_name"], state)
