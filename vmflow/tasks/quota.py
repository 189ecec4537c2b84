"""Tasks that take and give back a project's quota (quota holds)."""
from vmflow import exception, instances, migrations
from vmflow.persistence import api
from vmflow.resources import quota
from vmflow.tasks import base


def load_instance(instance_uuid):
    """The instance, read in its own transaction (the quota writes that
    follow must start a fresh one: they lock the project first)."""
    with api.session_scope() as session:
        return instances.get_instance(session, instance_uuid)


def _set_hold_state(instance_uuid, state):
    with api.writer_scope() as session:
        return quota.set_state(session, instance_uuid, state)


def _release(instance_uuid):
    with api.writer_scope() as session:
        return quota.release(session, instance_uuid)


class ReserveQuota(base.VmflowTask):
    """Hold the instance's cores, ram and one instance in its project
    (QuotaExceeded fails the build at once: no host can fix it).

    Reversion strategy: delete the instance's quota hold.
    """

    def execute(self, instance_uuid):
        instance = load_instance(instance_uuid)
        with api.session_scope() as session:
            return quota.reserve(session, instance_uuid, instance["project"],
                                 quota.instance_resources(instance))

    def revert(self, result, instance_uuid, **kwargs):
        if base.failed(result):
            return
        _release(instance_uuid)


class CommitQuota(base.VmflowTask):
    """Mark the instance's hold committed: the instance is live.

    Reversion strategy: mark the hold reserved again (ReserveQuota's revert
    then deletes it); nothing to do when the hold is gone.
    """

    def execute(self, instance_uuid):
        return _set_hold_state(instance_uuid, quota.COMMITTED)

    def revert(self, result, instance_uuid, **kwargs):
        if base.failed(result):
            return
        try:
            _set_hold_state(instance_uuid, quota.RESERVED)
        except exception.NotFound:
            return


class ReleaseQuota(base.VmflowTask):
    """Delete the instance's quota hold, and its resize's (none is fine).

    Reversion strategy: none; delete goes forward, and running it again
    finishes it.
    """

    def execute(self, instance_uuid):
        with api.writer_scope() as session:
            resizes = migrations.consumers_of(session, instance_uuid)[1:]
        for migration_uuid in resizes:
            _release(migration_uuid)
        return _release(instance_uuid)
