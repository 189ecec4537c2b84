"""What the web view shows of jobs, read from the database and the board.

A job's uuid is its logbook's uuid and the logbook's ``meta["vmflow"]``
names its instance action (see :mod:`vmflow.engine.operations`), so the
recent jobs are the newest logbooks of vmflow operations, ended ones
included, with the state the board gives the jobs still on it
(:func:`vmflow.engine.operations.list_jobs`). Progress is
:func:`vmflow.engine.progress.flow_progress` of each job's flow detail, as
``--wait`` and ``vmflow job show`` count it.

Nothing here imports Flask: the pages (:mod:`.app`) only format these
records.
"""
import dataclasses
import datetime
import json

import sqlalchemy

from vmflow import conf as vmflow_conf
from vmflow import exception
from vmflow.engine import actions, jobboard, operations, outcome, recovery
from vmflow.engine import persistence as engine_persistence
from vmflow.engine import jobs_lookup, progress
from vmflow.persistence import api, models

RECENT_JOBS = 50
LOGBOOKS = jobs_lookup.LOGBOOKS
INSTANCES = models.Instance.__table__


@dataclasses.dataclass
class JobSummary:
    """One job as the jobs page lists it."""
    uuid: str
    action: str
    instance_uuid: str
    instance_name: str | None
    state: str  # the board's job state, ENDED or LOST
    result: str | None  # the instance action's: success, error, None
    progress: progress.FlowProgress | None
    started: datetime.datetime | None
    ended: datetime.datetime | None

    @property
    def finished(self):
        return self.ended is not None


@dataclasses.dataclass
class JobDetail(JobSummary):
    """One job as its own page shows it."""
    request_id: str = ""
    owner: str | None = None
    flow_state: str | None = None
    message: str | None = None
    store: dict = dataclasses.field(default_factory=dict)


def now():
    """The database's clock: naive UTC, as the action times are."""
    return models.utcnow()


def recent_jobs(conf=vmflow_conf.CONF, limit=RECENT_JOBS):
    """The :class:`JobSummary` of the ``limit`` newest operations, and of
    every job still on the board, newest first."""
    persistence = engine_persistence.get_persistence(conf)
    db_engine = persistence.source_engine
    infos = _newest_operations(db_engine, limit)
    board = {row["uuid"]: row["state"] for row in operations.list_jobs(conf)}
    infos.update(_operations_of(db_engine, set(board) - set(infos)))
    rows, names = _actions_and_names(db_engine, infos.values())
    flow_details = _flow_details(persistence, infos)
    factory_flows = _FactoryFlows()
    summaries = [
        _summary(uuid, info, board.get(uuid), rows.get(info["action_id"]),
                 names, flow_details.get(uuid), factory_flows)
        for uuid, info in infos.items()]
    return sorted(summaries, reverse=True,
                  key=lambda job: (job.started or datetime.datetime.min,
                                   job.uuid))


def _newest_operations(db_engine, limit):
    with api.session_scope(db_engine) as session:
        books = session.execute(
            sqlalchemy.select(LOGBOOKS.c.uuid, LOGBOOKS.c.meta)
            .order_by(LOGBOOKS.c.created_at.desc()).limit(limit)).all()
    return _vmflow_infos(books)


def _operations_of(db_engine, job_uuids):
    if not job_uuids:
        return {}
    with api.session_scope(db_engine) as session:
        books = session.execute(
            sqlalchemy.select(LOGBOOKS.c.uuid, LOGBOOKS.c.meta)
            .where(LOGBOOKS.c.uuid.in_(sorted(job_uuids)))).all()
    return _vmflow_infos(books)


def _vmflow_infos(books):
    """{job uuid: meta["vmflow"]} of the logbooks vmflow posted."""
    infos = {}
    for uuid, meta in books:
        info = jobs_lookup.logbook_meta(meta).get(outcome.META_KEY)
        if isinstance(info, dict) and "action_id" in info:
            infos[uuid] = info
    return infos


