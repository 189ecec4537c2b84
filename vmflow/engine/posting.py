"""Posting an operation: instance lock, instance action, logbook, job.

:func:`post_operation` is what the CLI (and the Python API) call. In order:

1. the instance's lock and its instance action are written in one
   transaction (a busy instance raises
   :class:`~vmflow.exception.InstanceBusy`; a stale lock is taken over);
2. a TaskFlow logbook whose uuid *is the job's uuid* is saved with one flow
   detail carrying the flow factory (saved by TaskFlow's
   ``save_factory_details``: a runner re-creates the flow with
   ``flow_from_detail`` to resume), ``meta["vmflow"]`` (action, action
   id, instance, request) and ``meta["vmflow_store"]`` (the store), so
   the job can be posted again from the database alone
   (:mod:`.recovery`) if the board loses it;
3. the job is posted with details ``{"store": ..., "flow_uuid": ...,
   "vmflow": ...}``.

If 2 or 3 fails, the lock is released and the action finished as ``error``.
A process that dies between 1 and 3 leaves a lock with no job on the
board: it counts as stale once ``[jobboard] claim_expiry_seconds`` old.
"""
import json
import uuid as uuidlib

from taskflow import engines
from taskflow.persistence import models as tf_models

from vmflow import conf as vmflow_conf
from vmflow import exception
from vmflow.engine import actions, jobboard, locks, outcome
from vmflow.engine import persistence as engine_persistence
from vmflow.flows import constants
from vmflow.persistence import api

META_KEY = outcome.META_KEY
STORE_META_KEY = "vmflow_store"
# The logbook's job board namespace: whose runners post it again if lost.
BOARD_META_KEY = "vmflow_board"
# A store must not carry credentials (it is persisted in the clear).
SECRET_WORDS = ("password", "secret", "token", "private_key", "passphrase")
release_instance_lock = locks.release_instance_lock


def new_request_id():
    return "req-" + str(uuidlib.uuid4())


def post_operation(action, instance_uuid, flow_factory, store,
                   request_id=None, *, conf=vmflow_conf.CONF, board=None,
                   persistence=None, check_instance=None):
    """Post ``action`` on ``instance_uuid`` as a job; return the job uuid.

    ``flow_factory``: a module-level function that takes no arguments and
    returns the unloaded flow (a runner re-imports it by its name).
    ``store``: JSON-serialisable dict; ``instance_uuid`` and ``request_id``
    are added under their :mod:`vmflow.flows.constants` keys. ``board`` and
    ``persistence`` default to the configured ones. ``check_instance(
    session)`` runs in the transaction that takes the instance's lock,
    before anything is written: what it raises refuses the operation with
    nothing changed, and what it checked cannot change before the flow
    runs (every operation takes the lock).
    """
    request_id = (request_id or (store or {}).get(constants.REQUEST_ID)
                  or new_request_id())
    store = checked_store(store, instance_uuid, request_id)
    flow_detail = _new_flow_detail(flow_factory)
    persistence = persistence or engine_persistence.get_persistence(conf)
    db_engine = persistence.source_engine
    job_uuid = str(uuidlib.uuid4())
    with jobboard.opened(conf, board, persistence) as board:
        action_id = locks.take_lock(
            db_engine, instance_uuid, action, job_uuid, request_id,
            is_stale=lambda lock: lock_is_stale(board, db_engine, lock),
            on_taken=lambda session: _start_action(
                session, instance_uuid, action, request_id, check_instance),
            on_stale=lambda lock: _finish_stale_action(db_engine, lock))
        info = {"action": action, "action_id": action_id,
                "instance_uuid": instance_uuid, "request_id": request_id}
        try:
            book = _save_logbook(persistence, job_uuid, flow_detail, info,
                                 store, board.namespace)
            board.post(job_name(info), book=book,
                       details=job_details(store, flow_detail.uuid, info),
                       uuid=job_uuid)
        except BaseException as error:
            _undo_posting(db_engine, instance_uuid, job_uuid, action_id,
                          error)
            raise
    return job_uuid


