"""At runner start, instances a vanished job left in a task_state are
reconciled, never left stuck (as Nova's ``init_host`` does before its
compute service takes requests).

Only *stranded* instances are touched: those whose operation can never go
on (:func:`operation_may_go_on`; what can go on is :mod:`.recovery`'s).
The hypervisor, the only witness of how far the operation got, decides
what they become (:func:`verdict`). Each write is a compare-and-swap on the
task_state read, after checking that no new operation took the lock; the
dead job's open actions are finished (``error``: the job did not run to
its end) before it and its lock released after, so a runner dying in
between leaves the instance stranded for the next start.

A host that does not answer is logged once and its instances left for the
next runner start, not put in ERROR: without the hypervisor nothing tells
whether their operations finished, a host outage is usually short, and
ERROR on every busy server of a rebooting host helps nobody (``vmflow
audit`` reports them meanwhile).

With ``[DEFAULT] resume_guests_state_on_host_boot``, servers that should
run whose domain is shut off are started again (:func:`resume_guest`).
"""
import dataclasses
import datetime
import logging

import sqlalchemy
from sqlalchemy import exc as sa_exc
from taskflow import exceptions as tf_exc

from vmflow import exception, instances, power_states, server_actions
from vmflow import drivers
from vmflow.engine import actions, jobboard, locks, outcome
from vmflow.inventory import hosts
from vmflow.persistence import api, models

LOG = logging.getLogger(__name__)

CLEARED = "cleared"
ERRORED = "error"
LEFT = "left"
STARTED = "started"
NO_DOMAIN = "no domain"
# task_states whose end the hypervisor cannot show, and why they fail.
NOT_OBSERVED = {instances.SCHEDULING: "the build did not finish",
                instances.DELETING: "run the delete again"}
# What a round that cannot read the database or the board raises.
ROUND_FAILURES = (exception.VmflowError, sa_exc.SQLAlchemyError,
                  tf_exc.TaskFlowException)


@dataclasses.dataclass(frozen=True)
class Stranded:
    """A stranded instance (an :data:`.instances.COLUMNS` dict), the lock
    its dead job left (a :func:`.locks.lock_rows` row, or None) and the
    request ids of its unfinished instance actions."""
    instance: dict
    lock: object
    request_ids: tuple


@dataclasses.dataclass(frozen=True)
class Verdict:
    """``values``: columns to write (the operation finished), else
    ``fault``: why the instance goes to ERROR."""
    values: dict = None
    fault: str = None

    @property
    def outcome(self):
        return CLEARED if self.fault is None else ERRORED

    def describe(self, task_state):
        """One line for the log and the dead job's instance action."""
        if self.fault is not None:
            return f"ERROR: {self.fault}"
        return (f"{left_by_dead_job(task_state)}; the hypervisor shows it "
                f"finished: vm_state {self.values['vm_state']}, "
                f"power_state {self.values['power_state']}, task_state "
                "cleared")


def left_by_dead_job(task_state):
    return (f"task_state {task_state} was left by a job that no longer "
            "exists")


def verdict(instance, observed):
    """What the stranded ``instance`` becomes when its domain shows the
    power state ``observed`` (:data:`NO_DOMAIN`, or None: not asked).

    A power operation or reboot (:data:`.server_actions.BY_TASK_STATE`)
    whose domain shows the power state it ends in finished: its vm_state
    and power_state, task_state cleared. Otherwise, and for a build, a
    delete or a task_state without a rule: ERROR with a fault (a delete or
    a hard reboot can be run from there)."""
    task_state = instance["task_state"]
    action = server_actions.BY_TASK_STATE.get(task_state)
    unobserved = _why_not_observed(instance, action)
    if unobserved:
        return Verdict(fault=f"{left_by_dead_job(task_state)}: {unobserved}")
    if observed == action.power_state:
        return Verdict(values={"vm_state": action.vm_state,
                               "power_state": observed, "task_state": None})
    shown = ("no domain" if observed == NO_DOMAIN
             else f"the domain {observed}")
    return Verdict(fault=f"{left_by_dead_job(task_state)}; the hypervisor "
                         f"shows {shown}, not {action.power_state}")


def _why_not_observed(instance, action):
    """Why the hypervisor cannot tell how the operation ended (None: it
    can)."""
    if instance["task_state"] in NOT_OBSERVED:
        return NOT_OBSERVED[instance["task_state"]]
    if action is None:
        return "no rule tells how it ends"
    if instance["host"] is None:
        return "the instance is on no host"
    return None


