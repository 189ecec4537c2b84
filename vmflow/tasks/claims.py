"""Tasks that take and give back resources on hosts (allocations)."""
from vmflow import exception, instances, migrations
from vmflow.persistence import api
from vmflow.resources import claims
from vmflow.tasks import base


def claim_on_candidate(consumer_uuid, host_name, resources,
                       host_candidates):
    """Claim ``resources`` on ``host_name`` for the consumer; a failed claim
    on the last of ``host_candidates`` is NoValidHost (no host is left to
    try), on another one ClaimFailed (the next candidate is tried)."""
    try:
        with api.session_scope() as session:
            return claims.claim(session, consumer_uuid, host_name, resources)
    except exception.ClaimFailed as error:
        if not host_candidates or host_candidates[-1] != host_name:
            raise
        reasons = dict.fromkeys(host_candidates[:-1], "already tried")
        reasons[host_name] = error.kwargs["reason"]
        raise exception.NoValidHost(reasons) from error


class ClaimResources(base.VmflowTask):
    """Claim the instance's vcpus, memory and disk on ``host_name``
    (ClaimFailed, a host-level failure, moves the build to the next host).

    The scheduler read the hosts without a lock, so concurrent builds may
    all have picked a host with room for fewer of them: the claim is the
    check that counts. On the last of ``host_candidates`` a failed claim
    raises NoValidHost instead: no host is left to try, as when the
    scheduler finds none.

    Reversion strategy: delete the instance's claim on that host.
    """

    def execute(self, instance_uuid, host_name, host_candidates=None):
        with api.session_scope() as session:
            instance = instances.get_instance(session, instance_uuid)
        return claim_on_candidate(instance_uuid, host_name,
                                  claims.instance_resources(instance),
                                  host_candidates)

    def revert(self, result, instance_uuid, host_name, **kwargs):
        if base.failed(result):
            return
        with api.session_scope() as session:
            claims.drop(session, instance_uuid, host_name)


class DropClaims(base.VmflowTask):
    """Delete every claim of the instance (and of its resize in flight),
    on any host.

    Reversion strategy: none; delete goes forward, and running it again
    finishes it.
    """

    def execute(self, instance_uuid):
        # A writer from the start: on SQLite, a read transaction that
        # turns into a write fails at once when another writer came first.
        with api.writer_scope() as session:
            return {"dropped": sum(
                claims.drop(session, consumer) for consumer
                in migrations.consumers_of(session, instance_uuid))}
