"""The delete flow: every step is safe to run again after any failure,
on any instance (also one whose build failed: ERROR, no host).

Store: ``instance_uuid``, ``request_id``.

::

    MarkInstanceErrorOnRevert   (revert-only sentinel)
    MarkInstanceDeleting
    FindInstanceHosts           -> instance_hosts
    DestroyDomain
    UndefineDomain
    RemoveDisks
    DropClaims
    ReleaseQuota
    EndInstanceMigrations
    MarkInstanceDeleted
"""
from taskflow.patterns import linear_flow

from vmflow import instances
from vmflow.flows import constants
from vmflow.tasks import claims, disks, domain, instance, migration, quota


def get_delete_flow():
    """An unloaded delete flow (everything it needs comes from the store)."""
    flow = linear_flow.Flow(constants.DELETE_FLOW)
    flow.add(instance.MarkInstanceErrorOnRevert(instances.ANY),
             instance.MarkInstanceDeleting(),
             instance.FindInstanceHosts(),
             domain.DestroyDomain(),
             domain.UndefineDomain(),
             disks.RemoveDisks(),
             claims.DropClaims(),
             quota.ReleaseQuota(),
             migration.EndInstanceMigrations(),
             instance.MarkInstanceDeleted())
    return flow
