"""libvirt's domain lifecycle events as vmflow power states.

:func:`watch` subscribes a host's listener to its connection (see
:meth:`.connection.LibvirtConnection.add_listener`): each lifecycle event
that says where a domain's power went is handed on as one of
:mod:`vmflow.power_states`; events that do not (defined, undefined, the
guest began shutting down) are dropped. The hypervisor stays the
authority: listeners read the state again before they act on an event
(events of one domain may arrive out of order with its state).
"""
import libvirt

from vmflow import power_states

LIFECYCLE_POWER_STATES = {
    libvirt.VIR_DOMAIN_EVENT_STARTED: power_states.RUNNING,
    libvirt.VIR_DOMAIN_EVENT_RESUMED: power_states.RUNNING,
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: power_states.PAUSED,
    libvirt.VIR_DOMAIN_EVENT_STOPPED: power_states.SHUTDOWN,
    libvirt.VIR_DOMAIN_EVENT_CRASHED: power_states.CRASHED,
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: power_states.SUSPENDED,
}


def power_state_of_event(event):
    """The power state a lifecycle event leads to, or None."""
    return LIFECYCLE_POWER_STATES.get(event)


def watch(connection, key, on_power_event, on_connection_lost):
    """Hand ``connection``'s lifecycle events to ``on_power_event(
    instance_uuid, power_state)`` (a domain's uuid is its instance's) and
    its loss to ``on_connection_lost(reason)``, under ``key``."""
    def on_domain_event(domain_uuid, event, _detail):
        state = power_state_of_event(event)
        if state is not None:
            on_power_event(domain_uuid, state)

    connection.add_listener(key, on_domain_event, on_connection_lost)
