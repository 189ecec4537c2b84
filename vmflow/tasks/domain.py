"""Tasks that define, start, wait for and remove libvirt domains."""
import time

from taskflow import retry

from vmflow import conf as vmflow_conf
from vmflow import exception, instances, power_states
from vmflow.flows import constants
from vmflow.persistence import api
from vmflow.tasks import base
from vmflow.tasks.scheduling import only_caused_by

CONF = vmflow_conf.CONF


class GenerateDomainXml(base.VmflowTask):
    """Build the domain XML from the database and the disk paths (those
    the driver computes for the host when none are given).

    Reversion strategy: nothing to undo (it only computes).
    """

    default_provides = constants.DOMAIN_XML

    def execute(self, instance_uuid, host_name, disk_paths=None):
        with api.session_scope() as session:
            instance = instances.get_instance(session, instance_uuid)
            image = instances.image_of(session, instance)
        return base.get_driver(host_name).generate_xml(
            instance, image, instances.flavor_of(instance), disk_paths)


class DefineDomain(base.VmflowTask):
    """Define the domain on ``host_name`` (defining again is harmless).

    Reversion strategy: remove the domain: destroy it if something left it
    running (an active domain survives undefine as a transient one), then
    undefine it.
    """

    def execute(self, instance_uuid, host_name, domain_xml):
        return base.get_driver(host_name).define_domain(domain_xml)

    def revert(self, result, instance_uuid, host_name, **kwargs):
        if base.failed(result):
            return
        driver = base.get_driver(host_name)
        driver.destroy(instance_uuid)
        driver.undefine(instance_uuid)


class RedefineDomain(base.VmflowTask):
    """Define the domain again in place from ``domain_xml`` (regenerated
    from the database), replacing the definition on ``host_name``.

    Reversion strategy: none; a reboot never undefines a domain, so a
    failed reboot leaves a defined domain (the new definition, which is
    what the database says), never a lost machine.
    """

    def execute(self, instance_uuid, host_name, domain_xml):
        return base.get_driver(host_name).define_domain(domain_xml)


class StartDomain(base.VmflowTask):
    """Start the domain ("already-running" on a second run).

    Reversion strategy: destroy (power off) the domain.
    """

    def execute(self, instance_uuid, host_name):
        return base.get_driver(host_name).start(instance_uuid)

    def revert(self, result, instance_uuid, host_name, **kwargs):
        if base.failed(result):
            return
        base.get_driver(host_name).destroy(instance_uuid)


class WaitForDomainRunning(base.VmflowTask):
    """One short poll of the domain's power state; provides it once the
    domain runs. Before ``wait_deadline`` a domain not running yet raises
    DomainNotRunningYet, which RetryUntilRunning polls again; after it,
    DomainStartTimeout (host-level: the build moves to the next host).

    Reversion strategy: nothing to undo (it only reads).
    """

    default_provides = constants.POWER_STATE

    def execute(self, instance_uuid, host_name, wait_deadline):
        state = base.get_driver(host_name).get_power_state(instance_uuid)
        if state == power_states.RUNNING:
            return state
        if time.time() < wait_deadline:
            raise exception.DomainNotRunningYet(
                ident=instance_uuid, host=host_name, state=state)
        raise exception.DomainStartTimeout(
            ident=instance_uuid, host=host_name, state=state,
            seconds=CONF.libvirt.wait_running_seconds)


class RetryPollUntilDeadline(retry.Retry):
    """Drives a short poll task: provides ``provides``, a deadline of now +
    ``[libvirt] <seconds_option>`` (wall clock, so it survives a runner
    restart), sleeps one poll interval between polls, and retries only on
    ``not_yet``, the poll's expected "not yet". Any other failure reverts
    its subflow and leaves the decision to the retry around it.
    """

    def __init__(self, seconds_option, not_yet, provides, name=None,
                 **kwargs):
        super().__init__(name=name or type(self).__name__,
                         provides=provides, **kwargs)
        self.seconds_option = seconds_option
        self.not_yet = not_yet

    def execute(self, history, *args, **kwargs):
        if not len(history):
            return time.time() + getattr(CONF.libvirt, self.seconds_option)
        time.sleep(CONF.libvirt.poll_interval_seconds)
        return history[0][0]

    def on_failure(self, history, *args, **kwargs):
        if only_caused_by(history, self.not_yet):
            return retry.RETRY
        return retry.REVERT

    def revert(self, history, *args, **kwargs):
        return None


class RetryUntilRunning(RetryPollUntilDeadline):
    """Drives WaitForDomainRunning: provides ``wait_deadline`` after
    ``[libvirt] wait_running_seconds`` and retries on DomainNotRunningYet
    (another failure is RetryOnNextHost's decision in a build)."""

    def __init__(self, name=None, **kwargs):
        super().__init__("wait_running_seconds",
                         exception.DomainNotRunningYet,
                         constants.WAIT_DEADLINE, name=name, **kwargs)


class DestroyDomain(base.VmflowTask):
    """Power the domain off at once on each of the instance's hosts.

    Reversion strategy: none; a deleted instance is not started again, and
    running delete again finishes it.
    """

    def execute(self, instance_uuid, instance_hosts):
        return base.on_each_host(
            instance_hosts, lambda driver: driver.destroy(instance_uuid))


class UndefineDomain(base.VmflowTask):
    """Undefine the domain on each of the instance's hosts.

    Reversion strategy: none; running delete again finishes it.
    """

    def execute(self, instance_uuid, instance_hosts):
        return base.on_each_host(
            instance_hosts, lambda driver: driver.undefine(instance_uuid))
