from vmflow import validation
from vmflow.inventory import (as_dict, delete_unless_used, ensure_name_free,
                              get_by_name, insert_unique, list_by_name)
from vmflow.persistence import models

COLUMNS = ("id", "name", "vcpus", "ram_mb", "disk_gb")


def create_flavor(session, name, vcpus, ram_mb, disk_gb):
    validation.validate_name(name, "flavor name")
    for what, value, column in (("vcpus", vcpus, models.Flavor.vcpus),
                                ("ram", ram_mb, models.Flavor.ram_mb),
                                ("disk", disk_gb, models.Flavor.disk_gb)):
        validation.validate_count(value, column, f"flavor {what}")
    ensure_name_free(session, models.Flavor, "flavor", name)
    flavor = insert_unique(session, models.Flavor(
        name=name, vcpus=vcpus, ram_mb=ram_mb, disk_gb=disk_gb), "flavor")
    return as_dict(flavor, COLUMNS)


def list_flavors(session):
    return list_by_name(session, models.Flavor, COLUMNS)


def show_flavor(session, name):
    return as_dict(get_by_name(session, models.Flavor, "flavor", name),
                   COLUMNS)


def delete_flavor(session, name):
    delete_unless_used(session, models.Flavor, "flavor", name,
                       models.Instance.flavor_id)
