"""The client side of operations: status, waiting, job listings.

A job's uuid is also its logbook's uuid (see :mod:`.posting`), so the
status of an operation can be read from the database alone, after the job
left the board too: logbook -> ``meta["vmflow"]`` -> instance action and
events.

``vmflow server create ... --wait`` does::

    job_uuid = posting.post_operation(...)
    status = operations.wait_for_operation(job_uuid, on_progress=show)
    # status.succeeded / status.message; the instance's fault for details

``wait_for_operation`` runs the job in-process (:func:`.runner.
run_job_inline`) when no runner is alive, else polls until it ends.
"""
import dataclasses
import time

from taskflow import exceptions as tf_exc
from taskflow import states

from vmflow import conf as vmflow_conf
from vmflow import exception, flows
from vmflow.engine import (actions, jobboard, locks, outcome, progress,
                           recovery, runner)
from vmflow.engine import persistence as engine_persistence
from vmflow.inventory import servers
from vmflow.persistence import api

POLL_INTERVAL = 0.5
# What ``job list`` shows of each job (``job show`` adds the result, the
# message and the steps).
JOB_FIELDS = ("uuid", "action", "instance_uuid", "server", "state", "owner",
              "claim_expires_at", "progress", "failing", "created_on",
              "request_id")
FAILING_LENGTH = 100
# What `job show` and `job list` say of an operation with no job on the
# board: it ended, or the board lost it (a runner posts it again).
ENDED = "ENDED"
LOST = "LOST"


@dataclasses.dataclass
class OperationStatus:
    job_uuid: str
    action: str
    action_id: int
    instance_uuid: str
    request_id: str
    finished: bool
    result: str | None
    message: str | None
    running_steps: list

    @property
    def succeeded(self):
        return self.finished and self.result == actions.SUCCESS


def operation_status(job_uuid, conf=vmflow_conf.CONF):
    """The :class:`OperationStatus` of the operation posted as job
    ``job_uuid``; NotFound if no such operation was posted."""
    persistence = engine_persistence.get_persistence(conf)
    with engine_persistence.persistence_connection(persistence) as conn:
        book = _get_logbook(conn, job_uuid, lazy=True)
    return _status_of(book, persistence.source_engine)


def _get_logbook(conn, job_uuid, lazy=False):
    try:
        return conn.get_logbook(job_uuid, lazy=lazy)
    except tf_exc.NotFound as error:
        raise exception.NotFound(kind="job", name=job_uuid) from error


def _status_of(book, db_engine):
    info = (book.meta or {}).get(outcome.META_KEY)
    if info is None:
        raise exception.NotFound(kind="vmflow operation", name=book.uuid)
    row = actions.get_action(db_engine, info["action_id"])
    return OperationStatus(
        job_uuid=book.uuid, action=info["action"],
        action_id=info["action_id"], instance_uuid=info["instance_uuid"],
        request_id=info["request_id"], finished=row.finish_time is not None,
        result=row.result, message=row.message,
        running_steps=actions.open_events(db_engine, info["action_id"]))


def any_runner_alive(conf=vmflow_conf.CONF, board=None):
    """True when a ``vmflow-engine`` heartbeat on the board is current."""
    with jobboard.opened(conf, board) as board:
        return bool(runner.live_runners(board))