def _actions_and_names(db_engine, infos):
    """({action id: action row}, {instance uuid: name})."""
    infos = list(infos)
    action_ids = sorted({info["action_id"] for info in infos})
    instance_uuids = sorted({info["instance_uuid"] for info in infos})
    with api.session_scope(db_engine) as session:
        rows = session.execute(sqlalchemy.select(actions.ACTIONS).where(
            actions.ACTIONS.c.id.in_(action_ids))).all()
        names = dict(session.execute(
            sqlalchemy.select(INSTANCES.c.uuid, INSTANCES.c.name)
            .where(INSTANCES.c.uuid.in_(instance_uuids))).all())
    return {row.id: row for row in rows}, names


def _flow_details(persistence, job_uuids):
    """{job uuid: its flow detail} (one persistence connection)."""
    found = {}
    with engine_persistence.persistence_connection(persistence) as conn:
        for uuid in job_uuids:
            book = conn.get_logbook(uuid)
            flow_details = list(book)
            if flow_details:
                found[uuid] = flow_details[0]
    return found


class _FactoryFlows:
    """The factory flow of flow details, built once per factory and
    arguments: building flows is most of a listing's time otherwise."""

    def __init__(self):
        self._flows = {}

    def __call__(self, flow_detail):
        factory = (flow_detail.meta or {}).get("factory")
        if not factory:
            return None
        key = json.dumps(factory, sort_keys=True, default=repr)
        if key not in self._flows:
            self._flows[key] = progress.factory_flow(flow_detail)
        return self._flows[key]


def _summary(uuid, info, board_state, action_row, names, flow_detail,
             factory_flows=progress.factory_flow):
    ended = action_row.finish_time if action_row is not None else None
    return JobSummary(
        uuid=uuid, action=info["action"],
        instance_uuid=info["instance_uuid"],
        instance_name=names.get(info["instance_uuid"]),
        state=_state(board_state, ended is not None),
        result=action_row.result if action_row is not None else None,
        progress=(progress.flow_progress(flow_detail,
                                         factory_flows(flow_detail))
                  if flow_detail is not None else None),
        started=action_row.start_time if action_row is not None else None,
        ended=ended)


def _state(board_state, finished):
    """The board's job state; else ENDED, or LOST (unfinished, and not
    on the board: a runner posts it again)."""
    if board_state is not None:
        return board_state
    return operations.ENDED if finished else operations.LOST


def job_detail(job_uuid, conf=vmflow_conf.CONF):
    """The :class:`JobDetail` of ``job_uuid``; NotFound if no vmflow
    operation was posted as that job."""
    persistence = engine_persistence.get_persistence(conf)
    db_engine = persistence.source_engine
    infos = _operations_of(db_engine, {job_uuid})
    if job_uuid not in infos:
        raise exception.NotFound(kind="job", name=job_uuid)
    info = infos[job_uuid]
    board_state, owner = _board_state(job_uuid, conf)
    rows, names = _actions_and_names(db_engine, [info])
    action_row = rows.get(info["action_id"])
    with engine_persistence.persistence_connection(persistence) as conn:
        book = conn.get_logbook(job_uuid)
    flow_details = list(book)
    flow_detail = flow_details[0] if flow_details else None
    summary = _summary(job_uuid, info, board_state, action_row, names,
                       flow_detail)
    return JobDetail(
        **{field.name: getattr(summary, field.name)
           for field in dataclasses.fields(summary)},
        request_id=info.get("request_id", ""), owner=owner,
        flow_state=flow_detail.state if flow_detail is not None else None,
        message=action_row.message if action_row is not None else None,
        store=_store(flow_detail))


def _store(flow_detail):
    """The operation's store ({} when none was saved)."""
    if flow_detail is None:
        return {}
    try:
        return recovery.stored_store(flow_detail)
    except exception.VmflowError:
        return {}


def _board_state(job_uuid, conf):
    """(the job's state on the board, its owner); (None, None) when the
    job is not on the board."""
    with jobboard.opened(conf) as board:
        job = board.find_job(job_uuid)
        if job is None:
            return None, None
        return job.state, board.find_owner(job)
