"""Claims: resources an instance (or migration) takes on a host.

A claim locks the host's row, sums the host's allocations and checks the
request with the scheduler's own filters and allocation ratios, then
inserts the allocation, all in one transaction, so concurrent builds never
put more on a host than it has room for.
"""
import sqlalchemy

from vmflow import conf as vmflow_conf
from vmflow import exception
from vmflow.inventory import as_dict
from vmflow.persistence import models
from vmflow.resources import locks
from vmflow.scheduler import filters, host_state

RESOURCES = ("vcpus", "memory_mb", "disk_gb")


def instance_resources(instance):
    return {resource: instance[resource] for resource in RESOURCES}


def _allocation_dict(allocation, host_name):
    return dict(as_dict(allocation, ("consumer_uuid",) + RESOURCES),
                host=host_name)


def claim(session, consumer_uuid, host_name, wanted, conf=vmflow_conf.CONF):
    """Allocate ``wanted`` (``{vcpus, memory_mb, disk_gb}``) on the host.

    Runs as the session's whole transaction. Raises ClaimFailed (try
    another host) when the host is gone, disabled or full. Safe to run
    again: an existing claim of the consumer on that host is returned.
    """
    locks.begin_write(session)
    host = locks.lock_row(session, models.Host,
                          models.Host.name == host_name)
    if host is None:
        raise exception.ClaimFailed(host=host_name, reason="no such host")
    existing = session.scalar(sqlalchemy.select(models.Allocation).where(
        models.Allocation.consumer_uuid == consumer_uuid,
        models.Allocation.host_id == host.id))
    if existing is not None:
        return _allocation_dict(existing, host_name)
    state, = host_state.load_host_states(session, names=[host_name])
    reason = filters.reject_reason(state, wanted, conf)
    if reason:
        raise exception.ClaimFailed(host=host_name, reason=reason)
    allocation = models.Allocation(consumer_uuid=consumer_uuid,
                                   host_id=host.id, **wanted)
    session.add(allocation)
    session.flush()
    return _allocation_dict(allocation, host_name)


def drop(session, consumer_uuid, host_name=None):
    """Delete the consumer's claims (on ``host_name`` only, if given).

    Returns how many were deleted; 0 when there were none.
    """
    query = sqlalchemy.delete(models.Allocation).where(
        models.Allocation.consumer_uuid == consumer_uuid)
    if host_name is not None:
        host_ids = sqlalchemy.select(models.Host.id).where(
            models.Host.name == host_name)
        query = query.where(models.Allocation.host_id.in_(host_ids))
    return session.execute(query).rowcount


def claim_hosts(session, consumer_uuid):
    """Names of the hosts where the consumer holds a claim."""
    return list(session.scalars(
        sqlalchemy.select(models.Host.name)
        .join(models.Allocation, models.Allocation.host_id == models.Host.id)
        .where(models.Allocation.consumer_uuid == consumer_uuid)
        .order_by(models.Host.name)))


def place(session, placements):
    """Set each consumer's claims to exactly what ``placements`` says:
    ``{consumer_uuid: (host_name, {vcpus, memory_mb, disk_gb}) or None}``
    (None: no claim anywhere). Runs as the session's whole transaction.

    For moving claims between an instance and its migration (a resize's
    finish, confirm, revert): the resources moved were claimed already, so
    nothing is checked against the hosts' room. Safe to run again: the
    result is the same.
    """
    locks.begin_write(session)
    for consumer_uuid, placement in placements.items():
        drop(session, consumer_uuid)
        if placement is None:
            continue
        host_name, resources = placement
        host_id = session.scalar(sqlalchemy.select(models.Host.id).where(
            models.Host.name == host_name))
        if host_id is None:
            raise exception.NotFound(kind="host", name=host_name)
        session.add(models.Allocation(consumer_uuid=consumer_uuid,
                                      host_id=host_id, **resources))
    session.flush()
