"""The power operations: stop, start, pause, unpause, suspend, resume.

Store: ``instance_uuid``, ``request_id`` and ``host_name`` (the instance's
host when the operation was posted). Each flow starts with the sentinel
that gives the server back in its previous vm_state (task_state cleared,
a fault recorded) and then sets the operation's task_state; its domain
steps undo themselves on revert where that gives the previous state back;
its last step writes the vm_state and power_state it ends in.

::

    stop:    RestoreInstanceStateOnRevert, MarkInstancePoweringOff,
             ShutdownGuestAcpi, wait-for-shutdown [RetryUntilShutOff]
             (WaitForCleanShutdown), PowerOffDomain, MarkInstanceStopped
    start:   ..., MarkInstancePoweringOn, StartDomain,
             wait-for-running [RetryUntilRunning], MarkInstanceStarted
    pause:   ..., MarkInstancePausing, PauseDomain, MarkInstancePaused
    unpause: ..., MarkInstanceUnpausing, UnpauseDomain, MarkInstanceUnpaused
    suspend: ..., MarkInstanceSuspending, SuspendDomain,
             MarkInstanceSuspended
    resume:  ..., MarkInstanceResuming, ResumeDomain, wait-for-running,
             MarkInstanceResumed
"""
from taskflow.patterns import linear_flow

from vmflow import server_actions
from vmflow.flows import pieces
from vmflow.tasks import domain, instance, power


def _power_flow(action, *steps):
    flow = linear_flow.Flow(action.name)
    return flow.add(
        instance.RestoreInstanceStateOnRevert((action.task_state, None)),
        instance.MarkInstanceTaskState(action),
        *steps,
        instance.MarkInstanceDone(action, (action.task_state,)))


def get_stop_flow():
    """ACPI shutdown, up to ``[libvirt] shutdown_timeout_seconds`` for the
    guest to power off, then power off whatever still runs; a failed stop
    starts the guest again."""
    return _power_flow(server_actions.STOP,
                       *pieces.shut_down_cleanly(restart_on_revert=True))


def get_start_flow():
    return _power_flow(server_actions.START, domain.StartDomain(),
                       pieces.wait_until_running())


def get_pause_flow():
    return _power_flow(server_actions.PAUSE, power.PauseDomain())


def get_unpause_flow():
    return _power_flow(server_actions.UNPAUSE, power.UnpauseDomain())


def get_suspend_flow():
    return _power_flow(server_actions.SUSPEND, power.SuspendDomain())


def get_resume_flow():
    return _power_flow(server_actions.RESUME, power.ResumeDomain(),
                       pieces.wait_until_running())


FACTORIES = {
    server_actions.STOP.name: get_stop_flow,
    server_actions.START.name: get_start_flow,
    server_actions.PAUSE.name: get_pause_flow,
    server_actions.UNPAUSE.name: get_unpause_flow,
    server_actions.SUSPEND.name: get_suspend_flow,
    server_actions.RESUME.name: get_resume_flow,
}
