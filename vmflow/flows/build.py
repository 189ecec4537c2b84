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
from vmflow.flows import constants
from vmflow.tasks import claims, disks, domain, instance, quota, scheduling


def get_build_flow():
    """An unloaded build flow (everything it needs comes from the store)."""
    wait = linear_flow.Flow(constants.WAIT_RUNNING_FLOW,
                            retry=domain.RetryUntilRunning())
    wait.add(domain.WaitForDomainRunning())
    on_host = linear_flow.Flow(constants.BUILD_ON_HOST_FLOW,
                               retry=scheduling.RetryOnNextHost())
    on_host.add(claims.ClaimResources(),
                disks.CreateDisks(),
                domain.GenerateDomainXml(),
                domain.DefineDomain(),
                domain.StartDomain(),
                wait)
    flow = linear_flow.Flow(constants.BUILD_FLOW)
    flow.add(instance.MarkInstanceErrorOnRevert((instances.SCHEDULING,)),
             quota.ReserveQuota(),
             scheduling.SelectHosts(),
             on_host,
             quota.CommitQuota(),
             instance.MarkInstanceActive())
    return flow
