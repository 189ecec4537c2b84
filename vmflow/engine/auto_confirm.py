"""Confirming resized servers by themselves after ``[DEFAULT]
resize_confirm_window`` seconds (a runner service; 0 = off), as Nova's
``_poll_unconfirmed_resizes`` does.

Every period (the window, at most :data:`MAX_PERIOD_SECONDS`) the service
looks for RESIZED servers with no task_state whose migration has been
``finished`` for at least the window, and posts each one's confirm
exactly as ``vmflow server resize confirm`` does
(:func:`vmflow.compute.confirm_resize`): the door's checks and the
instance's lock apply, and the job is run by whichever runner claims it. A
server another operation holds (or that changed meanwhile) is skipped and
looked at again next period. Every runner runs the service; the lock
makes one confirm of a server at most.
"""
import dataclasses
import datetime
import logging
import threading

import sqlalchemy
from sqlalchemy import exc as sa_exc
from taskflow import exceptions as tf_exc

from vmflow import compute, exception, instances, migrations
from vmflow.engine import outage
from vmflow.persistence import api, models

LOG = logging.getLogger(__name__)

MAX_PERIOD_SECONDS = 60.0
# What a server that may not be confirmed now raises at the door.
NOT_NOW = (exception.InstanceBusy, exception.InstanceInvalidState,
           exception.NotFound, exception.InvalidInput)
# What a round that cannot read the database or the board raises.
ROUND_FAILURES = (exception.VmflowError, sa_exc.SQLAlchemyError,
                  tf_exc.TaskFlowException)


@dataclasses.dataclass
class Round:
    """What one round did: ``confirmed`` ``{instance uuid: confirm job
    uuid}``; ``skipped``: instances due that may not be confirmed now."""
    confirmed: dict = dataclasses.field(default_factory=dict)
    skipped: list = dataclasses.field(default_factory=list)


def find_due(session, window_seconds, now=None):
    """``[(instance uuid, name, migration uuid, seconds finished)]`` of the
    RESIZED servers (no task_state) whose migration has been finished for
    ``window_seconds`` or more, longest first."""
    now = now or models.utcnow()
    since = now - datetime.timedelta(seconds=window_seconds)
    migration, instance = models.Migration, models.Instance
    finished_at = sqlalchemy.func.coalesce(migration.updated_at,
                                           migration.created_at)
    rows = session.execute(
        sqlalchemy.select(instance.uuid, instance.name, migration.uuid,
                          finished_at)
        .join(migration, migration.instance_uuid == instance.uuid)
        .where(instance.vm_state == instances.RESIZED,
               instance.task_state.is_(None),
               migration.status == migrations.FINISHED,
               finished_at <= since)
        .order_by(finished_at, migration.id))
    return [(instance_uuid, name, migration_uuid,
             (now - at).total_seconds())
            for instance_uuid, name, migration_uuid, at in rows]


def confirm_due(conf, who, db_engine=None):
    """One round: post the confirm of every server due (none while the
    window is 0); a :class:`Round`."""
    done = Round()
    window = conf.resize_confirm_window
    if not window:
        return done
    with api.session_scope(db_engine or api.get_engine(conf)) as session:
        due = find_due(session, window)
    for instance_uuid, name, migration_uuid, seconds in due:
        try:
            request = compute.confirm_resize(instance_uuid, conf=conf)
        except NOT_NOW as error:
            LOG.debug("Auto-confirm: server %s (%s) skipped until the next "
                      "period: %s", name, instance_uuid, error)
            done.skipped.append(instance_uuid)
            continue
        LOG.info("Runner %s posted the confirm of resized server %s (%s), "
                 "job %s: its migration %s finished %.0f s ago and "
                 "[DEFAULT] resize_confirm_window is %d s", who, name,
                 instance_uuid, request.job_uuid, migration_uuid, seconds,
                 window)
        done.confirmed[instance_uuid] = request.job_uuid
    return done


class AutoConfirmService:
    """The runner service (:mod:`.services`): a thread running
    :func:`confirm_due` every period while ``[DEFAULT]
    resize_confirm_window`` is not 0; nothing at all when it is."""

    def __init__(self, conf, who):
        self._conf = conf
        self._who = who
        self._stopped = threading.Event()
        self._thread = None
        self._outage = outage.OutageLog(LOG, "Auto-confirm of resizes",
                                        max_delay=MAX_PERIOD_SECONDS)

    def __repr__(self):
        return f"AutoConfirmService({self._who!r})"

    @property
    def period(self):
        return min(float(self._conf.resize_confirm_window),
                   MAX_PERIOD_SECONDS)

    def start(self):
        if not self._conf.resize_confirm_window:
            return
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="auto-confirm")
        self._thread.start()

    def stop(self):
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self):
        while not self._stopped.wait(self.period):
            try:
                self.run_once()
            except Exception:  # a bug must not end the service for good
                LOG.exception("Auto-confirm of resizes: the round failed")

    def run_once(self):
        """One round; its :class:`Round` (None when it could not run)."""
        try:
            done = confirm_due(self._conf, self._who)
        except ROUND_FAILURES as error:
            self._outage.failed(error)
            return None
        self._outage.succeeded()
        return done
