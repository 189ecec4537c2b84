"""Exception hierarchy.

Two families hang off :class:`VmflowError`:

* :class:`RescheduleableError` -- a failure bound to one host; another host
  may well succeed, so a build moves on to the next alternate.
* everything else -- a failure no other host can fix (bad input, quota,
  unknown flavor); the operation stops and reverts at once.
"""


class VmflowError(Exception):
    """Root of every error vmflow raises on purpose."""

    msg_fmt = "An unknown error occurred."

    def __init__(self, message=None, **kwargs):
        self.kwargs = kwargs
        if message is None:
            message = self.msg_fmt % kwargs
        super().__init__(message)

    def __str__(self):
        # Errors are printed as one line by the CLI: fold any newline that a
        # lower layer (libvirt, qemu-img, ssh) put into its message.
        return " ".join(super().__str__().split())


class InvalidInput(VmflowError):
    msg_fmt = "invalid input: %(reason)s"


class InvalidName(InvalidInput):
    msg_fmt = "invalid name %(name)r: %(reason)s"


class InvalidConfig(VmflowError):
    msg_fmt = "invalid configuration: %(reason)s"


class NotFound(VmflowError):
    msg_fmt = "%(kind)s %(name)r not found"


class AlreadyExists(VmflowError):
    msg_fmt = "%(kind)s %(name)r already exists"


class InUse(VmflowError):
    msg_fmt = "%(kind)s %(name)r is in use: %(reason)s"


class MissingExtra(VmflowError):
    """A configured backend needs an optional package that is not installed."""

    msg_fmt = ("%(what)s needs the Python package %(package)s, which is not "
               "installed: pip install 'vmflow[%(extra)s]'")


class JobBoardUnavailable(VmflowError):
    msg_fmt = "job board %(board)s is unreachable: %(reason)s"


class DatabaseNotReady(VmflowError):
    msg_fmt = ("database %(url)s is not at the current schema "
               "(%(reason)s); run 'vmflow db sync'")


class DatabaseMissing(VmflowError):
    msg_fmt = "database %(url)s does not exist; run 'vmflow db sync'"


class DatabaseUnavailable(VmflowError):
    msg_fmt = "cannot use database %(url)s: %(reason)s"


class RescheduleableError(VmflowError):
    """A host-level failure: try the next alternate host."""


class HypervisorUnavailable(RescheduleableError):
    msg_fmt = "hypervisor at %(uri)s is unavailable: %(reason)s"


class DomainNotFound(VmflowError):
    msg_fmt = "domain %(ident)s not found on %(uri)s"


class GuestOperationFailed(RescheduleableError):
    msg_fmt = "%(operation)s of domain %(ident)s failed: %(reason)s"


class ImageBackendError(RescheduleableError):
    msg_fmt = "disk operation failed: %(reason)s"


class CommandFailed(ImageBackendError):
    msg_fmt = "command %(command)s failed with status %(status)s: %(stderr)s"


class RemoteConnectionError(RescheduleableError):
    msg_fmt = "cannot reach %(target)s over SSH: %(reason)s"


class HostKeyMismatch(RemoteConnectionError):
    msg_fmt = "SSH host key of %(target)s is not trusted: %(reason)s"


class NoValidHost(VmflowError):
    """No host passed the filters; ``reasons`` maps host name to why."""

    def __init__(self, reasons):
        self.reasons = dict(reasons)
        if self.reasons:
            detail = "; ".join(f"{host}: {why}"
                               for host, why in sorted(self.reasons.items()))
        else:
            detail = "no hosts are registered"
        super().__init__(f"no valid host was found ({detail})")


class FlavorDiskTooSmall(InvalidInput):
    msg_fmt = ("flavor %(flavor)s has a %(disk_gb)s GiB disk, smaller than "
               "%(what)s (%(needed)s)")


class ChecksumMismatch(ImageBackendError):
    msg_fmt = ("copy of %(source)s to %(target)s is corrupt: sha256 "
               "%(source_sha256)s on the source, %(target_sha256)s on the "
               "destination")


class QuotaExceeded(VmflowError):
    msg_fmt = ("quota exceeded for %(resource)s in project %(project)s: "
               "limit %(limit)s, in use %(in_use)s, requested %(requested)s")


class ClaimFailed(RescheduleableError):
    msg_fmt = "cannot claim resources on host %(host)s: %(reason)s"


class UnexpectedTaskState(VmflowError):
    msg_fmt = ("instance %(uuid)s has task_state %(actual)r, expected "
               "%(expected)s")


class DomainNotRunningYet(RescheduleableError):
    """The poll's expected "not yet": its retry controller polls again."""

    msg_fmt = "domain %(ident)s on host %(host)s is %(state)s, not running yet"


class DomainStartTimeout(RescheduleableError):
    msg_fmt = ("domain %(ident)s on host %(host)s is %(state)s, not running, "
               "after %(seconds)s s")


class DomainNotShutOffYet(VmflowError):
    """A poll's expected "not yet": its retry controller polls again."""
    msg_fmt = ("domain %(ident)s on host %(host)s is %(state)s, not shut "
               "off yet")


class GuestIgnoredShutdown(VmflowError):
    msg_fmt = ("guest %(ident)s on host %(host)s is still %(state)s "
               "%(seconds)s s after an ACPI shutdown request")


class InjectedFault(RescheduleableError):
    """Raised by the test hooks of vmflow.tasks.hooks (VMFLOW_FAIL_AT...)."""

    msg_fmt = "injected fault in %(task)s %(phase)s"


class InstanceBusy(VmflowError):
    """Another operation holds the instance's lock (one at a time)."""

    msg_fmt = ("instance %(instance)s is busy: %(action)s is running "
               "(job %(job)s, request %(request_id)s); try again when it "
               "has finished")


class MigrationInvalidState(VmflowError):
    msg_fmt = ("migration %(migration)s is %(status)s: it cannot become "
               "%(wanted)s (only from %(allowed)s)")


class InstanceInvalidState(VmflowError):
    """The operation makes no sense in the server's state (refused before
    anything changed)."""
    msg_fmt = ("cannot %(action)s server %(server)r: it is %(state)s; "
               "%(action)s needs %(allowed)s")


class OperationTimeout(VmflowError):
    msg_fmt = ("job %(job)s did not end within %(seconds)s s (running: "
               "%(steps)s); it goes on: see 'vmflow job show %(job)s'")


class OperationFailed(VmflowError):
    msg_fmt = "%(action)s of server %(server)s failed: %(reason)s"


class OperationInterrupted(VmflowError):
    msg_fmt = ("interrupted: job %(job)s stopped after its current step and "
               "was left on the job board; a vmflow-engine resumes it (see "
               "'vmflow job show %(job)s')")


class StoppedWaiting(VmflowError):
    msg_fmt = ("stopped waiting: job %(job)s goes on in a vmflow-engine; "
               "see 'vmflow job show %(job)s'")
