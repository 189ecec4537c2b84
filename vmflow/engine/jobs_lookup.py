"""Finding an operation's job and reading it back from the database.

A job's uuid is its logbook's uuid, and the logbook is named
``<action>:<instance uuid>`` (:func:`.posting.job_name`), so a server's
jobs are found from the database alone, after they left the board too.
"""
import dataclasses
import json

import sqlalchemy
from taskflow import exceptions as tf_exc

from vmflow import conf as vmflow_conf
from vmflow import exception
from vmflow.engine import actions, outcome, posting
from vmflow.engine import persistence as engine_persistence
from vmflow.inventory import servers
from vmflow.persistence import api

LOGBOOKS = sqlalchemy.table("logbooks", sqlalchemy.column("uuid"),
                            sqlalchemy.column("name"),
                            sqlalchemy.column("meta"),
                            sqlalchemy.column("created_at"))


@dataclasses.dataclass
class JobRecord:
    job_uuid: str
    info: dict  # the logbook's meta["vmflow"]: action, action_id, ...
    flow_detail: object
    action: object  # the instance action row (None if it is gone)
    events: list
    server_label: str


def load_job_record(job_uuid, conf=vmflow_conf.CONF):
    """The :class:`JobRecord` of ``job_uuid``; NotFound if no vmflow
    operation was posted as that job."""
    persistence = engine_persistence.get_persistence(conf)
    with engine_persistence.persistence_connection(persistence) as conn:
        try:
            book = conn.get_logbook(job_uuid)
        except tf_exc.NotFound:
            raise exception.NotFound(kind="job", name=job_uuid) from None
    info = (book.meta or {}).get(outcome.META_KEY)
    flow_details = list(book)
    if info is None or not flow_details:
        raise exception.NotFound(kind="vmflow operation", name=job_uuid)
    db_engine = persistence.source_engine
    with api.session_scope(db_engine) as session:
        label = _server_label(session, info["instance_uuid"])
        events = session.execute(
            sqlalchemy.select(actions.EVENTS)
            .where(actions.EVENTS.c.action_id == info["action_id"])
            .order_by(actions.EVENTS.c.id)).all()
    return JobRecord(job_uuid, info, flow_details[0],
                     actions.get_action(db_engine, info["action_id"]),
                     events, label)


def _server_label(session, instance_uuid):
    names = servers.names_by_uuid(session, [instance_uuid])
    return names.get(instance_uuid) or instance_uuid


def find_server_job(name_or_uuid, request_id=None, project=None,
                    conf=vmflow_conf.CONF):
    """The job uuid of a server's latest operation, or of the one with
    ``request_id``; NotFound naming what was asked for."""
    with api.session_scope(api.get_engine(conf)) as session:
        instance = servers.find_instance(session, name_or_uuid, project,
                                         include_deleted=True)[0]
        query = (sqlalchemy.select(actions.ACTIONS)
                 .where(actions.ACTIONS.c.instance_uuid == instance.uuid)
                 .order_by(actions.ACTIONS.c.id.desc()))
        if request_id is not None:
            query = query.where(actions.ACTIONS.c.request_id == request_id)
        for action in session.execute(query):
            job_uuid = _job_of_action(session, instance.uuid, action)
            if job_uuid is not None:
                return job_uuid
    if request_id is not None:
        raise exception.NotFound(
            kind=f"action of server {name_or_uuid!r} with request id",
            name=request_id)
    raise exception.NotFound(kind="job of server", name=name_or_uuid)


def _job_of_action(session, instance_uuid, action):
    name = posting.job_name({"action": action.action,
                             "instance_uuid": instance_uuid})
    for uuid, meta in session.execute(
            sqlalchemy.select(LOGBOOKS.c.uuid, LOGBOOKS.c.meta)
            .where(LOGBOOKS.c.name == name)):
        info = logbook_meta(meta).get(outcome.META_KEY) or {}
        if info.get("action_id") == action.id:
            return uuid
    return None


def logbook_meta(meta):
    """A logbook row's ``meta`` column as a dict ({} when unreadable)."""
    if isinstance(meta, dict):
        return meta
    try:
        value = json.loads(meta) if meta else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
