"""LibvirtDriver: one host's libvirtd plus its instances path.

``host`` is a plain dict as stored by the inventory: ``name``, ``uri``,
``instances_path``, ``ssh_user``, ``ssh_host``, ``ssh_port``. A host
without ``ssh_host`` has its disks on this machine; otherwise disk
operations run over SSH.

A domain's uuid is its instance's uuid and its name is
``<domain_name_prefix><instance uuid>``, so lookups need nothing but the
instance, and two instances can never share a domain.
"""
import hashlib
import os
import tempfile
import time

from vmflow import conf as vmflow_conf
from vmflow import exception
from vmflow.drivers import base
from vmflow.drivers.libvirt import config
from vmflow.drivers.libvirt import connection as libvirt_connection
from vmflow.drivers.libvirt import events as libvirt_events
from vmflow.drivers.libvirt import guest as libvirt_guest
from vmflow.drivers.libvirt import imagebackend
from vmflow.drivers.remote import runner as remote_runner

CONF = vmflow_conf.CONF
DEFAULT_DOMAIN_NAME_PREFIX = "vmflow-"
DEFAULT_CMDLINE = "console=ttyS0"


def mac_address_for(instance_uuid):
    """A stable locally administered MAC (QEMU's 52:54:00 prefix), so the
    guest keeps its MAC when the XML is regenerated."""
    digest = hashlib.sha1(instance_uuid.encode()).digest()
    return "52:54:00:" + ":".join(f"{byte:02x}" for byte in digest[:3])


