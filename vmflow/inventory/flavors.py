import sqlalchemy

from vmflow import exception, validation
from vmflow.inventory import (as_dict, count_live_instances, ensure_name_free,
                              get_by_name, insert_unique)
from vmflow.persistence import models

COLUMNS = ("id", "name", "vcpus", "ram_mb", "disk_gb")


def create_flavor(session, name, vcpus, ram_mb, disk_gb):
    validation.validate_name(name, "flavor name")
    for what, value in (("vcpus", vcpus), ("ram", ram_mb), ("disk", disk_gb)):
        if value < 1:
            raise exception.InvalidInput(
                reason=f"flavor {what} {value} must be at least 1")
    ensure_name_free(session, models.Flavor, "flavor", name)
    flavor = insert_unique(session, models.Flavor(
        name=name, vcpus=vcpus, ram_mb=ram_mb, disk_gb=disk_gb), "flavor")
    return as_dict(flavor, COLUMNS)


def list_flavors(session):
    rows = session.scalars(
        sqlalchemy.select(models.Flavor).order_by(models.Flavor.name))
    return [as_dict(row, COLUMNS) for row in rows]


def show_flavor(session, name):
    return as_dict(get_by_name(session, models.Flavor, "flavor", name),
                   COLUMNS)


def delete_flavor(session, name):
    flavor = get_by_name(session, models.Flavor, "flavor", name)
    users = count_live_instances(session, models.Instance.flavor_id,
                                 flavor.id)
    if users:
        raise exception.InUse(kind="flavor", name=name,
                              reason=f"{users} instance(s) use it")
    session.delete(flavor)