def wait_for_operation(job_uuid, conf=vmflow_conf.CONF, on_progress=None,
                       timeout=None, run_inline=True,
                       poll_interval=POLL_INTERVAL, on_poll=None):
    """Wait until the operation of job ``job_uuid`` ends; its final status.

    With ``run_inline`` and no runner alive, the job runs in this process.
    ``on_progress(task_name, state)`` reports steps as they start
    (``RUNNING``) -- and, inline, every transition. ``on_poll(status)``
    is called with every status read (each ``poll_interval``, and the
    final one). Raises
    :class:`~vmflow.exception.OperationTimeout` after ``timeout`` seconds.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    reported = _StepReporter(on_progress)
    persistence = engine_persistence.get_persistence(conf)
    with jobboard.opened(conf, persistence=persistence) as board:
        sweeper = recovery.LostJobSweeper(board, persistence)
        while True:
            status = operation_status(job_uuid, conf)
            reported.report(status, persistence.source_engine)
            if on_poll is not None:
                on_poll(status)
            if status.finished:
                return status
            if run_inline and not runner.live_runners(board):
                if _run_inline_unless_claimed(job_uuid, conf, on_progress):
                    # Its steps were reported as they ran, not again.
                    reported.catch_up(status, persistence.source_engine)
                    continue
                # The board lost the job: post it again (once it stayed
                # lost for a claim expiry), then run it here.
                sweeper.sweep(status.instance_uuid)
            if deadline is not None and time.monotonic() >= deadline:
                raise exception.OperationTimeout(
                    job=job_uuid, seconds=timeout,
                    steps=", ".join(status.running_steps) or "none")
            time.sleep(poll_interval)


class _StepReporter:
    """Reports every step a runner started (from the action's events, so
    none is missed between two polls), each run once."""

    def __init__(self, on_progress):
        self._on_progress = on_progress
        self._last_event = 0

    def report(self, status, db_engine):
        if self._on_progress is None:
            return
        for event_id, step in actions.events_started_after(
                db_engine, status.action_id, self._last_event):
            self._last_event = event_id
            self._on_progress(step, states.RUNNING)

    def catch_up(self, status, db_engine):
        """Count every step started so far as reported."""
        started = actions.events_started_after(
            db_engine, status.action_id, self._last_event)
        if started:
            self._last_event = started[-1][0]


def _run_inline_unless_claimed(job_uuid, conf, on_progress):
    """Run the job here; False when another process holds its claim or
    the job is not on the board."""
    try:
        return runner.run_job_inline(job_uuid, conf, on_progress)
    except tf_exc.UnclaimableJob:
        return False


def list_jobs(conf=vmflow_conf.CONF):
    """The jobs on the board (unclaimed or claimed), then the operations
    the board lost (state LOST, until a runner posts them again), as
    dicts of :data:`JOB_FIELDS`."""
    persistence = engine_persistence.get_persistence(conf)
    with jobboard.opened(conf) as board:
        jobs = list(board.iterjobs())
        listed = [_board_job_dict(board, job) for job in jobs]
        board_jobs = locks.BoardJobs.of(jobs, outcome.job_info)
        namespace = board.namespace
    with api.session_scope(persistence.source_engine) as session:
        lost = recovery.find_lost(session, board_jobs, namespace)
        listed += [_lost_job_dict(row) for row in lost]
        names = servers.names_by_uuid(
            session, [record["instance_uuid"] for record in listed])
    with engine_persistence.persistence_connection(persistence) as conn:
        for record in listed:
            record["server"] = names.get(record["instance_uuid"])
            record.update(_progress_fields(_logbook_or_none(
                conn, record["uuid"])))
    return [{field: record.get(field) for field in JOB_FIELDS}
            for record in listed]


def _board_job_dict(board, job):
    info = outcome.job_info(job) or {}
    return dict(_claim_fields(board, job), uuid=job.uuid,
                created_on=job.created_on, action=info.get("action"),
                instance_uuid=info.get("instance_uuid"),
                request_id=info.get("request_id"))


def _lost_job_dict(row):
    return {"uuid": row.job_uuid, "state": LOST,
            "created_on": row.created_at, "action": row.action,
            "instance_uuid": row.instance_uuid,
            "request_id": row.request_id}


def _claim_fields(board, job):
    return {"state": job.state, "owner": board.find_owner(job),
            "claim_expires_at": board.claim_expires_at(job)}


def _logbook_or_none(conn, job_uuid):
    try:
        return conn.get_logbook(job_uuid)
    except tf_exc.NotFound:  # the posting died before saving it
        return None


def _progress_fields(book):
    """``progress`` (done/total) and ``failing`` (step: error) of the
    operation's flow."""
    flow_detail = next(iter(book), None) if book is not None else None
    if flow_detail is None:
        return {"progress": None, "failing": None}
    flow = progress.factory_flow(flow_detail)
    counted = progress.flow_progress(flow_detail, flow)
    return {"progress": str(counted),
            "failing": _failing_text(counted)}


def _failing_text(counted):
    """``step: first line of its error``, clipped; None when no step
    failed."""
    if counted.failing is None:
        return None
    error = (counted.error or "").strip().splitlines()
    text = f"{counted.failing}: {error[0]}" if error else counted.failing
    if len(text) > FAILING_LENGTH:
        text = text[:FAILING_LENGTH - 3] + "..."
    return text


def flow_steps(job_uuid, conf=vmflow_conf.CONF):
    """[(atom name, state)] of the operation's persisted flow (without
    TaskFlow's injector atom, which holds the store)."""
    persistence = engine_persistence.get_persistence(conf)
    with engine_persistence.persistence_connection(persistence) as conn:
        return _steps_of(_get_logbook(conn, job_uuid))


def _steps_of(book):
    steps = []
    for flow_detail in book:
        atoms = [(name, atom.state) for name, atom
                 in progress.atom_details(flow_detail).items()]
        steps.extend(atoms or _pending_steps(flow_detail))
    return steps


def _pending_steps(flow_detail):
    """The tasks of a flow no runner loaded yet, from its factory."""
    flow = progress.factory_flow(flow_detail)
    if flow is None:
        return []
    return [(task.name, states.PENDING) for task in flows.iter_tasks(flow)]


def describe_job(job_uuid, conf=vmflow_conf.CONF):
    """One operation as a dict: what ``vmflow job show`` prints (the
    fields of ``job list``, then its result and every step's state and
    duration)."""
    persistence = engine_persistence.get_persistence(conf)
    with engine_persistence.persistence_connection(persistence) as conn:
        book = _get_logbook(conn, job_uuid)
    db_engine = persistence.source_engine
    status = _status_of(book, db_engine)
    with jobboard.opened(conf) as board:
        job = board.find_job(job_uuid)
        if job is not None:
            claim = _claim_fields(board, job)
        else:
            claim = {"state": ENDED if status.finished else LOST}
    with api.session_scope(db_engine) as session:
        server = servers.names_by_uuid(
            session, [status.instance_uuid]).get(status.instance_uuid)
    record = dict(claim, uuid=job_uuid, action=status.action,
                  instance_uuid=status.instance_uuid, server=server,
                  created_on=book.created_at, request_id=status.request_id,
                  **_progress_fields(book))
    timings = actions.step_timings(db_engine, status.action_id)
    return dict({field: record.get(field) for field in JOB_FIELDS},
                result=status.result, message=status.message,
                running=", ".join(status.running_steps),
                steps="\n".join(_step_line(name, state, timings.get(name))
                                 for name, state in _steps_of(book)))


def _step_line(name, state, timing):
    """``name: STATE (1.25 s)``: how long the step's runs took, and how
    many there were when more than one (a poll, a resumed step)."""
    if timing is None:
        return f"{name}: {state}"
    runs, seconds = timing
    took = f"{seconds:.2f} s"
    if runs > 1:
        took = f"{runs} runs, {took}"
    return f"{name}: {state} ({took})"