class LibvirtDriver(base.ComputeDriver):

    def __init__(self, host, runner=None, virt_type=None,
                 domain_name_prefix=DEFAULT_DOMAIN_NAME_PREFIX):
        self.host = dict(host)
        self.uri = host["uri"]
        self.virt_type = virt_type or CONF.libvirt.virt_type
        self.domain_name_prefix = domain_name_prefix
        self.runner = runner or remote_runner.runner_for_host(host)
        instances_path = (host.get("instances_path")
                          or os.path.join(CONF.state_path, "instances"))
        self.images = imagebackend.ImageBackend(self.runner, instances_path)

    def __repr__(self):
        return f"LibvirtDriver({self.host.get('name')!r}, {self.uri!r})"

    @property
    def connection(self):
        return libvirt_connection.get_connection(self.uri)

    def health_check(self):
        return dict(self.connection.health_check(),
                    host=self.host.get("name"))

    def watch_events(self, key, on_power_event, on_connection_lost):
        libvirt_events.watch(self.connection, key, on_power_event,
                             on_connection_lost)

    def unwatch_events(self, key):
        self.connection.remove_listener(key)

    # -- disks ------------------------------------------------------------

    def disk_paths(self, instance, image):
        """Host paths of an instance's files, computed, nothing touched."""
        uuid = instance["uuid"]
        return dict(self.images.image_paths(image),
                    instance_dir=self.images.instance_dir(uuid),
                    disk=self.images.disk_path(uuid), disk_format="qcow2",
                    console_log=self.images.console_log_path(uuid))

    def create_disks(self, instance, image, flavor):
        """Base image (cached) + overlay of ``flavor['disk_gb']`` GiB.

        Safe to run again: existing files are kept. Returns
        :meth:`disk_paths` plus ``created``, the paths written now.
        """
        cached = self.images.ensure_base_image(image)
        overlay = self.images.create_overlay(
            instance["uuid"], cached["base"], cached["base_format"],
            flavor.get("disk_gb"))
        self.images.touch_console_log(instance["uuid"])
        created = list(cached["copied"])
        if overlay["created"]:
            created.append(overlay["path"])
        return dict(self.disk_paths(instance, image), created=created)

    @classmethod
    def probe_disk_file(cls, path):
        probe = imagebackend.ImageBackend(remote_runner.LocalRunner(), "/")
        return probe.disk_info(path)

    def remove_disks(self, instance_uuid):
        return self.images.remove_instance_files(instance_uuid)

    def resize_disk(self, instance_uuid, size_gb):
        return self.images.resize_disk(self.images.disk_path(instance_uuid),
                                       size_gb)

    def cache_image(self, image):
        return self.images.ensure_base_image(image)

    def receive_disk(self, instance_uuid, source):
        return self.images.receive_disk(
            source.runner, source.images.disk_path(instance_uuid),
            instance_uuid)

    def rebase_disk(self, instance_uuid, image):
        paths = self.images.image_paths(image)
        return self.images.rebase_overlay(
            self.images.disk_path(instance_uuid), paths["base"],
            paths["base_format"])

    def disk_bytes(self, instance_uuid):
        return self.images.disk_size_bytes(instance_uuid)

    def missing_image_bytes(self, image):
        return self.images.missing_image_bytes(image)

    def free_disk_bytes(self):
        return self.images.free_bytes()

    def stash_disk(self, instance_uuid):
        return self.images.stash_disk(instance_uuid)

    def restore_stashed_disk(self, instance_uuid):
        return self.images.restore_stashed_disk(instance_uuid)

    def remove_stashed_disk(self, instance_uuid):
        return self.images.remove_stashed_disk(instance_uuid)

    def disk_info(self, instance_uuid):
        return self.images.disk_info(self.images.disk_path(instance_uuid))

    def instance_dir_exists(self, instance_uuid):
        return self.images.instance_dir_exists(instance_uuid)

    def list_instance_dirs(self):
        return self.images.list_instance_dirs()

    def console_log_path(self, instance_uuid):
        return self.images.console_log_path(instance_uuid)

    # -- domain XML -------------------------------------------------------

    def read_console_log(self, instance_uuid,
                         max_bytes=base.CONSOLE_TAIL_BYTES):
        """The last ``max_bytes`` of the instance's console log (text)."""
        path = self.console_log_path(instance_uuid)
        with tempfile.TemporaryDirectory(prefix="vmflow-console-") as tmp:
            local_copy = os.path.join(tmp, "console.log")
            self.runner.get_file(path, local_copy)
            with open(local_copy, "rb") as log:
                log.seek(max(os.path.getsize(local_copy) - max_bytes, 0))
                return log.read().decode("utf-8", errors="replace")

    def domain_name(self, instance):
        return f"{self.domain_name_prefix}{instance['uuid']}"

    def build_guest_config(self, instance, image, flavor, disks=None):
        disks = disks or self.disk_paths(instance, image)
        network = CONF.libvirt.network or None
        return config.GuestConfig(
            name=self.domain_name(instance),
            uuid=instance["uuid"],
            memory_mb=flavor["ram_mb"],
            vcpus=flavor["vcpus"],
            virt_type=self.virt_type,
            os=self._boot_config(image, disks),
            disks=[config.DiskConfig(disks["disk"],
                                     driver_type=disks.get("disk_format",
                                                           "qcow2"))],
            serial_log_path=disks["console_log"],
            interfaces=[config.InterfaceConfig(
                network=network,
                mac_address=mac_address_for(instance["uuid"]))],
            acpi=True,
            instance_uuid=instance["uuid"],
            instance_name=instance.get("name"))

    @staticmethod
    def _boot_config(image, disks):
        if not image.get("kernel"):
            return config.DiskBoot()
        return config.KernelBoot(kernel=disks["kernel"],
                                 initrd=disks.get("initrd"),
                                 cmdline=image.get("cmdline")
                                 or DEFAULT_CMDLINE)

    def generate_xml(self, instance, image, flavor, disks=None):
        return self.build_guest_config(instance, image, flavor,
                                       disks).to_xml()

    # -- domains ----------------------------------------------------------

    def define_domain(self, xml):
        return libvirt_guest.define(self.connection, xml).uuid

    def _guest(self, instance_uuid):
        return libvirt_guest.lookup(self.connection, instance_uuid)

    def start(self, instance_uuid, paused=False):
        return self._guest(instance_uuid).start(paused=paused)

    def shutdown_acpi(self, instance_uuid):
        return self._guest(instance_uuid).shutdown_acpi()

    def destroy(self, instance_uuid):
        guest = libvirt_guest.find(self.connection, instance_uuid)
        if guest is None:
            return "not-found"
        try:
            return guest.destroy()
        except exception.DomainNotFound:  # a transient domain vanished
            return "not-found"

    def undefine(self, instance_uuid):
        guest = libvirt_guest.find(self.connection, instance_uuid)
        if guest is None:
            return "already-undefined"
        return guest.undefine()

    def pause(self, instance_uuid):
        return self._guest(instance_uuid).pause()

    def resume(self, instance_uuid):
        return self._guest(instance_uuid).resume()

    def managed_save(self, instance_uuid):
        return self._guest(instance_uuid).managed_save()

    def has_managed_save(self, instance_uuid):
        return self._guest(instance_uuid).has_managed_save()

    def get_power_state(self, instance_uuid):
        return self._guest(instance_uuid).power_state()

    def get_domain_id(self, instance_uuid):
        return self._guest(instance_uuid).domain_id()

    def domain_exists(self, instance_uuid):
        return libvirt_guest.find(self.connection, instance_uuid) is not None

    def list_domains(self):
        """Every domain; ``instance_uuid`` is vmflow's instance (from the
        domain's vmflow metadata, else from a name with this driver's
        prefix), None for a domain that is not vmflow's."""
        domains = []
        for guest in libvirt_guest.list_guests(self.connection):
            try:
                domain = guest.describe()
            except exception.DomainNotFound:  # went away while listing
                continue
            if (domain["instance_uuid"] is None
                    and domain["name"].startswith(self.domain_name_prefix)):
                domain["instance_uuid"] = domain["name"][
                    len(self.domain_name_prefix):]
            domains.append(domain)
        return domains

    def wait_for_power_state(self, instance_uuid, states, timeout_seconds,
                             poll_interval=None):
        """Poll until the power state is one of ``states`` or time is up.

        Returns the last state seen (callers compare it with ``states``).
        A bounded helper for tests and short waits; flows wait with
        retried poll tasks instead.
        """
        poll_interval = poll_interval or CONF.libvirt.poll_interval_seconds
        deadline = time.monotonic() + timeout_seconds
        while True:
            state = self.get_power_state(instance_uuid)
            if state in states or time.monotonic() >= deadline:
                return state
            time.sleep(poll_interval)
