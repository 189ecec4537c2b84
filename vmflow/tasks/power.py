"""Tasks that change a domain's power state on the instance's host.

Every task here acts on ``host_name`` (the instance's host, given when
the operation is posted) and is safe to run again: the driver's power
operations say "already-..." when the domain is where they would put it.
The waits are short polls driven by :class:`RetryUntilShutOff`, whose
deadline is wall-clock time, so it survives a runner restart.
"""
import time

from vmflow import conf as vmflow_conf
from vmflow import exception, power_states
from vmflow.flows import constants
from vmflow.tasks import base, domain

CONF = vmflow_conf.CONF


class _RestartsOnRevert(base.VmflowTask):
    """A step that may power the guest off; ``restart_on_revert`` (a
    stop's steps) starts it again when the flow reverts."""

    def __init__(self, restart_on_revert=False, **kwargs):
        super().__init__(**kwargs)
        self.restart_on_revert = restart_on_revert

    def restart(self, instance_uuid, host_name):
        if self.restart_on_revert:
            base.get_driver(host_name).start(instance_uuid)


class ShutdownGuestAcpi(_RestartsOnRevert):
    """Press the ACPI power button if the domain runs (a guest already off
    is left as it is). Provides ``acpi_shutdown``: what the driver did and
    the domain id before (a soft reboot tells a guest that rebooted by
    itself by its new id).

    Reversion strategy: in a stop (``restart_on_revert``), start the guest
    again if this task asked it to shut down, which gives the server back
    running; in a reboot none, since its fallback (or its ERROR) decides.
    """

    default_provides = constants.ACPI_SHUTDOWN

    def execute(self, instance_uuid, host_name):
        driver = base.get_driver(host_name)
        domain_id = driver.get_domain_id(instance_uuid)
        return {"result": driver.shutdown_acpi(instance_uuid),
                "domain_id": domain_id}

    def revert(self, result, instance_uuid, host_name, **kwargs):
        if not base.failed(result) and result["result"] == "requested":
            self.restart(instance_uuid, host_name)


class RetryUntilShutOff(domain.RetryPollUntilDeadline):
    """Drives one wait-for-shutdown poll: provides ``shutdown_deadline``
    after the ``[libvirt]`` option ``seconds_option`` and retries on
    DomainNotShutOffYet (another failure is the enclosing flow's decision:
    a soft reboot's fallback)."""

    def __init__(self, seconds_option, name=None, **kwargs):
        super().__init__(seconds_option, exception.DomainNotShutOffYet,
                         constants.SHUTDOWN_DEADLINE, name=name, **kwargs)


def _is_off(state):
    return state in (power_states.SHUTDOWN, power_states.CRASHED)


class WaitForCleanShutdown(base.VmflowTask):
    """One poll of a stop's wait: provides ``clean_shutdown`` True once the
    domain is off, False when ``shutdown_deadline`` passed first (the
    next step then powers it off); DomainNotShutOffYet before that.

    Reversion strategy: nothing to undo (it only reads).
    """

    default_provides = constants.CLEAN_SHUTDOWN

    def execute(self, instance_uuid, host_name, shutdown_deadline):
        state = base.get_driver(host_name).get_power_state(instance_uuid)
        if _is_off(state):
            return True
        if time.time() < shutdown_deadline:
            raise exception.DomainNotShutOffYet(
                ident=instance_uuid, host=host_name, state=state)
        return False


class WaitForGuestReboot(base.VmflowTask):
    """One poll of a soft reboot's wait: provides ``guest_went_down``,
    "shut-off" once the domain is off or "rebooted" when it runs with a
    new domain id (the guest rebooted by itself: nothing is recreated);
    DomainNotShutOffYet before ``shutdown_deadline``, GuestIgnoredShutdown
    after it (the reboot falls back to a hard one).

    Reversion strategy: nothing to undo (it only reads).
    """

    default_provides = constants.GUEST_WENT_DOWN

    def execute(self, instance_uuid, host_name, acpi_shutdown,
                shutdown_deadline):
        driver = base.get_driver(host_name)
        state = driver.get_power_state(instance_uuid)
        if _is_off(state):
            return "shut-off"
        domain_id = driver.get_domain_id(instance_uuid)
        if (state == power_states.RUNNING and acpi_shutdown["domain_id"] > 0
                and domain_id != acpi_shutdown["domain_id"]):
            return "rebooted"
        if time.time() < shutdown_deadline:
            raise exception.DomainNotShutOffYet(
                ident=instance_uuid, host=host_name, state=state)
        raise exception.GuestIgnoredShutdown(
            ident=instance_uuid, host=host_name, state=state,
            seconds=CONF.libvirt.wait_soft_reboot_seconds)


class PowerOffDomain(_RestartsOnRevert):
    """Power the domain off at once ("already-off" when it is off).

    Reversion strategy: in a stop (``restart_on_revert``), start the guest
    again if this task powered it off; in a hard reboot none (a failed
    hard reboot leaves the guest off and the server in ERROR, from which
    another hard reboot starts over).
    """

    def execute(self, instance_uuid, host_name):
        return base.get_driver(host_name).destroy(instance_uuid)

    def revert(self, result, instance_uuid, host_name, **kwargs):
        if not base.failed(result) and result == "destroyed":
            self.restart(instance_uuid, host_name)


class _UndoableDomainStep(base.VmflowTask):
    """A power step undone by its inverse: ``execute`` calls the driver's
    ``operation``; ``revert`` calls ``undo`` when the result was ``done``
    (not an "already ..." outcome: then this step changed nothing)."""

    operation = done = undo = None

    def execute(self, instance_uuid, host_name):
        driver = base.get_driver(host_name)
        return getattr(driver, self.operation)(instance_uuid)

    def revert(self, result, instance_uuid, host_name, **kwargs):
        if base.failed(result) or result != self.done:
            return
        getattr(base.get_driver(host_name), self.undo)(instance_uuid)


class PauseDomain(_UndoableDomainStep):
    """Pause the running domain (its vCPUs stop, memory stays).

    Reversion strategy: unpause it, if this task paused it.
    """

    operation, done, undo = "pause", "paused", "resume"


class UnpauseDomain(_UndoableDomainStep):
    """Let the paused domain run again.

    Reversion strategy: pause it again, if this task unpaused it.
    """

    operation, done, undo = "resume", "resumed", "pause"


class SuspendDomain(_UndoableDomainStep):
    """Save the domain's memory to disk and stop it (a managed save).

    Reversion strategy: start it again from the saved image, if this task
    saved it.
    """

    operation, done, undo = "managed_save", "saved", "start"


class ResumeDomain(_UndoableDomainStep):
    """Start the domain from its managed save image (a domain whose image
    is gone boots afresh, as a start would).

    Reversion strategy: save it to disk again, if this task started it.
    """

    operation, done, undo = "start", "started", "managed_save"
