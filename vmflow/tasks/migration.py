"""Tasks of resize and cold migration that write records: the migration,
its quota delta, its claims, and the instance's flavor, host and state.

The migration's uuid (``migration_uuid``, chosen at posting) is the
consumer of what the operation takes besides the instance: the claim on
the destination while the resize runs, the instance's old claim on the
source once it finished, and the quota hold for the flavor's growth.
"""
from vmflow import instances, migrations
from vmflow.inventory import get_by_name
from vmflow.persistence import api, models
from vmflow.resources import claims, quota
from vmflow.tasks import base
from vmflow.tasks import claims as claim_tasks
from vmflow.tasks import quota as quota_tasks
from vmflow.tasks.instance import camel

def load_migration(migration_uuid):
    with api.session_scope() as session:
        return migrations.get_migration(session, migration_uuid)


class CreateMigrationRecord(base.VmflowTask):
    """Insert the migration record (pre-migrating) from the instance's
    host, stashing the old flavor and the old vm_state in it.

    Reversion strategy: mark the migration ``error`` (the record stays, as
    Nova's do, to tell what was tried); one already final is left alone.
    """

    def execute(self, instance_uuid, migration_uuid, new_flavor,
                migration_type):
        with api.writer_scope() as session:
            instance = instances.get_instance(session, instance_uuid)
            flavor = get_by_name(session, models.Flavor, "flavor",
                                 new_flavor)
            return migrations.summary(migrations.create_migration(
                session, migration_uuid, instance, flavor, migration_type))

    def revert(self, result, migration_uuid, **kwargs):
        if base.failed(result):
            return
        with api.writer_scope() as session:
            if (migrations.get_migration(session, migration_uuid)["status"]
                    not in migrations.FINAL_STATUSES):
                migrations.update_migration(session, migration_uuid,
                                            status=migrations.ERROR)


class SetMigrationStatus(base.VmflowTask):
    """Move the migration to ``status`` (a Nova status name); confirming
    and reverting only from the statuses they may start from
    (MigrationInvalidState otherwise: see ``migrations.ENDS_FROM``).

    Reversion strategy: none here; a failed resize's migration ends
    ``error`` (CreateMigrationRecord's revert).
    """

    def __init__(self, status, **kwargs):
        self.status = status
        kwargs.setdefault("name", "SetMigration" + camel(status))
        super().__init__(**kwargs)

    def execute(self, migration_uuid):
        with api.writer_scope() as session:
            if self.status in migrations.ENDS_FROM:
                current = migrations.get_migration(session, migration_uuid)
                migrations.check_can_end(current, self.status)
                if current["status"] in migrations.FINAL_STATUSES:
                    return migrations.summary(current)  # ended already: kept
            return migrations.summary(migrations.update_migration(
                session, migration_uuid, status=self.status))


class EndInstanceMigrations(base.VmflowTask):
    """A delete's last record: the instance's migrations still in flight
    (a RESIZED server deleted before its confirm) end ``error``.

    Reversion strategy: none; delete goes forward, and running it again
    finishes it.
    """

    def execute(self, instance_uuid):
        with api.writer_scope() as session:
            ended = [migration["uuid"] for migration
                     in migrations.in_flight(session, instance_uuid)]
            for migration_uuid in ended:
                migrations.update_migration(session, migration_uuid,
                                            status=migrations.ERROR)
        return ended


class RecordMigrationDestination(base.VmflowTask):
    """Write the host chosen for this attempt as the migration's
    destination.

    Reversion strategy: none; the next attempt writes its own, and a
    failed migration keeps the last host it tried.
    """

    def execute(self, migration_uuid, dest_host):
        with api.writer_scope() as session:
            return migrations.summary(migrations.update_migration(
                session, migration_uuid, dest_host=dest_host))


class ReserveQuotaDelta(base.VmflowTask):
    """Hold the growth of cores and ram from the old flavor to the new one
    in the project, as the migration's hold (QuotaExceeded fails the
    resize at once: no host can fix it).

    Reversion strategy: delete the migration's quota hold.
    """

    def execute(self, instance_uuid, migration_uuid):
        migration = load_migration(migration_uuid)
        project = quota_tasks.load_instance(instance_uuid)["project"]
        delta = quota.resize_delta(migrations.resources(migration, "old"),
                                   migrations.resources(migration, "new"))
        with api.session_scope() as session:
            return quota.reserve(session, migration_uuid, project,
                                 dict(delta, instances=0))

    def revert(self, result, migration_uuid, **kwargs):
        if base.failed(result):
            return
        with api.writer_scope() as session:
            quota.release(session, migration_uuid)


class ClaimResourcesOnDestination(base.VmflowTask):
    """Claim the new flavor on ``dest_host`` as the migration's claim
    (ClaimFailed moves prep to the next host; on the last candidate it is
    NoValidHost, as for a build).

    Reversion strategy: delete the migration's claim on that host.
    """

    def execute(self, migration_uuid, dest_host, host_candidates=None):
        migration = load_migration(migration_uuid)
        return claim_tasks.claim_on_candidate(
            migration_uuid, dest_host, migrations.resources(migration, "new"),
            host_candidates)

    def revert(self, result, migration_uuid, dest_host, **kwargs):
        if base.failed(result):
            return
        with api.session_scope() as session:
            claims.drop(session, migration_uuid, dest_host)


