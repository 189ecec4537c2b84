"""Instance actions (one per operation) and their events (one per task run).

Written by the posting code (the action starts), the event listener (each
task's events) and the runner (the action finishes when its job ends).
"""
import datetime
import re
import typing

import sqlalchemy

from vmflow import exception
from vmflow.persistence import api, models

ACTIONS = models.InstanceAction.__table__
EVENTS = models.InstanceActionEvent.__table__

# InstanceAction.result
SUCCESS = "success"
ERROR = "error"
# InstanceActionEvent.result
EVENT_SUCCESS = "success"
EVENT_FAILURE = "failure"
EVENT_REVERTED = "reverted"
EVENT_REVERT_FAILURE = "revert_failure"
EVENT_INTERRUPTED = "interrupted"
MESSAGE_LENGTH = 4000
# How a TaskFlow failure's text (Failure.pformat) starts: the exception's
# class and message, before the traceback.
FAILURE_HEADER = re.compile(
    r"^Failure: (?:(?P<type>[\w.]+): )?(?P<message>.*)$")


def start_instance_action(session, instance_uuid, action, request_id):
    """Insert the action of an operation on ``instance_uuid``; its id."""
    project = session.scalar(
        sqlalchemy.select(models.Instance.project)
        .where(models.Instance.uuid == instance_uuid))
    if project is None:
        raise exception.NotFound(kind="instance", name=instance_uuid)
    result = session.execute(ACTIONS.insert().values(
        instance_uuid=instance_uuid, action=action, request_id=request_id,
        project=project, start_time=models.utcnow()))
    return result.inserted_primary_key[0]


@api.retry_on_deadlock
def finish_instance_action(engine, action_id, result, message=None):
    """Set finish time, result and message once; False if already set."""
    with api.writer_scope(engine) as session:
        return finish_instance_action_in(session, action_id, result,
                                         message)


def finish_instance_action_in(session, action_id, result, message=None):
    """:func:`finish_instance_action` in ``session``'s transaction."""
    updated = session.execute(
        ACTIONS.update()
        .where(ACTIONS.c.id == action_id, ACTIONS.c.finish_time.is_(None))
        .values(finish_time=models.utcnow(), result=result,
                message=_clip(message)))
    return updated.rowcount == 1


def finish_unfinished_action(engine, instance_uuid, request_id, result,
                             message):
    """Finish the action a stale lock left behind (by its request id)."""
    with api.writer_scope(engine) as session:
        session.execute(
            ACTIONS.update()
            .where(ACTIONS.c.instance_uuid == instance_uuid,
                   ACTIONS.c.request_id == request_id,
                   ACTIONS.c.finish_time.is_(None))
            .values(finish_time=models.utcnow(), result=result,
                    message=_clip(message)))


def get_action(engine, action_id):
    with api.session_scope(engine) as session:
        return session.execute(sqlalchemy.select(ACTIONS).where(
            ACTIONS.c.id == action_id)).first()


def _clip(text):
    if text is None or len(text) <= MESSAGE_LENGTH:
        return text
    return text[:MESSAGE_LENGTH - 3] + "..."


# -- events ------------------------------------------------------------------

class EventFinish(typing.NamedTuple):
    """The end of event ``event_id`` (``finish_time`` None: when it is
    written)."""
    event_id: int
    result: str
    traceback: str | None = None
    finish_time: datetime.datetime | None = None


# The statements of a step's event writes, built once: building an
# SQLAlchemy statement and its cache key each time costs more than SQLite
# takes to run it.
_INTERRUPT_OPEN_RUN = (
    EVENTS.update()
    .where(EVENTS.c.action_id == sqlalchemy.bindparam("action"),
           EVENTS.c.event == sqlalchemy.bindparam("task"),
           EVENTS.c.finish_time.is_(None))
    .values(finish_time=sqlalchemy.bindparam("now"),
            result=EVENT_INTERRUPTED))
_INSERT_EVENT = EVENTS.insert().values(
    action_id=sqlalchemy.bindparam("action"),
    event=sqlalchemy.bindparam("task"), host=sqlalchemy.bindparam("host"),
    start_time=sqlalchemy.bindparam("now"))
_FINISH_EVENT = (
    EVENTS.update().where(EVENTS.c.id == sqlalchemy.bindparam("event_id"))
    .values(finish_time=sqlalchemy.bindparam("finish_time"),
            result=sqlalchemy.bindparam("result"),
            traceback=sqlalchemy.bindparam("traceback")))


def _writer(engine):
    """A Core transaction that writes (see :func:`.api.writer_scope`)."""
    return api.writer_engine(engine).begin()


@api.retry_on_deadlock
def start_event(engine, action_id, event, host=None, finish=None):
    """Open the event of one run of task ``event``; return its id.

    A run of the same task still open is one a dead runner left: it is
    closed as ``interrupted`` (the task runs again now). ``finish``: an
    :class:`EventFinish` of another event, written in the same
    transaction.
    """
    with _writer(engine) as connection:
        if finish is not None:
            _write_finish(connection, finish)
        return _open_event(connection, action_id, event, host)


