"""Per-project quota limits; projects without a limit use [quota] defaults."""
import sqlalchemy

from vmflow import conf as vmflow_conf
from vmflow import exception, validation
from vmflow.persistence import models

RESOURCES = ("instances", "cores", "ram")
UNLIMITED = -1


def default_limits(conf=vmflow_conf.CONF):
    return {resource: getattr(conf.quota, resource) for resource in RESOURCES}


def get_limits(session, project, conf=vmflow_conf.CONF):
    limits = default_limits(conf)
    rows = session.scalars(sqlalchemy.select(models.QuotaLimit)
                           .where(models.QuotaLimit.project == project))
    overrides = {row.resource: row.hard_limit for row in rows}
    limits.update(overrides)
    return limits, set(overrides)


def get_usage(session, project):
    """What the project's quota holds add up to (reserved and committed):
    a build counts from the moment its quota is reserved."""
    hold = models.QuotaHold
    sums = session.execute(
        sqlalchemy.select(*(sqlalchemy.func.coalesce(
            sqlalchemy.func.sum(getattr(hold, resource)), 0)
            for resource in RESOURCES))
        .where(hold.project == project)).one()
    return {resource: int(value) for resource, value in zip(RESOURCES, sums)}


def set_limits(session, project, limits):
    """Set the given ``{resource: limit}``; None values are left alone."""
    validation.validate_name(project, "project name")
    changes = {resource: value for resource, value in limits.items()
               if value is not None}
    if not changes:
        raise exception.InvalidInput(
            reason="give at least one of --instances, --cores, --ram")
    for resource, value in changes.items():
        if resource not in RESOURCES:
            raise exception.InvalidInput(
                reason=f"unknown quota resource {resource!r}")
        validation.validate_count(value, models.QuotaLimit.hard_limit,
                                  f"quota {resource} limit", UNLIMITED)
    for resource, value in changes.items():
        row = session.scalar(sqlalchemy.select(models.QuotaLimit).where(
            models.QuotaLimit.project == project,
            models.QuotaLimit.resource == resource))
        if row is None:
            session.add(models.QuotaLimit(project=project, resource=resource,
                                          hard_limit=value))
        else:
            row.hard_limit = value
    session.flush()
    return show_quota(session, project)


def show_quota(session, project):
    validation.validate_name(project, "project name")
    limits, overridden = get_limits(session, project)
    usage = get_usage(session, project)
    return [{"resource": resource,
             "limit": limits[resource],
             "in_use": usage[resource],
             "source": "project" if resource in overridden else "default"}
            for resource in RESOURCES]
