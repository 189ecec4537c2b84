"""Guest: one libvirt domain and the power operations on it.

Every operation is idempotent and says what it did, because a task that
was running when its process died is executed again: destroying a domain
that is already off returns ``"already-off"``, undefining one that is gone
returns ``"already-undefined"``. The state is checked first and checked
again when libvirt refuses, so a race with the guest (it powered off by
itself meanwhile) is not an error either.

libvirt errors become vmflow exceptions: a missing domain is
:class:`~vmflow.exception.DomainNotFound`, a broken connection
:class:`~vmflow.exception.HypervisorUnavailable`, anything else
:class:`~vmflow.exception.GuestOperationFailed`.
"""
import contextlib

import libvirt

from vmflow import exception, power_states
from vmflow.drivers.libvirt import config
from vmflow.drivers.libvirt.connection import error_text, is_connection_error

# libvirt's domain states onto vmflow's (Nova's) power states. A blocked
# domain waits on a resource but runs; one shutting down still counts as
# shutdown, as in Nova (callers that must know use is_active()).
POWER_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: power_states.NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: power_states.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: power_states.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: power_states.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: power_states.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: power_states.SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: power_states.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: power_states.SUSPENDED,
}
_UNDEFINE_FLAGS = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                   | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)


def _is_unsupported_flags(exc):
    """The driver (e.g. test:///default) rejects a flag it does not know."""
    return (exc.get_error_code() in (libvirt.VIR_ERR_INVALID_ARG,
                                     libvirt.VIR_ERR_NO_SUPPORT)
            and "flags" in error_text(exc))


def translate_error(exc, operation, ident, uri):
    if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
        return exception.DomainNotFound(ident=ident, uri=uri)
    if is_connection_error(exc):
        return exception.HypervisorUnavailable(uri=uri,
                                               reason=error_text(exc))
    return exception.GuestOperationFailed(operation=operation, ident=ident,
                                          reason=error_text(exc))


@contextlib.contextmanager
def libvirt_errors(operation, ident, uri):
    """Raise the vmflow exception matching a libvirtError in the block."""
    try:
        yield
    except libvirt.libvirtError as exc:
        raise translate_error(exc, operation, ident, uri) from None


