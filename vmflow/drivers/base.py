"""The operations a hypervisor driver offers to the flows.

Arguments and results are plain JSON-serialisable data (dicts, strings,
ids), so tasks can store them. ``instance`` has ``uuid`` and ``name``;
``flavor`` has ``vcpus``, ``ram_mb`` and ``disk_gb``; ``image`` has
``uuid`` (or ``id``), ``name``, ``file``, ``disk_format`` and optionally
``kernel``, ``initrd``, ``cmdline``.

Every mutating operation is idempotent and returns what it did (for
example ``"destroyed"`` or ``"already-off"``), because a task that was
running when its process died is executed again.
"""
import abc

CONSOLE_TAIL_BYTES = 64 * 1024


class ComputeDriver(abc.ABC):
    """One hypervisor host."""

    # -- host ---------------------------------------------------------------

    @abc.abstractmethod
    def health_check(self):
        """Dict describing the hypervisor; raises HypervisorUnavailable."""

    @abc.abstractmethod
    def watch_events(self, key, on_power_event, on_connection_lost):
        """Subscribe to this host's events under ``key`` (adding a key
        again replaces its callbacks): ``on_power_event(instance_uuid,
        power_state)`` when a domain's power changes (one of
        :mod:`vmflow.power_states`; read the state again before acting:
        events may be late), ``on_connection_lost(reason)`` when the
        connection to the hypervisor is lost. Both run on the driver's
        event thread: they must only queue what they hear. Connects now
        and raises HypervisorUnavailable when the hypervisor does not
        answer; after a loss, call it again to subscribe anew."""

    @abc.abstractmethod
    def unwatch_events(self, key):
        """End ``key``'s subscription (nothing when there is none)."""

    # -- disks --------------------------------------------------------------

    @abc.abstractmethod
    def create_disks(self, instance, image, flavor):
        """Cache the image on the host and create the instance's disk.

        Returns a dict of host paths (``disk``, ``kernel``, ``initrd``,
        ``console_log``, ...) and what was created.
        """

    @classmethod
    @abc.abstractmethod
    def probe_disk_file(cls, path):
        """What the disk tools say of a file on this machine (``format``,
        ``virtual-size``, ``backing-filename``, ... as qemu-img names
        them); ImageBackendError when it is not a readable image."""

    @abc.abstractmethod
    def remove_disks(self, instance_uuid):
        """Delete the instance's files: ``"removed"`` or ``"absent"``."""

    @abc.abstractmethod
    def resize_disk(self, instance_uuid, size_gb):
        """Grow the instance's disk: ``"resized"`` or ``"unchanged"``."""

    @abc.abstractmethod
    def cache_image(self, image):
        """Make the image's base files available on this host (copied
        once, checksum compared)."""

    @abc.abstractmethod
    def receive_disk(self, instance_uuid, source):
        """Copy the instance's disk from the driver ``source`` (another
        host) to this host, streamed and checksum compared."""

    @abc.abstractmethod
    def rebase_disk(self, instance_uuid, image):
        """Point the instance's disk at this host's copy of the image."""

    @abc.abstractmethod
    def missing_image_bytes(self, image):
        """Bytes of the image's files this host does not cache yet."""

    @abc.abstractmethod
    def free_disk_bytes(self):
        """Bytes free under this host's instances path."""

    @abc.abstractmethod
    def stash_disk(self, instance_uuid):
        """Keep a copy of the instance's disk aside (a resize in place)."""

    @abc.abstractmethod
    def restore_stashed_disk(self, instance_uuid):
        """Put the stashed copy back as the instance's disk."""

    @abc.abstractmethod
    def remove_stashed_disk(self, instance_uuid):
        """Remove the stashed copy (a confirmed resize in place)."""

    @abc.abstractmethod
    def disk_info(self, instance_uuid):
        """What qemu-img says about the instance's disk."""

    @abc.abstractmethod
    def instance_dir_exists(self, instance_uuid):
        """True when the instance has files on this host."""

    @abc.abstractmethod
    def list_instance_dirs(self):
        """Instance uuids that have files on this host (for audits)."""

    @abc.abstractmethod
    def console_log_path(self, instance_uuid):
        """Host path of the instance's serial console log."""

    @abc.abstractmethod
    def read_console_log(self, instance_uuid, max_bytes=CONSOLE_TAIL_BYTES):
        """The last ``max_bytes`` of the serial console log, as text."""

    # -- domains ------------------------------------------------------------

    @abc.abstractmethod
    def generate_xml(self, instance, image, flavor, disks=None):
        """Domain XML for the instance (from the database, not the host)."""

    @abc.abstractmethod
    def define_domain(self, xml):
        """Define (or redefine) the domain; returns its uuid."""

    @abc.abstractmethod
    def start(self, instance_uuid, paused=False):
        """``"started"``, ``"started-paused"``, ``"already-running"``, ..."""

    @abc.abstractmethod
    def shutdown_acpi(self, instance_uuid):
        """Press the power button: ``"requested"`` or ``"already-off"``."""

    @abc.abstractmethod
    def destroy(self, instance_uuid):
        """Power off at once: ``"destroyed"``, ``"already-off"`` or
        ``"not-found"``."""

    @abc.abstractmethod
    def undefine(self, instance_uuid):
        """Remove the definition: ``"undefined"`` or
        ``"already-undefined"``."""

    @abc.abstractmethod
    def pause(self, instance_uuid):
        """``"paused"`` or ``"already-paused"``."""

    @abc.abstractmethod
    def resume(self, instance_uuid):
        """``"resumed"`` or ``"already-running"``."""

    @abc.abstractmethod
    def managed_save(self, instance_uuid):
        """Suspend to disk: ``"saved"`` or ``"already-saved"``."""

    @abc.abstractmethod
    def has_managed_save(self, instance_uuid):
        """True when starting the domain restores a saved memory image."""

    @abc.abstractmethod
    def get_power_state(self, instance_uuid):
        """One of :mod:`vmflow.power_states` (the driver maps its
        hypervisor's states onto them), or
        DomainNotFound when the domain does not exist."""

    @abc.abstractmethod
    def get_domain_id(self, instance_uuid):
        """Hypervisor id of the running domain, -1 when it is off."""

    def list_power_states(self):
        """``{instance uuid: power state}`` of vmflow's domains here."""
        return {domain["instance_uuid"]: domain["state"]
                for domain in self.list_domains()
                if domain["instance_uuid"] is not None}

    @abc.abstractmethod
    def list_domains(self):
        """``[{uuid, name, instance_uuid, state}]`` for audits:
        ``instance_uuid`` is None for a domain that is not vmflow's,
        ``state`` one of :mod:`vmflow.power_states`."""
