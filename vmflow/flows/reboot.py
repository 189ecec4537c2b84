"""The reboot flow: soft (ACPI) falling back to hard, or hard at once.

Store: ``instance_uuid``, ``request_id``, ``host_name`` (the instance's
host) and ``reboot_type`` (``soft`` or ``hard``).

::

    MarkInstanceErrorOnRevert       (revert-only sentinel)
    MarkInstanceRebooting           (or MarkInstanceRebootingHard)
    reboot-attempts  [FallBackToHardReboot -> reboot_method]   (graph)
        SelectRebootMethod
        --soft--> soft-reboot
            ShutdownGuestAcpi       -> acpi_shutdown
            MarkInstanceRebootStarted
            wait-for-shutdown-soft  [RetryUntilShutOff-soft]
                WaitForGuestReboot  -> guest_went_down
            StartDomain-soft
            wait-for-running-soft   [RetryUntilRunning-soft]
                WaitForDomainRunning-soft
            MarkInstanceRebooted-soft
        --hard--> hard-reboot
            MarkInstanceRebootingHard
            PowerOffDomain
            RecreateMissingDisks    -> disk_paths
            GenerateDomainXml       -> domain_xml
            RedefineDomain          (in place: never undefined)
            StartDomain
            wait-for-running  [RetryUntilRunning]
                WaitForDomainRunning
            MarkInstanceRebooted

A soft attempt that fails anywhere (GuestIgnoredShutdown after
``[libvirt] wait_soft_reboot_seconds`` included) is reverted, and the
attempt is made again with the hard path (its soft atoms IGNOREd then; the
retry's history keeps the soft attempt's failure). A failed hard attempt
reverts the reboot: ERROR with a fault naming the step.
"""
from taskflow.patterns import graph_flow, linear_flow

from vmflow import instances, server_actions
from vmflow.flows import constants, pieces
from vmflow.tasks import disks, domain, instance, power, reboot

SOFT_TAG = constants.SOFT
REBOOT_STATES = instances.REBOOT_TASK_STATES


def _soft_path():
    soft = linear_flow.Flow(constants.SOFT_REBOOT_FLOW)
    return soft.add(
        power.ShutdownGuestAcpi(),
        instance.MarkInstanceTaskState(
            server_actions.REBOOT, instances.REBOOT_STARTED,
            from_task_states=(instances.REBOOTING,)),
        pieces.wait_until_shut_off(power.WaitForGuestReboot(),
                                   "wait_soft_reboot_seconds", tag=SOFT_TAG),
        domain.StartDomain(name=pieces.tagged("StartDomain", SOFT_TAG)),
        pieces.wait_until_running(tag=SOFT_TAG),
        _mark_rebooted(tag=SOFT_TAG))


def _hard_path():
    hard = linear_flow.Flow(constants.HARD_REBOOT_FLOW)
    return hard.add(
        instance.MarkInstanceTaskState(
            server_actions.HARD_REBOOT, from_task_states=REBOOT_STATES),
        power.PowerOffDomain(),
        disks.RecreateMissingDisks(),
        domain.GenerateDomainXml(),
        domain.RedefineDomain(),
        domain.StartDomain(),
        pieces.wait_until_running(),
        _mark_rebooted())


def _mark_rebooted(tag=None):
    """Each path ends the reboot itself: a decider that skips a path skips
    every atom after it (TaskFlow's depth ALL, the one depth that reaches
    into the paths' nested waits), so nothing may follow the paths."""
    return instance.MarkInstanceDone(
        server_actions.REBOOT, REBOOT_STATES,
        name=pieces.tagged("MarkInstanceRebooted", tag))


def _attempts():
    attempts = graph_flow.Flow(constants.REBOOT_ATTEMPTS_FLOW,
                               retry=reboot.FallBackToHardReboot())
    select = reboot.SelectRebootMethod()
    soft, hard = _soft_path(), _hard_path()
    attempts.add(select, soft, hard)
    attempts.link(select, soft, decider=reboot.runs_path(constants.SOFT),
                  decider_depth="ALL")
    attempts.link(select, hard, decider=reboot.runs_path(constants.HARD),
                  decider_depth="ALL")
    return attempts


def get_reboot_flow():
    """An unloaded reboot flow (everything it needs comes from the store)."""
    flow = linear_flow.Flow(server_actions.REBOOT.name)
    return flow.add(
        instance.MarkInstanceErrorOnRevert(REBOOT_STATES + (None,)),
        reboot.MarkInstanceRebooting(),
        _attempts())
