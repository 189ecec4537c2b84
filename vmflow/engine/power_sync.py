"""Keeping ``instances.power_state`` true to the hypervisor.

The hypervisor is the authority on power: :func:`sync_instance` writes
what it reports into the instance row, and where the guest changed state
behind vmflow's back it settles ``vm_state`` as Nova's power-state sync
does -- a guest that powered itself off (or crashed) while ACTIVE or
PAUSED ends STOPPED. vmflow never powers a guest on or off here; where
Nova would call its stop API on a running guest of a STOPPED instance, the
discrepancy is recorded in power_state and logged.

An instance with an operation in progress is left alone: its task_state
is set, or its instance lock is live (an operation was posted and its flow
has not set a task_state yet; see :func:`.locks.lock_is_live`). The check
and the write share one writing transaction, and the write is a
compare-and-swap on task_state None, so an operation that starts
meanwhile wins.
"""
import functools
import logging

import sqlalchemy

from vmflow import exception, instances, power_states
from vmflow.engine import locks, outcome
from vmflow.persistence import api, models

LOG = logging.getLogger(__name__)

# Outcomes of sync_instance (for logs and tests).
WRITTEN = "written"
UNCHANGED = "unchanged"
BUSY = "busy"
IGNORED = "ignored"

POWERED_OFF = (power_states.SHUTDOWN, power_states.CRASHED)
# vm_states whose power_state is recorded but whose vm_state a power
# change never settles (an operation, or the operator, owns them).
UNSETTLED = (instances.BUILDING, instances.RESIZED, instances.ERROR)


def settled_vm_state(vm_state, power_state):
    """The vm_state an idle instance in ``vm_state`` ends in when its guest
    is found in ``power_state``; None: unchanged."""
    if (vm_state in (instances.ACTIVE, instances.PAUSED)
            and power_state in POWERED_OFF):
        return instances.STOPPED
    return None


def _discrepancy(vm_state, power_state):
    """A state pair vmflow does not settle by itself, in words, or None."""
    if vm_state == instances.STOPPED and power_state not in (
            power_states.NOSTATE, *POWERED_OFF):
        return "is not stopped"
    if vm_state == instances.ACTIVE and power_state != power_states.RUNNING:
        return "is unexpectedly " + power_state
    if vm_state == instances.SUSPENDED and power_state not in (
            power_states.SHUTDOWN, power_states.SUSPENDED):
        return "is not suspended"
    return None


class LockCheck:
    """Whether an instance's lock is live. The job board is read only for
    an instance that has a lock row (rare), and a board that cannot be
    read counts as live: better skip a sync than fight an operation."""

    def __init__(self, board):
        self._board = board

    def is_locked(self, session, instance_uuid):
        if not locks.lock_rows(session, instance_uuid):
            return False
        try:
            board_jobs = locks.BoardJobs.read(self._board, outcome.job_info)
        except Exception as error:  # the board is down: assume busy
            LOG.debug("reading the job board failed: %s", error)
            return True
        return bool(locks.live_locks(session, board_jobs,
                                     self._board.claim_expiry,
                                     instance_uuid))


def sync_instance(db, lock_check, instance_uuid, host_name, power_state,
                  read_power_state=None):
    """Record ``power_state``, which host ``host_name`` reports for the
    instance's domain, and settle its vm_state; returns an outcome.

    A first look reads only; the write lock is taken (and everything
    judged again under it, the instance lock too) only when there is
    something to write, so a sync of a host where nothing changed costs
    no writing transaction. ``read_power_state()``, when given, asks the
    hypervisor again once the write lock is held and no operation holds
    the instance: ``power_state`` may be older than an operation that
    ended meanwhile (a reboot's shutdown seen by a periodic sync that
    writes after the reboot finished), and no operation can start while
    the write lock is held.
    """
    with api.session_scope(db) as session:
        verdict = _judge(session, instance_uuid, host_name, power_state)
    if isinstance(verdict, str):
        return verdict
    with api.writer_scope(db) as session:
        verdict = _judge(session, instance_uuid, host_name, power_state)
        if isinstance(verdict, str):
            return verdict
        if lock_check.is_locked(session, instance_uuid):
            return BUSY
        if read_power_state is not None:
            power_state = read_power_state()
            if power_state is None:
                return IGNORED  # the hypervisor stopped answering
            verdict = _judge(session, instance_uuid, host_name, power_state)
            if isinstance(verdict, str):
                return verdict
        row, values = verdict
        try:
            instances.update_instance(session, instance_uuid, (None,),
                                      **values)
        except exception.UnexpectedTaskState:
            return BUSY  # an operation started meanwhile: it wins
        _log_change(row, instance_uuid, power_state, values.get("vm_state"))
        return WRITTEN


def _judge(session, instance_uuid, host_name, power_state):
    """An outcome (nothing to write), or the row and the values to write
    (the instance lock not checked yet)."""
    row = session.scalar(sqlalchemy.select(models.Instance).where(
        models.Instance.uuid == instance_uuid))
    if (row is None or row.host != host_name
            or row.vm_state == instances.DELETED):
        return IGNORED  # not vmflow's, or it lives elsewhere now
    if row.task_state is not None:
        return BUSY
    values = {}
    if row.power_state != power_state:
        values["power_state"] = power_state
    vm_state = (None if row.vm_state in UNSETTLED
                else settled_vm_state(row.vm_state, power_state))
    if vm_state is not None:
        values["vm_state"] = vm_state
    return (row, values) if values else UNCHANGED


def _log_change(row, instance_uuid, power_state, vm_state):
    if vm_state is not None:
        LOG.warning("Instance %s (%s) was %s and its guest is %s: it "
                    "powered off by itself; now %s", instance_uuid,
                    row.name, row.vm_state, power_state, vm_state)
        return
    problem = _discrepancy(row.vm_state, power_state)
    if problem:
        LOG.warning("Instance %s (%s) is %s but its guest %s; power_state "
                    "recorded, vm_state left alone", instance_uuid,
                    row.name, row.vm_state, problem)
    else:
        LOG.info("Instance %s (%s): power_state %s", instance_uuid,
                 row.name, power_state)


def instances_on_host(db, host_name):
    """Uuids of the host's instances that are not deleted."""
    with api.session_scope(db) as session:
        return list(session.scalars(
            sqlalchemy.select(models.Instance.uuid).where(
                models.Instance.host == host_name,
                models.Instance.vm_state != instances.DELETED)))


def sync_host(db, lock_check, host_name, reported, driver=None):
    """Sync every instance of the host with ``reported``, the driver's
    :meth:`~vmflow.drivers.base.ComputeDriver.list_power_states`; an
    instance without a domain there is NOSTATE. With ``driver``, each
    write is confirmed by asking it again (:func:`current_power_state`).
    Returns ``{uuid: outcome}``."""
    return {uuid: sync_instance(
                db, lock_check, uuid, host_name,
                reported.get(uuid, power_states.NOSTATE),
                None if driver is None
                else functools.partial(current_power_state, driver, uuid))
            for uuid in instances_on_host(db, host_name)}


def current_power_state(driver, instance_uuid):
    """The power state the hypervisor reports now: NOSTATE without a
    domain, None when the hypervisor does not answer."""
    try:
        return driver.get_power_state(instance_uuid)
    except exception.DomainNotFound:
        return power_states.NOSTATE
    except exception.HypervisorUnavailable:
        return None
