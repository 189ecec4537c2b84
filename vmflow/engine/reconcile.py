"""At runner start: instances a vanished job left in a task_state are
reconciled, never left stuck (what Nova's ``init_host`` does for the
instances of its host before it takes requests).

*Stranded*: an instance with a task_state whose operation can never go on.
An operation that can go on is left alone, whatever its age: a job on the
board works on the instance, or its lock's job has not ended -- then
:mod:`.recovery` posts the job again from its logbook, or ends the
operation if it has none (the lock rule of :func:`.locks.lock_is_live`
less its grace, which is recovery's to apply). A build's instance record
is written before its lock is taken, so one still ``scheduling`` on no
lock is left alone for one claim expiry after its creation too.

What a stranded instance becomes is decided by the hypervisor, the only
witness of how far the operation got (:func:`verdict`):

* a power operation or reboot (:data:`.server_actions.BY_TASK_STATE`)
  whose domain shows the power state the operation ends in finished: the
  operation's vm_state and power_state are written and task_state cleared;
  otherwise the instance goes to ERROR with a fault saying which
  task_state a job that no longer exists left and what the hypervisor
  shows (a hard reboot or a delete can be run from ERROR);
* a build (``scheduling``), a delete (``deleting``) and any task_state
  without a rule go to ERROR with a fault, without asking the hypervisor
  (a delete can be run again; a failed build is deleted like any other).

Every write is a compare-and-swap on the task_state read, in a transaction
that first checks that no new operation took the instance's lock
meanwhile. The dead job's unfinished instance actions are finished as
``error`` first (the job did not run to its end, even when its effect
happened), then the instance is written, then the dead job's lock is
released: a runner dying in between leaves an instance still stranded,
reconciled at the next start.

A host that does not answer is left with one log line: its instances keep
their task_state until a runner starts while the host answers. An
operator wants that rather than ERROR: without the hypervisor nothing
tells whether the operation finished, a host outage is usually short, and
putting every busy server of a rebooting host in ERROR would make work for
nobody's benefit (``vmflow audit`` keeps reporting them meanwhile).

With ``[DEFAULT] resume_guests_state_on_host_boot``, servers that should
run (vm_state active, power_state running, no task_state, no live lock)
whose domain is shut off are started again and their power state written.
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
# task_states reconciled without asking the hypervisor: the operation
# cannot be finished from what the hypervisor shows.
NOT_OBSERVED = (instances.SCHEDULING, instances.DELETING)
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

    @property
    def summary(self):
        if self.fault is not None:
            return self.fault
        return ", ".join(f"{key} {value}"
                         for key, value in self.values.items())


def left_by_dead_job(task_state):
    return (f"task_state {task_state} was left by a job that no longer "
            "exists")


def verdict(instance, observed):
    """What the stranded ``instance`` becomes when its domain shows the
    power state ``observed`` (:data:`NO_DOMAIN`, or None: not asked)."""
    task_state = instance["task_state"]
    action = server_actions.BY_TASK_STATE.get(task_state)
    if task_state == instances.SCHEDULING:
        return Verdict(fault=left_by_dead_job(task_state)
                       + ": the build did not finish")
    if task_state == instances.DELETING:
        return Verdict(fault=left_by_dead_job(task_state)
                       + ": run the delete again")
    if action is None:
        return Verdict(fault=left_by_dead_job(task_state)
                       + ": no rule tells how it ends")
    if instance["host"] is None:
        return Verdict(fault=left_by_dead_job(task_state)
                       + " on an instance placed on no host")
    if observed == action.power_state:
        return Verdict(values={"vm_state": action.vm_state,
                               "power_state": observed, "task_state": None})
    shown = ("no domain" if observed == NO_DOMAIN
             else f"the domain {observed}")
    return Verdict(fault=f"{left_by_dead_job(task_state)}; the hypervisor "
                         f"shows {shown}, not {action.power_state}")


def operation_may_go_on(instance, lock, board_jobs, now, grace):
    """True unless the instance's operation can never resume (see the
    module doc): a board job works on it, its lock's job has not ended, or
    it is a young build record (its lock may not be taken yet)."""
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
    """The drivers of the hosts, each host asked until it fails once: a
    host that does not answer is logged once and skipped after."""

    def __init__(self, db_engine, conf):
        self._db_engine = db_engine
        self._conf = conf
        self._drivers = {}
        self.down = {}  # host name: why

    def power_state(self, host_name, instance_uuid):
        """The domain's power state, :data:`NO_DOMAIN`, or None when the
        host does not answer."""
        return self._ask(host_name, lambda driver: _observe(
            driver, instance_uuid))

    def start(self, host_name, instance_uuid):
        """Start the domain; its power state then (None: host down)."""
        return self._ask(host_name, lambda driver: (
            driver.start(instance_uuid), _observe(driver, instance_uuid))[1])

    def _ask(self, host_name, question):
        if host_name in self.down:
            return None
        try:
            return question(self._driver(host_name))
        except (exception.HypervisorUnavailable, exception.NotFound) as error:
            self.down[host_name] = error
            LOG.warning("Reconcile: host %s does not answer (%s): its "
                        "instances are left for the next runner start",
                        host_name, error)
            return None

    def _driver(self, host_name):
        if host_name not in self._drivers:
            with api.session_scope(self._db_engine) as session:
                host = hosts.show_host(session, host_name)
            self._drivers[host_name] = drivers.get_driver(host, self._conf)
        return self._drivers[host_name]


def _observe(driver, instance_uuid):
    try:
        return driver.get_power_state(instance_uuid)
    except exception.DomainNotFound:
        return NO_DOMAIN


def reconcile_stranded(db_engine, item, host_drivers):
    """Reconcile one :class:`Stranded`; returns its outcome."""
    instance = item.instance
    observed = None
    if instance["task_state"] not in NOT_OBSERVED and instance["host"]:
        observed = host_drivers.power_state(instance["host"],
                                            instance["uuid"])
        if observed is None:
            return LEFT  # the host does not answer (logged once)
    decision = verdict(instance, observed)
    for request_id in item.request_ids:
        actions.finish_unfinished_action(
            db_engine, instance["uuid"], request_id, actions.ERROR,
            f"{left_by_dead_job(instance['task_state'])}; reconciled at "
            f"runner start: {decision.summary}")
    if not _write_verdict(db_engine, item, decision):
        return LEFT
    if item.lock is not None:
        locks.release_instance_lock(instance["uuid"], item.lock.job_uuid,
                                    engine=db_engine)
    LOG.warning("Reconciled instance %s (%s, %s, task_state %s, left by a "
                "job that no longer exists): %s", instance["uuid"],
                instance["name"], instance["vm_state"],
                instance["task_state"], decision.summary)
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
    """Start the shut-off domain of a server that should run; returns
    :data:`STARTED` or :data:`LEFT`."""
    observed = host_drivers.power_state(instance["host"], instance["uuid"])
    if observed != power_states.SHUTDOWN:
        return LEFT
    now = host_drivers.start(instance["host"], instance["uuid"])
    if now is None:
        return LEFT
    try:
        with api.writer_scope(db_engine) as session:
            instances.update_instance(session, instance["uuid"], (None,),
                                      power_state=now)
    except exception.UnexpectedTaskState as error:
        LOG.info("Reconcile: instance %s changed meanwhile: %s",
                 instance["uuid"], error)
    LOG.warning("Reconcile: started instance %s (%s) again: it should run "
                "but its domain was shut off; power_state %s",
                instance["uuid"], instance["name"], now)
    return STARTED


def reconcile(conf, db_engine=None, board=None):
    """One round; returns ``{instance uuid: outcome}`` of every instance
    acted on or left (:data:`CLEARED`, :data:`ERRORED`, :data:`LEFT`,
    :data:`STARTED`)."""
    db_engine = db_engine or api.get_engine(conf)
    with jobboard.opened(conf, board) as opened:
        board_jobs = locks.BoardJobs.read(opened, outcome.job_info)
        grace = opened.claim_expiry
    with api.session_scope(db_engine) as session:
        stranded = find_stranded(session, board_jobs, grace)
    host_drivers = HostDrivers(db_engine, conf)
    done = {}
    for item in stranded:
        done[item.instance["uuid"]] = _guarded(
            item.instance,
            lambda item=item: reconcile_stranded(db_engine, item,
                                                 host_drivers))
    if conf.resume_guests_state_on_host_boot:
        with api.session_scope(db_engine) as session:
            guests = find_guests_to_resume(session)
        for instance in guests:
            done[instance["uuid"]] = _guarded(
                instance,
                lambda instance=instance: resume_guest(db_engine, instance,
                                                       host_drivers))
    return done


def _guarded(instance, work):
    """``work()`` on ``instance``; a failure is logged (one line) and
    leaves that instance, not the others."""
    try:
        return work()
    except exception.VmflowError as error:
        LOG.error("Reconcile: instance %s (%s) left: %s", instance["uuid"],
                  instance["name"], error)
        return LEFT


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
        if self.outcomes:
            LOG.info("Runner %s reconciled %d instance(s) at start",
                     self._who, sum(1 for outcome_ in self.outcomes.values()
                                    if outcome_ != LEFT))

    def stop(self):
        """Nothing runs after start()."""