def _open_event(connection, action_id, event, host=None):
    # (Only each statement's own parameters: a key named like a column
    # would be written too.)
    run = {"action": action_id, "task": event, "now": models.utcnow()}
    connection.execute(_INTERRUPT_OPEN_RUN, run)
    return connection.execute(
        _INSERT_EVENT, dict(run, host=host)).inserted_primary_key[0]


@api.retry_on_deadlock
def finish_event(engine, finish):
    """Record :class:`EventFinish` ``finish``."""
    with _writer(engine) as connection:
        _write_finish(connection, finish)


def _write_finish(connection, finish):
    connection.execute(_FINISH_EVENT, {
        "event_id": finish.event_id, "result": finish.result,
        "traceback": finish.traceback,
        "finish_time": finish.finish_time or models.utcnow()})


@api.retry_on_deadlock
def close_open_event(engine, action_id, event, result, finish_time=None):
    """Close the open run(s) of task ``event`` with ``result``."""
    with _writer(engine) as connection:
        connection.execute(
            EVENTS.update()
            .where(EVENTS.c.action_id == action_id, EVENTS.c.event == event,
                   EVENTS.c.finish_time.is_(None))
            .values(finish_time=finish_time or models.utcnow(),
                    result=result))


def _latest_event(connection, action_id, event):
    return connection.execute(
        sqlalchemy.select(EVENTS)
        .where(EVENTS.c.action_id == action_id, EVENTS.c.event == event)
        .order_by(EVENTS.c.id.desc()).limit(1)).first()


@api.retry_on_deadlock
def mark_event_reverted(engine, action_id, event):
    """The task's last run was undone: ``reverted`` -- unless it had
    failed, then it keeps ``failure`` and its traceback (what the user
    needs to see). Returns False when the task never ran (no event)."""
    with _writer(engine) as connection:
        row = _latest_event(connection, action_id, event)
        if row is None:
            return False
        if row.result == EVENT_FAILURE:
            return True
        # The finish time stays the execute's: the event's span is how
        # long the step ran, also after it was undone.
        _write_finish(connection, EventFinish(
            row.id, EVENT_REVERTED, row.traceback, row.finish_time))
    return True


def mark_event_revert_failed(engine, action_id, event, traceback):
    """The task's revert failed: ``revert_failure`` plus the traceback."""
    with _writer(engine) as connection:
        row = _latest_event(connection, action_id, event)
        if row is None:
            row_id = _open_event(connection, action_id, event)
            previous = None
        else:
            row_id, previous = row.id, row.traceback
        text = traceback if not previous else f"{previous}\n{traceback}"
        _write_finish(connection, EventFinish(row_id, EVENT_REVERT_FAILURE,
                                              text))


def events_started_after(engine, action_id, after_id=0):
    """``[(event id, task name)]`` of the task runs of ``action_id`` that
    started after event ``after_id``, oldest first."""
    with api.session_scope(engine) as session:
        return session.execute(
            sqlalchemy.select(EVENTS.c.id, EVENTS.c.event)
            .where(EVENTS.c.action_id == action_id, EVENTS.c.id > after_id)
            .order_by(EVENTS.c.id)).all()


def open_events(engine, action_id):
    """Names of the tasks of ``action_id`` running now (oldest first)."""
    with api.session_scope(engine) as session:
        return list(session.scalars(
            sqlalchemy.select(EVENTS.c.event)
            .where(EVENTS.c.action_id == action_id,
                   EVENTS.c.finish_time.is_(None))
            .order_by(EVENTS.c.id)))


def step_timings(engine, action_id):
    """``{task name: (runs, seconds)}`` of the task runs of ``action_id``:
    how many times each task ran and how long in all (a run still going
    counts until now), as ``vmflow flow show`` counts."""
    with api.session_scope(engine) as session:
        rows = session.execute(
            sqlalchemy.select(EVENTS.c.event, EVENTS.c.start_time,
                              EVENTS.c.finish_time)
            .where(EVENTS.c.action_id == action_id)).all()
    return run_totals(rows)


def run_totals(events):
    """``{task name: (runs, seconds)}`` of event rows (with ``event``,
    ``start_time`` and ``finish_time``)."""
    now = models.utcnow()
    timings = {}
    for event in events:
        runs, seconds = timings.get(event.event, (0, 0.0))
        took = ((event.finish_time or now)
                - event.start_time).total_seconds()
        timings[event.event] = (runs + 1, seconds + max(0.0, took))
    return timings


def event_seconds(start_time, finish_time):
    """How long an event took, in seconds to 0.01; None while it runs."""
    if finish_time is None:
        return None
    return round((finish_time - start_time).total_seconds(), 2)


def event_error(traceback):
    """``ExceptionClass: first line of its message`` of the last failure
    an event's traceback text records (a revert failure's text follows
    the failure of the run it undid); None when it records none. Text
    not written by TaskFlow gives its last line (a Python traceback's
    exception)."""
    lines = [line for line in (traceback or "").splitlines()
             if line.strip()]
    headers = [match for match in map(FAILURE_HEADER.match, lines) if match]
    if not headers:
        return lines[-1].strip() if lines else None
    type_name, message = headers[-1].group("type", "message")
    if type_name is None:
        return message
    short_name = type_name.rsplit(".", 1)[-1]
    return f"{short_name}: {message}" if message else short_name
