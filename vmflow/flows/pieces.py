"""Subflows every operation builds from: named, so one flow can hold two.

* :func:`wait_until_running` -- poll the domain until it runs, the poll
  re-run by a retry controller on its expected "not yet";
* :func:`wait_until_shut_off` -- poll the domain until it is off, the
  same way; :func:`shut_down_cleanly` -- ACPI first, then power off;
* :func:`try_on_each_host` -- run steps on the first candidate host,
  reverting them and moving to the next on a host-level failure.

A piece's default names are the build's, which persisted jobs carry: a
second piece of the same kind in one flow passes a ``tag``, which suffixes
the subflow's name and its atoms' names (``WaitForDomainRunning-<tag>``).
"""
from taskflow.patterns import linear_flow

from vmflow.flows import constants
from vmflow.tasks import domain, power, scheduling


def tagged(name, tag=None):
    """``name``, or ``name-tag`` for a second piece of a kind."""
    return f"{name}-{tag}" if tag else name


def wait_until_running(tag=None, poll=domain.WaitForDomainRunning,
                       rebind=None):
    """A subflow that provides ``power_state`` once the domain on
    ``host_name`` runs; DomainStartTimeout after
    ``[libvirt] wait_running_seconds`` (host-level). ``poll`` is the poll
    task's class, ``rebind`` its TaskFlow rebind (e.g. ``host_name`` from
    another store key)."""
    wait = linear_flow.Flow(
        tagged(constants.WAIT_RUNNING_FLOW, tag),
        retry=domain.RetryUntilRunning(
            name=tagged(domain.RetryUntilRunning.__name__, tag)))
    return wait.add(poll(name=tagged(poll.__name__, tag), rebind=rebind))


def shut_down_cleanly(restart_on_revert):
    """The steps that power a guest off: ACPI power button, up to
    ``[libvirt] shutdown_timeout_seconds`` for it to go off, then power
    off whatever still runs. With ``restart_on_revert`` a failure later in
    the flow starts the guest again."""
    return [power.ShutdownGuestAcpi(restart_on_revert=restart_on_revert),
            wait_until_shut_off(power.WaitForCleanShutdown(),
                                "shutdown_timeout_seconds"),
            power.PowerOffDomain(restart_on_revert=restart_on_revert)]


def wait_until_shut_off(poll, seconds_option, tag=None):
    """A subflow that runs ``poll`` (a task raising DomainNotShutOffYet
    until the domain on ``host_name`` is off) until it returns or
    ``[libvirt] seconds_option`` passed (``poll`` decides what then)."""
    wait = linear_flow.Flow(
        tagged(constants.WAIT_SHUTDOWN_FLOW, tag),
        retry=power.RetryUntilShutOff(
            seconds_option,
            name=tagged(power.RetryUntilShutOff.__name__, tag)))
    return wait.add(poll)


def try_on_each_host(*steps, name=constants.BUILD_ON_HOST_FLOW, tag=None,
                     provides=constants.HOST_NAME):
    """A subflow running ``steps`` with ``provides`` (``host_name``) set to
    each of ``host_candidates`` in turn, until they succeed on one (or a
    failure that is not host-level reverts the whole flow)."""
    on_host = linear_flow.Flow(
        tagged(name, tag),
        retry=scheduling.RetryOnNextHost(
            name=tagged(scheduling.RetryOnNextHost.__name__, tag),
            provides=provides))
    return on_host.add(*steps)