def operation_may_go_on(instance, lock, board_jobs, now, grace):
    """True while the instance's operation may still go on: a board job
    works on it, or its lock's job has not ended (:mod:`.recovery` posts
    it again from its logbook, or ends it if it has none), or it is a
    build record younger than ``grace`` (written before its lock)."""
    if instance["uuid"] in board_jobs.instance_uuids:
        return True
    if lock is not None:
        return board_jobs.work_on(lock) or not locks.job_ended(lock)
    return (instance["task_state"] == instances.SCHEDULING
            and now - instance["created_at"] <= grace)


def _instances_with(session, *conditions):
    columns = [models.Instance.__table__.c[name]
               for name in (*instances.COLUMNS, "created_at")]
    return [row._asdict() for row in session.execute(
        sqlalchemy.select(*columns).where(
            models.Instance.vm_state != instances.DELETED, *conditions)
        .order_by(models.Instance.id))]


def _open_request_ids(session, instance_uuid):
    return tuple(session.scalars(
        sqlalchemy.select(actions.ACTIONS.c.request_id).where(
            actions.ACTIONS.c.instance_uuid == instance_uuid,
            actions.ACTIONS.c.finish_time.is_(None))))


def find_stranded(session, board_jobs, grace_seconds):
    """The :class:`Stranded` instances, oldest first."""
    lock_by_instance = {row.instance_uuid: row
                        for row in locks.lock_rows(session)}
    now = models.utcnow()
    grace = datetime.timedelta(seconds=grace_seconds)
    return [Stranded(instance, lock_by_instance.get(instance["uuid"]),
                     _open_request_ids(session, instance["uuid"]))
            for instance in _instances_with(
                session, models.Instance.task_state.is_not(None))
            if not operation_may_go_on(
                instance, lock_by_instance.get(instance["uuid"]),
                board_jobs, now, grace)]


def find_guests_to_resume(session):
    """Instances that should run and no operation holds (no lock at all:
    a stale one is left for the next start rather than judged here)."""
    locked = set(session.scalars(
        sqlalchemy.select(locks.LOCKS.c.instance_uuid)))
    return [instance for instance in _instances_with(
                session, models.Instance.vm_state == instances.ACTIVE,
                models.Instance.power_state == power_states.RUNNING,
                models.Instance.task_state.is_(None),
                models.Instance.host.is_not(None))
            if instance["uuid"] not in locked]


class HostDrivers:
    """The hosts' drivers. A host that does not answer is logged once and
    not asked again in this round."""

    def __init__(self, db_engine, conf):
        self._db_engine = db_engine
        self._conf = conf
        self._drivers = {}
        self.down = set()

    def ask(self, host_name, question):
        """``question(driver)``, or None when the host does not answer."""
        if host_name in self.down:
            return None
        try:
            if host_name not in self._drivers:
                with api.session_scope(self._db_engine) as session:
                    host = hosts.show_host(session, host_name)
                self._drivers[host_name] = drivers.get_driver(host,
                                                              self._conf)
            return question(self._drivers[host_name])
        except (exception.HypervisorUnavailable, exception.NotFound) as error:
            self.down.add(host_name)
            LOG.warning("Reconcile: host %s does not answer (%s): its "
                        "instances are left for the next runner start",
                        host_name, error)
            return None


def power_state_of(instance_uuid):
    """A :meth:`HostDrivers.ask` question: the domain's power state, or
    :data:`NO_DOMAIN`."""
    def question(driver):
        try:
            return driver.get_power_state(instance_uuid)
        except exception.DomainNotFound:
            return NO_DOMAIN
    return question


def reconcile_stranded(db_engine, item, host_drivers):
    """Reconcile one :class:`Stranded`; returns its outcome."""
    instance = item.instance
    observed = None
    action = server_actions.BY_TASK_STATE.get(instance["task_state"])
    if _why_not_observed(instance, action) is None:
        observed = host_drivers.ask(instance["host"],
                                    power_state_of(instance["uuid"]))
        if observed is None:
            return LEFT  # the host does not answer (logged once)
    decision = verdict(instance, observed)
    summary = decision.describe(instance["task_state"])
    for request_id in item.request_ids:
        actions.finish_unfinished_action(
            db_engine, instance["uuid"], request_id, actions.ERROR,
            f"reconciled at runner start: {summary}")
    if not _write_verdict(db_engine, item, decision):
        return LEFT
    if item.lock is not None:
        locks.release_instance_lock(instance["uuid"], item.lock.job_uuid,
                                    engine=db_engine)
    LOG.warning("Reconciled instance %s (%s, %s): %s", instance["uuid"],
                instance["name"], instance["vm_state"], summary)
    return decision.outcome


