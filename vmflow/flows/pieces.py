"""Subflows every operation builds from: named, so one flow can hold two.

* :func:`wait_until_running` -- poll the domain until it runs, the poll
  re-run by a retry controller on its expected "not yet";
* :func:`wait_until_shut_off` -- poll the domain until it is off, the
  same way;
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


def wait_until_running(tag=None):
    """A subflow that provides ``power_state`` once the domain on
    ``host_name`` runs; DomainStartTimeout after
    ``[libvirt] wait_running_seconds`` (host-level)."""
    wait = linear_flow.Flow(
        tagged(constants.WAIT_RUNNING_FLOW, tag),
        retry=domain.RetryUntilRunning(
            name=tagged(domain.RetryUntilRunning.__name__, tag)))
    return wait.add(domain.WaitForDomainRunning(
        name=tagged(domain.WaitForDomainRunning.__name__, tag)))


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


def try_on_each_host(*steps, name=constants.BUILD_ON_HOST_FLOW, tag=None):
    """A subflow running ``steps`` with ``host_name`` set to each of
    ``host_candidates`` in turn, until they succeed on one (or a failure
    that is not host-level reverts the whole flow)."""
    on_host = linear_flow.Flow(
        tagged(name, tag),
        retry=scheduling.RetryOnNextHost(
            name=tagged(scheduling.RetryOnNextHost.__name__, tag)))
    return on_host.add(*steps)
