"""Migration records: one per resize or cold migration of an instance.

A migration names the instance, its source and destination hosts, the old
and the new flavor and the vm_state the instance had, and moves through
Nova's statuses. The record's uuid is chosen when the operation is posted
(it is in the flow's store), so the flow's first step can insert it and a
second run of that step finds it.

While a migration is in flight (any status but the final ones) its uuid is
also a *consumer*: it owns the claim the operation took on the destination
(after finish: the instance's old claim on the source) and the quota hold
for the flavor delta. :func:`consumers_of` lists them for delete and audit.
"""
import sqlalchemy

from vmflow import exception, instances
from vmflow.inventory import as_dict
from vmflow.persistence import models

RESIZE = "resize"
MIGRATION = "migration"

PRE_MIGRATING = "pre-migrating"
MIGRATING = "migrating"
POST_MIGRATING = "post-migrating"
FINISHED = "finished"
CONFIRMING = "confirming"
CONFIRMED = "confirmed"
REVERTING = "reverting"
REVERTED = "reverted"
ERROR = "error"
FINAL_STATUSES = (CONFIRMED, REVERTED, ERROR)
# Where a migration stands once its resize job ended well: the server is
# RESIZED and waits for a confirm or a revert.
AWAITING_CONFIRM = (FINISHED, CONFIRMING, REVERTING)
# The statuses a confirm (CONFIRMING) or a revert (REVERTING) starts from:
# a finished migration, or one the same operation began or even ended (it
# failed after that and runs again; an ended one keeps its status). Never
# the other one's: a confirm after a half-done revert would delete the
# source disk with the destination's already gone.
ENDS_FROM = {CONFIRMING: (FINISHED, CONFIRMING, CONFIRMED),
             REVERTING: (FINISHED, REVERTING, REVERTED)}

RESOURCE_COLUMNS = ("old_vcpus", "old_memory_mb", "old_disk_gb",
                    "new_vcpus", "new_memory_mb", "new_disk_gb")
COLUMNS = ("uuid", "instance_uuid", "migration_type", "source_host",
           "dest_host", "old_flavor_id", "new_flavor_id", "old_vm_state",
           "status", "created_at", "updated_at") + RESOURCE_COLUMNS


def _row(session, migration_uuid):
    row = session.scalar(sqlalchemy.select(models.Migration).where(
        models.Migration.uuid == migration_uuid))
    if row is None:
        raise exception.NotFound(kind="migration", name=migration_uuid)
    return row


def get_migration(session, migration_uuid):
    return as_dict(_row(session, migration_uuid), COLUMNS)


def host_of(migration, which):
    """The ``"old"`` (source) or ``"new"`` (destination) end's host."""
    return migration["source_host" if which == "old" else "dest_host"]


def hosts_of(migration):
    """Both ends' host names (the destination once it is chosen)."""
    return {migration["source_host"], migration["dest_host"]} - {None}


def summary(migration):
    """A migration's uuid, status and hosts (JSON-serialisable)."""
    return {"uuid": migration["uuid"], "status": migration["status"],
            "source_host": host_of(migration, "old"),
            "dest_host": host_of(migration, "new")}


def resources(migration, which):
    """What the ``"old"`` or ``"new"`` flavor holds, as an instance's
    ``{vcpus, memory_mb, disk_gb}``."""
    return {resource: migration[f"{which}_{resource}"]
            for resource in ("vcpus", "memory_mb", "disk_gb")}


