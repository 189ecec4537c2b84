"""Operations the job board lost, posted again from the project database.

The database is the source of truth of operations; the board is only
their queue. An operation is *lost* when its instance lock is held, its
instance action is unfinished, and no job on the board works on its
instance: the board restarted without its data (Redis without
persistence), its keys were deleted, or a posting process died between
saving the logbook and posting the job. Its logbook holds everything the
job held (the flow factory, the store, the ``vmflow`` details), so it is
posted again under its own uuid and a runner resumes it at its last saved
step. An operation without a logbook never started: it is ended (action
and instance in error, lock released).

Who posts a lost job again:

* the runner running it, as soon as its claim keep-alive finds it gone
  (:meth:`.listeners.ClaimKeepAlive.renew`), posted already claimed by
  that runner (the boards' ``post_claimed``);
* every runner's :class:`LostJobSweeper` (at start and at each heartbeat),
  once the job stayed lost for one claim expiry -- the runner running a
  job renews its claim three times a claim expiry and posts it again
  sooner, so a sweep does not take a job from under a live runner;
* ``--wait`` with no runner alive, by the same sweeper.

Posting again is idempotent: a board refuses a second job of one uuid, so
of several runners one wins.
"""
import json
import time

from taskflow import exceptions as tf_exc
from taskflow import logging as tf_logging
from taskflow import storage

from vmflow import exception
from vmflow.engine import actions, locks, outcome, posting
from vmflow.engine import persistence as engine_persistence
from vmflow.persistence import api, models

LOG = tf_logging.getLogger(__name__)


def find_lost(session, board_jobs, namespace, instance_uuid=None):
    """Lock rows (see :func:`.locks.lock_rows`) of the operations of the
    board ``namespace`` that are unfinished and have no job on it (an
    operation without a logbook counts for every namespace)."""
    return [row for row in locks.lock_rows(session, instance_uuid)
            if not locks.job_ended(row) and not board_jobs.work_on(row)
            and logbook_namespace(row) in (None, namespace)]


def logbook_namespace(row):
    """The board namespace an operation was posted on (None: unknown)."""
    meta = row.logbook_meta or {}
    if isinstance(meta, str):  # a text column (SQLite), not JSON
        meta = json.loads(meta) or {}
    return meta.get(posting.BOARD_META_KEY)


def repost_from_logbook(board, persistence, lock):
    """Post the lost operation of ``lock`` again from its logbook.

    Returns "posted", "listed" (another runner was first) or "ended" (no
    logbook: the posting died before saving it; the operation is ended).
    """
    try:
        with engine_persistence.persistence_connection(persistence) as conn:
            book = conn.get_logbook(lock.job_uuid)
    except tf_exc.NotFound:
        end_unposted(persistence.source_engine, lock)
        return "ended"
    flow_detail = next(iter(book))
    info = book.meta[outcome.META_KEY]
    details = posting.job_details(stored_store(flow_detail),
                                  flow_detail.uuid, info)
    try:
        board.post(posting.job_name(info), book=book, details=details,
                   uuid=lock.job_uuid)
    except tf_exc.JobFailure:
        if board.find_job(lock.job_uuid) is None:
            raise
        return "listed"
    LOG.warning("The job board lost job %s (%s of instance %s); posted it "
                "again from its logbook: it resumes at its last saved step",
                lock.job_uuid, info["action"], info["instance_uuid"])
    return "posted"


def stored_store(flow_detail):
    """The operation's store: saved at posting (``vmflow_store``), or, in
    a logbook posted before that, the one TaskFlow's injector atom saved
    when a runner first loaded the flow."""
    store = (flow_detail.meta or {}).get(posting.STORE_META_KEY)
    if store is not None:
        return store
    for atom in flow_detail:
        if atom.name == storage.Storage.injector_name:
            return atom.results
    raise exception.VmflowError(
        f"flow {flow_detail.uuid} has no saved store: its operation cannot "
        "be posted again")


def end_unposted(db_engine, lock):
    """End an operation whose posting died before its logbook was saved:
    nothing of it ran, so its instance action ends in error, its instance
    (still in its requested state) gets a fault, and the lock goes."""
    message = (f"job {lock.job_uuid} was never posted (the posting process "
               "died before saving it)")
    actions.finish_unfinished_action(db_engine, lock.instance_uuid,
                                     lock.request_id, actions.ERROR, message)
    outcome.mark_instance_error(db_engine, lock.instance_uuid, message)
    locks.release_instance_lock(lock.instance_uuid, lock.job_uuid,
                                engine=db_engine)
    LOG.warning("Ended operation %s on instance %s: %s", lock.request_id,
                lock.instance_uuid, message)


class LostJobSweeper:
    """Finds lost operations and posts them again once they stayed lost
    for ``patience`` seconds (this sweeper's own observation).

    A lock without a logbook is left for one claim expiry after its
    creation too (a posting may be under way), then ended.
    """

    def __init__(self, board, persistence, patience=None):
        self._board = board
        self._persistence = persistence
        self._patience = (board.claim_expiry if patience is None
                          else patience)
        self._lost_since = {}

    def sweep(self, instance_uuid=None):
        """One pass; returns ``{job uuid: outcome}`` of what it re-posted
        or ended (see :func:`repost_from_logbook`)."""
        board_jobs = locks.BoardJobs.read(self._board, outcome.job_info)
        with api.session_scope(self._persistence.source_engine) as session:
            lost = find_lost(session, board_jobs, self._board.namespace,
                             instance_uuid)
        now = time.monotonic()
        lost_uuids = {row.job_uuid for row in lost}
        for job_uuid in set(self._lost_since) - lost_uuids:
            del self._lost_since[job_uuid]
        done = {}
        for row in lost:
            since = self._lost_since.setdefault(row.job_uuid, now)
            if now - since < self._patience or not self._old_enough(row):
                continue
            done[row.job_uuid] = repost_from_logbook(
                self._board, self._persistence, row)
            del self._lost_since[row.job_uuid]
        return done

    def _old_enough(self, row):
        if row.logbook_uuid is not None:
            return True
        age = (models.utcnow() - row.created_at).total_seconds()
        return age > self._board.claim_expiry