class Guest:
    """A libvirt domain (``virDomain``) found on ``uri``."""

    def __init__(self, domain, uri):
        self._domain = domain
        self.uri = uri
        self.uuid = domain.UUIDString()
        self.name = domain.name()

    def __repr__(self):
        return f"Guest({self.name!r}, {self.uuid})"

    def _call(self, operation, method, *args):
        with libvirt_errors(operation, self.uuid, self.uri):
            return method(*args)

    # -- reading ----------------------------------------------------------

    def power_state(self):
        """One of :mod:`vmflow.power_states` (see POWER_STATES)."""
        state, _reason = self._call("state query", self._domain.state)
        return POWER_STATES.get(state, power_states.NOSTATE)

    def is_active(self):
        return bool(self._call("state query", self._domain.isActive))

    def domain_id(self):
        """The hypervisor's id of the running domain; -1 when it is off."""
        return self._call("id query", self._domain.ID)

    def xml(self, flags=0):
        return self._call("XML read", self._domain.XMLDesc, flags)

    def has_managed_save(self):
        return bool(self._call("managed save query",
                               self._domain.hasManagedSaveImage, 0))

    def instance_uuid(self):
        """The vmflow instance uuid in the domain's metadata, or None."""
        try:
            element = self._domain.metadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT, config.VMFLOW_NAMESPACE)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                return None
            raise translate_error(exc, "metadata read", self.uuid,
                                  self.uri) from None
        return config.instance_uuid_from_metadata(element)

    def console_log_path(self):
        """Path of the file the serial console writes to, or None."""
        return config.serial_log_path_from_xml(self.xml())

    def describe(self):
        """Plain dict for audits: uuid, name, instance_uuid, state."""
        return {"uuid": self.uuid, "name": self.name,
                "instance_uuid": self.instance_uuid(),
                "state": self.power_state()}

    # -- power operations -------------------------------------------------

    def start(self, paused=False):
        """Boot (or restore the managed save of) the domain.

        Returns 'started', 'started-paused', 'already-running' or
        'already-paused'.
        """
        already = self._already_started()
        if already:
            return already
        try:
            self._create(paused)
        except exception.GuestOperationFailed:
            already = self._already_started()
            if already:  # it got started meanwhile
                return already
            raise
        return "started-paused" if paused else "started"

    def _already_started(self):
        state = self.power_state()
        if state == power_states.PAUSED:
            return "already-paused"
        if state == power_states.RUNNING:
            return "already-running"
        return None

    def _create(self, paused):
        if not paused:
            self._call("start", self._domain.create)
            return
        try:
            self._domain.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
        except libvirt.libvirtError as exc:
            if not _is_unsupported_flags(exc):
                raise translate_error(exc, "start", self.uuid,
                                      self.uri) from None
            # Drivers without START_PAUSED (the test driver): start, pause.
            self._call("start", self._domain.create)
            self._call("pause", self._domain.suspend)

    def shutdown_acpi(self):
        """Press the ACPI power button: 'requested' or 'already-off'.

        The guest decides whether (and when) it powers off; callers poll
        the state. Drivers that reject the ACPI mode flag get a plain
        shutdown request, which QEMU also delivers as ACPI when no guest
        agent is configured.
        """
        if not self.is_active():
            return "already-off"
        try:
            self._domain.shutdownFlags(
                libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        except libvirt.libvirtError as exc:
            if not _is_unsupported_flags(exc):
                return self._unless_already(exc, "shutdown", self._off)
            try:
                self._domain.shutdown()
            except libvirt.libvirtError as exc:
                return self._unless_already(exc, "shutdown", self._off)
        return "requested"

    def destroy(self):
        """Power off at once: 'destroyed' or 'already-off'."""
        return self._transition("destroy", self._domain.destroy, self._off,
                                "destroyed")

    def pause(self):
        """'paused' or 'already-paused'; a domain that is off cannot pause."""
        return self._transition("pause", self._domain.suspend, self._paused,
                                "paused")

    def resume(self):
        """'resumed' or 'already-running'; a domain that is off cannot."""
        return self._transition("resume", self._domain.resume,
                                self._running, "resumed")

    def managed_save(self):
        """Save memory to disk and stop: 'saved' or 'already-saved'."""
        return self._transition("managed save",
                                lambda: self._domain.managedSave(0),
                                self._saved, "saved")

    def _transition(self, operation, call, already, done):
        """``call()`` unless ``already()`` says the domain is there; returns
        that "already ..." outcome, or ``done``."""
        outcome = already()
        if outcome:
            return outcome
        try:
            call()
        except libvirt.libvirtError as exc:
            return self._unless_already(exc, operation, already)
        return done

    # Each returns the "already ..." outcome when the domain is there.

    def _off(self):
        return None if self.is_active() else "already-off"

    def _paused(self):
        return ("already-paused"
                if self.power_state() == power_states.PAUSED else None)

    def _running(self):
        return ("already-running"
                if self.power_state() == power_states.RUNNING else None)

    def _saved(self):
        if not self.is_active() and self.has_managed_save():
            return "already-saved"
        return None

    def _unless_already(self, exc, operation, already):
        """libvirt refused ``operation``: fine if the domain meanwhile got
        where we wanted it (the guest raced us), else raise."""
        if not is_connection_error(exc):
            outcome = already()
            if outcome:
                return outcome
        raise translate_error(exc, operation, self.uuid, self.uri) from None

    def undefine(self):
        """Remove the definition and any managed save image.

        Returns 'undefined' or 'already-undefined'. A running domain stays
        running as a transient one until destroyed: destroy first.
        """
        try:
            self._undefine_with_fallback()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return "already-undefined"
            raise translate_error(exc, "undefine", self.uuid,
                                  self.uri) from None
        return "undefined"

    def _undefine_with_fallback(self):
        try:
            self._domain.undefineFlags(_UNDEFINE_FLAGS)
        except libvirt.libvirtError as exc:
            if not _is_unsupported_flags(exc):
                raise
            # No NVRAM support in this driver: nothing to remove there.
            self._domain.undefineFlags(
                libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)


# -- lookups ----------------------------------------------------------------


def define(connection, xml):
    """Define (or redefine) a persistent domain from ``xml``; a Guest."""
    conn = connection.get()
    ident = config.domain_uuid_from_xml(xml) or "(new)"
    with libvirt_errors("define", ident, connection.uri):
        return Guest(conn.defineXML(xml), connection.uri)


def lookup(connection, uuid):
    """The Guest with domain ``uuid``; DomainNotFound when there is none."""
    conn = connection.get()
    with libvirt_errors("lookup", uuid, connection.uri):
        return Guest(conn.lookupByUUIDString(uuid), connection.uri)


def find(connection, uuid):
    """Like :func:`lookup` but None when the domain does not exist."""
    try:
        return lookup(connection, uuid)
    except exception.DomainNotFound:
        return None


def list_guests(connection):
    """Every domain (active and inactive) on the connection."""
    conn = connection.get()
    with libvirt_errors("list", "*", connection.uri):
        domains = conn.listAllDomains(0)
    guests = []
    for domain in domains:
        try:
            guests.append(Guest(domain, connection.uri))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                raise translate_error(exc, "list", "*",
                                      connection.uri) from None
    return guests