def create_migration(session, migration_uuid, instance, new_flavor,
                     migration_type):
    """Insert the migration ``migration_uuid`` (pre-migrating) of
    ``instance`` (a dict) from its host to the flavor row ``new_flavor``;
    an existing one is returned."""
    existing = session.scalar(sqlalchemy.select(models.Migration).where(
        models.Migration.uuid == migration_uuid))
    if existing is not None:
        return as_dict(existing, COLUMNS)
    row = models.Migration(
        uuid=migration_uuid, instance_uuid=instance["uuid"],
        migration_type=migration_type, source_host=instance["host"],
        dest_host=None, old_flavor_id=instance["flavor_id"],
        new_flavor_id=new_flavor.id, old_vm_state=instance["vm_state"],
        status=PRE_MIGRATING, old_vcpus=instance["vcpus"],
        old_memory_mb=instance["memory_mb"], old_disk_gb=instance["disk_gb"],
        new_vcpus=new_flavor.vcpus, new_memory_mb=new_flavor.ram_mb,
        new_disk_gb=new_flavor.disk_gb)
    session.add(row)
    session.flush()
    return as_dict(row, COLUMNS)


def check_can_end(migration, status):
    """MigrationInvalidState unless ``status`` (CONFIRMING or REVERTING)
    may start from the migration's current status (:data:`ENDS_FROM`)."""
    if migration["status"] not in ENDS_FROM[status]:
        raise exception.MigrationInvalidState(
            migration=migration["uuid"], status=migration["status"],
            wanted=status, allowed=", ".join(ENDS_FROM[status]))


def update_migration(session, migration_uuid, **values):
    row = _row(session, migration_uuid)
    for column, value in values.items():
        setattr(row, column, value)
    session.flush()
    return as_dict(row, COLUMNS)


def in_flight(session, instance_uuid=None):
    """Migrations not in a final status (of one instance, if given)."""
    query = sqlalchemy.select(models.Migration).where(
        models.Migration.status.not_in(FINAL_STATUSES))
    if instance_uuid is not None:
        query = query.where(models.Migration.instance_uuid == instance_uuid)
    return [as_dict(row, COLUMNS)
            for row in session.scalars(query.order_by(models.Migration.id))]


def awaiting_confirm(session, instance_uuid):
    """The instance's finished migration (it is RESIZED); NotFound when
    it has none."""
    for migration in in_flight(session, instance_uuid):
        if migration["status"] in AWAITING_CONFIRM:
            return migration
    raise exception.NotFound(kind="finished resize of instance",
                             name=instance_uuid)


ENDED_BY = {CONFIRMING: CONFIRMED, REVERTING: REVERTED}


def to_end(session, instance, status):
    """The migration a confirm (``status`` CONFIRMING) or revert
    (REVERTING) of ``instance`` works on: its finished one, or, for a
    server left in ERROR by that same operation failing at its last steps,
    its latest migration if that operation already ended it (running it
    again finishes what is left). NotFound otherwise."""
    try:
        return awaiting_confirm(session, instance["uuid"])
    except exception.NotFound:
        if instance["vm_state"] != instances.ERROR:
            raise
    latest = session.scalar(
        sqlalchemy.select(models.Migration)
        .where(models.Migration.instance_uuid == instance["uuid"])
        .order_by(models.Migration.id.desc()).limit(1))
    if latest is None or latest.status != ENDED_BY[status]:
        raise exception.NotFound(kind="finished resize of instance",
                                 name=instance["uuid"])
    return as_dict(latest, COLUMNS)


def consumers_of(session, instance_uuid):
    """The instance's uuid and those of its migrations in flight: every
    consumer that may hold claims or quota on its behalf."""
    return [instance_uuid] + [migration["uuid"] for migration
                              in in_flight(session, instance_uuid)]


def list_migrations(session, instance_uuid=None):
    query = sqlalchemy.select(models.Migration, models.Instance.name).join(
        models.Instance,
        models.Instance.uuid == models.Migration.instance_uuid)
    if instance_uuid is not None:
        query = query.where(models.Migration.instance_uuid == instance_uuid)
    flavors = {row.id: row.name for row in
               session.scalars(sqlalchemy.select(models.Flavor))}
    result = []
    for row, server in session.execute(query.order_by(models.Migration.id)):
        record = as_dict(row, COLUMNS)
        record.update(server=server,
                      old_flavor=flavors.get(row.old_flavor_id),
                      new_flavor=flavors.get(row.new_flavor_id))
        result.append(record)
    return result