def _placements(instance, migration, instance_on):
    """Claims with the instance on ``"dest"`` (new flavor; the migration
    keeps the old one on the source), ``"source"`` during the resize (the
    migration holds the new flavor on the destination) or ``"home"``
    (only the instance, on the source with the old flavor)."""
    resize = migration["uuid"]
    old, new = (
        (migrations.host_of(migration, which),
         migrations.resources(migration, which)) for which in ("old", "new"))
    if instance_on == "dest":
        return {instance: new, resize: old}
    if instance_on == "source":
        return {instance: old, resize: new}
    return {instance: old, resize: None}


def _place_claims(instance_uuid, migration_uuid, instance_on):
    migration = load_migration(migration_uuid)
    with api.session_scope() as session:
        claims.place(session, _placements(instance_uuid, migration,
                                          instance_on))
    return instance_on


class MoveClaimsToDestination(base.VmflowTask):
    """Give the instance the destination's claim (new flavor) and the
    migration the source's (old flavor), in one transaction.

    Reversion strategy: swap them back (the same one transaction).
    """

    def execute(self, instance_uuid, migration_uuid):
        return _place_claims(instance_uuid, migration_uuid, "dest")

    def revert(self, result, instance_uuid, migration_uuid, **kwargs):
        if base.failed(result):
            return
        _place_claims(instance_uuid, migration_uuid, "source")


class MoveClaimsToSource(base.VmflowTask):
    """A revert's accounting: the instance's claim back on the source with
    the old flavor, the migration's claims gone, in one transaction.

    Reversion strategy: none; revert goes forward, and running it again
    finishes it.
    """

    def execute(self, instance_uuid, migration_uuid):
        return _place_claims(instance_uuid, migration_uuid, "home")


class DropSourceClaim(base.VmflowTask):
    """A confirm's accounting: delete the migration's claim (the old
    flavor on the source).

    Reversion strategy: none; confirm goes forward, and running it again
    finishes it.
    """

    def execute(self, migration_uuid):
        with api.session_scope() as session:
            return {"dropped": claims.drop(session, migration_uuid)}


class CommitQuotaDelta(base.VmflowTask):
    """A confirm's quota: the instance's hold becomes the new flavor's and
    the migration's delta hold is given back, in one transaction.

    Reversion strategy: none; confirm goes forward, and running it again
    finishes it.
    """

    def execute(self, instance_uuid, migration_uuid):
        migration = load_migration(migration_uuid)
        project = quota_tasks.load_instance(instance_uuid)["project"]
        with api.session_scope() as session:
            return quota.commit_resize(
                session, project, instance_uuid, migration_uuid,
                migrations.resources(migration, "new"))


class ReleaseQuotaDelta(base.VmflowTask):
    """A revert's quota: give the migration's delta hold back.

    Reversion strategy: none; revert goes forward, and running it again
    finishes it.
    """

    def execute(self, migration_uuid):
        with api.writer_scope() as session:
            return quota.release(session, migration_uuid)


def _set_flavor(instance_uuid, migration, which, expected):
    host = migrations.host_of(migration, which)
    flavor_id = migration[f"{which}_flavor_id"]
    with api.writer_scope() as session:
        return instances.update_instance(
            session, instance_uuid, expected, flavor_id=flavor_id,
            host=host, **migrations.resources(migration, which))


class ApplyNewFlavor(base.VmflowTask):
    """The instance holds the new flavor and lives on the destination.

    Reversion strategy: give it the old flavor and the source host back.
    """

    def execute(self, instance_uuid, migration_uuid):
        return _set_flavor(instance_uuid, load_migration(migration_uuid),
                           "new", (instances.RESIZE_FINISH,))

    def revert(self, result, instance_uuid, migration_uuid, **kwargs):
        if base.failed(result):
            return
        _set_flavor(instance_uuid, load_migration(migration_uuid), "old",
                    instances.ANY)


class RestoreOldFlavor(base.VmflowTask):
    """A revert's instance record: the old flavor, on the source host.

    Reversion strategy: none; revert goes forward, and running it again
    finishes it.
    """

    def execute(self, instance_uuid, migration_uuid):
        return _set_flavor(instance_uuid, load_migration(migration_uuid),
                           "old", (instances.RESIZE_REVERTING,))


class MarkInstanceResizeDone(base.VmflowTask):
    """The last step of resize, confirm or revert: vm_state ``vm_state``
    (None: the old vm_state the migration stashed), the power state found
    (``power_state``, when the flow provides it), task_state cleared
    (compare-and-swap from ``task_state``). Done already is fine: it runs
    again after a crash.

    Reversion strategy: none; it is its flow's last step.
    """

    def __init__(self, task_state, vm_state=None, **kwargs):
        self.task_state, self.vm_state = task_state, vm_state
        if vm_state:
            kwargs.setdefault("name", "MarkInstance" + camel(vm_state))
        super().__init__(**kwargs)

    def execute(self, instance_uuid, migration_uuid, power_state=None):
        vm_state = (self.vm_state
                    or load_migration(migration_uuid)["old_vm_state"])
        values = dict(vm_state=vm_state, task_state=None)
        if power_state is not None:
            values.update(power_state=power_state)
        with api.writer_scope() as session:
            instance = instances.get_instance(session, instance_uuid)
            if (instance["vm_state"], instance["task_state"]) == (
                    vm_state, None):
                return instance
            return instances.update_instance(
                session, instance_uuid, (self.task_state,), **values)
