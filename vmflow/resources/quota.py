"""Quota holds: what each consumer (an instance) takes from its project.

A project's usage is the sum of its holds (``reserved`` while a build runs,
``committed`` once the instance is live), so a reservation counts at once
and concurrent builds never exceed a limit: the check and the insert run
in one transaction holding the project's lock row.
"""
import sqlalchemy

from vmflow import exception
from vmflow.inventory import as_dict, quotas
from vmflow.persistence import models
from vmflow.resources import locks

RESERVED = "reserved"
COMMITTED = "committed"
COLUMNS = ("consumer_uuid", "project", "instances", "cores", "ram", "state")


def instance_resources(instance):
    """What an instance holds: ``{instances, cores, ram}``."""
    return {"instances": 1, "cores": instance["vcpus"],
            "ram": instance["memory_mb"]}


def _get_hold(session, consumer_uuid):
    return session.scalar(sqlalchemy.select(models.QuotaHold).where(
        models.QuotaHold.consumer_uuid == consumer_uuid))


def check_limits(session, project, wanted):
    """Raise QuotaExceeded unless ``wanted`` fits beside current usage."""
    limits, _overridden = quotas.get_limits(session, project)
    usage = quotas.get_usage(session, project)
    for resource in quotas.RESOURCES:
        requested = wanted.get(resource, 0)
        limit = limits[resource]
        if requested <= 0 or limit == quotas.UNLIMITED:
            continue
        if usage[resource] + requested > limit:
            raise exception.QuotaExceeded(
                resource=resource, project=project, limit=limit,
                in_use=usage[resource], requested=requested)


def lock_project(session, project):
    """Begin the session's transaction holding the project's row lock:
    what its quota checks and its server-name checks serialise on."""
    locks.begin_write(session)
    locks.ensure_row(session, models.ProjectLock, project=project)
    locks.lock_row(session, models.ProjectLock,
                   models.ProjectLock.project == project)


def reserve(session, consumer_uuid, project, wanted):
    """Hold ``wanted`` (``{instances, cores, ram}``) for the consumer.

    Runs as the session's whole transaction: lock the project, check, then
    insert a ``reserved`` hold. Safe to run again: an existing hold of the
    consumer is returned as it is.
    """
    lock_project(session, project)
    hold = _get_hold(session, consumer_uuid)
    if hold is None:
        check_limits(session, project, wanted)
        hold = models.QuotaHold(
            consumer_uuid=consumer_uuid, project=project, state=RESERVED,
            **{resource: wanted.get(resource, 0)
               for resource in quotas.RESOURCES})
        session.add(hold)
        session.flush()
    return as_dict(hold, COLUMNS)


def set_state(session, consumer_uuid, state):
    """Mark the consumer's hold ``state``; NotFound when it has none."""
    hold = _get_hold(session, consumer_uuid)
    if hold is None:
        raise exception.NotFound(kind="quota hold of", name=consumer_uuid)
    hold.state = state
    session.flush()
    return as_dict(hold, COLUMNS)


def release(session, consumer_uuid):
    """Give the consumer's hold back: ``"released"`` or ``"absent"``."""
    deleted = session.execute(sqlalchemy.delete(models.QuotaHold).where(
        models.QuotaHold.consumer_uuid == consumer_uuid)).rowcount
    return "released" if deleted else "absent"


def resize_delta(old, new):
    """What a resize from ``old`` to ``new`` (instance resources) must
    hold beside the instance's own hold until it is confirmed: the growth
    of each resource (a shrink holds nothing: the old flavor still counts
    until the confirm)."""
    old_hold, new_hold = instance_resources(old), instance_resources(new)
    return {resource: max(0, new_hold[resource] - old_hold[resource])
            for resource in ("cores", "ram")}


def commit_resize(session, project, instance_uuid, migration_uuid,
                  resources):
    """A confirmed resize: the instance's hold becomes ``resources`` (its
    new flavor's) and the migration's delta hold is given back, in one
    transaction holding the project's lock. Safe to run again."""
    lock_project(session, project)
    instance_hold = _get_hold(session, instance_uuid)
    if instance_hold is None:
        raise exception.NotFound(kind="quota hold of", name=instance_uuid)
    for resource, value in instance_resources(resources).items():
        setattr(instance_hold, resource, value)
    release(session, migration_uuid)
    session.flush()
    return as_dict(instance_hold, COLUMNS)