def _start_action(session, instance_uuid, action, request_id,
                  check_instance):
    if check_instance is not None:
        check_instance(session)
    return actions.start_instance_action(session, instance_uuid, action,
                                         request_id)


def job_name(info):
    return f"{info['action']}:{info['instance_uuid']}"


def job_details(store, flow_uuid, info):
    """The details of an operation's job (what runners read)."""
    return {"store": store, "flow_uuid": flow_uuid, META_KEY: info}


def checked_store(store, instance_uuid, request_id):
    """A copy of ``store`` with the instance and request ids, proven to be
    plain JSON without credential-like keys."""
    store = dict(store or {})
    for key, value in ((constants.INSTANCE_UUID, instance_uuid),
                       (constants.REQUEST_ID, request_id)):
        if store.setdefault(key, value) != value:
            raise exception.InvalidInput(
                reason=f"store[{key!r}] is {store[key]!r}, not {value!r}")
    _refuse_secrets(store)
    try:
        return json.loads(json.dumps(store))
    except (TypeError, ValueError) as error:
        raise exception.InvalidInput(
            reason=f"store is not JSON-serialisable: {error}") from error


def _refuse_secrets(value, path="store"):
    if isinstance(value, dict):
        for key, item in value.items():
            if any(word in str(key).lower() for word in SECRET_WORDS):
                raise exception.InvalidInput(
                    reason=f"{path}[{key!r}] looks like a credential; "
                           "stores are persisted in the clear")
            _refuse_secrets(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _refuse_secrets(item, f"{path}[{index}]")


def lock_is_stale(board, db_engine, lock):
    """True unless ``lock`` is live by :func:`.locks.lock_is_live`, the
    audit's rule too (grace: one claim expiry)."""
    board_jobs = locks.BoardJobs.read(board, outcome.job_info)
    with api.session_scope(db_engine) as session:
        live = locks.live_locks(session, board_jobs, board.claim_expiry,
                                lock.instance_uuid)
    held = live.get(lock.instance_uuid)
    return held is None or held.job_uuid != lock.job_uuid


def _finish_stale_action(db_engine, lock):
    actions.finish_unfinished_action(
        db_engine, lock.instance_uuid, lock.request_id, actions.ERROR,
        f"job {lock.job_uuid} ended (or was never posted) without "
        "releasing the instance lock; taken over as stale")


def _new_flow_detail(flow_factory):
    """A flow detail of the factory's flow, with the factory saved in it
    (refused before anything is written when a runner could not re-import
    it: a lambda, a nested function)."""
    flow = flow_factory()
    flow_detail = tf_models.FlowDetail(flow.name, str(uuidlib.uuid4()))
    try:
        engines.save_factory_details(flow_detail, flow_factory, (), {})
    except (ImportError, ValueError) as error:
        raise exception.InvalidInput(
            reason=f"flow factory {flow_factory!r} cannot be re-imported "
                   f"by name: {error}") from error
    return flow_detail


def _save_logbook(persistence, job_uuid, flow_detail, info, store,
                  namespace):
    book = tf_models.LogBook(job_name(info), uuid=job_uuid)
    book.meta = {META_KEY: info, BOARD_META_KEY: namespace}
    flow_detail.meta[META_KEY] = info
    flow_detail.meta[STORE_META_KEY] = store
    book.add(flow_detail)
    with engine_persistence.persistence_connection(persistence) as conn:
        conn.save_logbook(book)
    return book


def _undo_posting(db_engine, instance_uuid, job_uuid, action_id, error):
    locks.release_instance_lock(instance_uuid, job_uuid, engine=db_engine)
    actions.finish_instance_action(
        db_engine, action_id, actions.ERROR,
        f"posting the job failed: {type(error).__name__}: {error}")
