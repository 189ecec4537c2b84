"""Tasks that take and give back resources on hosts (allocations)."""
from vmflow import instances
from vmflow.persistence import api
from vmflow.resources import claims
from vmflow.tasks import base


class ClaimResources(base.VmflowTask):
    """Claim the instance's vcpus, memory and disk on ``host_name``
    (ClaimFailed, a host-level failure, moves the build to the next host).

    Reversion strategy: delete the instance's claim on that host.
    """

    def execute(self, instance_uuid, host_name):
        with api.session_scope() as session:
            instance = instances.get_instance(session, instance_uuid)
        with api.session_scope() as session:
            return claims.claim(session, instance_uuid, host_name,
                                claims.instance_resources(instance))

    def revert(self, result, instance_uuid, host_name, **kwargs):
        if base.failed(result):
            return
        with api.session_scope() as session:
            claims.drop(session, instance_uuid, host_name)


class DropClaims(base.VmflowTask):
    """Delete every claim of the instance, on any host.

    Reversion strategy: none; delete goes forward, and running it again
    finishes it.
    """

    def execute(self, instance_uuid):
        with api.session_scope() as session:
            return {"dropped": claims.drop(session, instance_uuid)}
