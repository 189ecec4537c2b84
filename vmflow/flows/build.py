"""The build flow: from a ``building`` instance row to an ACTIVE guest.

Store: ``instance_uuid``, ``request_id`` and optionally ``requested_host``.
The instance row exists before the flow runs
(:func:`vmflow.instances.create_instance_record`).

::

    MarkInstanceErrorOnRevert   (revert-only sentinel)
    ReserveQuota
    SelectHosts                 -> host_candidates
    build-on-host  [RetryOnNextHost over host_candidates -> host_name]
        ClaimResources
        CreateDisks             -> disk_paths
        GenerateDomainXml       -> domain_xml
        DefineDomain
        StartDomain
        wait-for-running  [RetryUntilRunning -> wait_deadline]
            WaitForDomainRunning -> power_state
    CommitQuota
    MarkInstanceActive
"""
from taskflow.patterns import linear_flow

from vmflow import instances
from vmflow.flows import constants, pieces
from vmflow.tasks import claims, disks, domain, instance, quota, scheduling


def get_build_flow():
    """An unloaded build flow (everything it needs comes from the store)."""
    on_host = pieces.try_on_each_host(
        claims.ClaimResources(),
        disks.CreateDisks(),
        domain.GenerateDomainXml(),
        domain.DefineDomain(),
        domain.StartDomain(),
        pieces.wait_until_running())
    flow = linear_flow.Flow(constants.BUILD_FLOW)
    flow.add(instance.MarkInstanceErrorOnRevert((instances.SCHEDULING,)),
             quota.ReserveQuota(),
             scheduling.SelectHosts(),
             on_host,
             quota.CommitQuota(),
             instance.MarkInstanceActive())
    return flow