def _write_verdict(db_engine, item, decision):
    """Write ``decision`` unless a new operation took the instance since it
    was found stranded; True if written."""
    uuid, task_state = item.instance["uuid"], item.instance["task_state"]
    try:
        with api.writer_scope(db_engine) as session:
            if _taken_meanwhile(session, item):
                return False
            if decision.fault is None:
                instances.update_instance(session, uuid, (task_state,),
                                          **decision.values)
            else:
                instances.mark_error(session, uuid, (task_state,),
                                     decision.fault)
    except exception.UnexpectedTaskState as error:
        LOG.info("Reconcile: instance %s changed meanwhile, left: %s",
                 uuid, error)
        return False
    return True


def _taken_meanwhile(session, item):
    """True when a lock other than the dead job's holds the instance now."""
    dead_job = item.lock.job_uuid if item.lock is not None else None
    return any(row.job_uuid != dead_job for row in locks.lock_rows(
        session, item.instance["uuid"]))


def resume_guest(db_engine, instance, host_drivers):
    """Start the domain of a server that should run (active, power_state
    running, no task_state, no lock) if it is shut off, and write its
    power state; :data:`STARTED`, :data:`LEFT` (host down) or None."""
    observe = power_state_of(instance["uuid"])
    observed = host_drivers.ask(instance["host"], observe)
    if observed != power_states.SHUTDOWN:
        return LEFT if observed is None else None
    now = host_drivers.ask(instance["host"], lambda driver: (
        driver.start(instance["uuid"]), observe(driver))[1])
    if now is None:
        return LEFT
    with api.writer_scope(db_engine) as session:
        instances.update_instance(session, instance["uuid"], (None,),
                                  power_state=now)
    LOG.warning("Reconcile: started instance %s (%s) again: it should run "
                "but its domain was shut off; power_state %s",
                instance["uuid"], instance["name"], now)
    return STARTED


def reconcile(conf, db_engine=None, board=None):
    """One round; ``{instance uuid: outcome}`` of every instance acted on
    or left (:data:`CLEARED`, :data:`ERRORED`, :data:`STARTED`,
    :data:`LEFT`)."""
    db_engine = db_engine or api.get_engine(conf)
    with jobboard.opened(conf, board) as opened:
        board_jobs = locks.BoardJobs.read(opened, outcome.job_info)
        grace = opened.claim_expiry
    with api.session_scope(db_engine) as session:
        work = [(item.instance, reconcile_stranded, item) for item in
                find_stranded(session, board_jobs, grace)]
        if conf.resume_guests_state_on_host_boot:
            work += [(instance, resume_guest, instance)
                     for instance in find_guests_to_resume(session)]
    host_drivers = HostDrivers(db_engine, conf)
    done = {}
    for instance, function, subject in work:
        try:
            result = function(db_engine, subject, host_drivers)
        except exception.VmflowError as error:  # this one only
            LOG.error("Reconcile: instance %s (%s) left: %s",
                      instance["uuid"], instance["name"], error)
            result = LEFT
        if result is not None:
            done[instance["uuid"]] = result
    return done


class ReconcileService:
    """The runner service (:mod:`.services`) whose ``start()`` runs one
    :func:`reconcile` round before the runner claims its first job. A
    round that fails (database or board down) is logged and the runner
    goes on: the next start tries again."""

    def __init__(self, conf, who):
        self._conf = conf
        self._who = who
        self.outcomes = None

    def start(self):
        try:
            self.outcomes = reconcile(self._conf)
        except ROUND_FAILURES as error:
            LOG.error("Runner %s could not reconcile stuck instances: %s",
                      self._who, jobboard.first_line(error))
            return
        LOG.info("Runner %s reconciled %d instance(s) at start, left %d",
                 self._who, sum(value != LEFT for value in
                                self.outcomes.values()),
                 sum(value == LEFT for value in self.outcomes.values()))

    def stop(self):
        """Nothing runs after start()."""
