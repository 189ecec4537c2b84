"""A two-host cloud of real components for resize and cold migration
tests (tests/integration/test_resize.py; reusable by others).

* Host A (``HOST_A``): the private libvirtd of ``second_libvirt_uri``,
  reached locally (no ``ssh_host``).
* Host B (``HOST_B``): a third, independent libvirtd started for the
  module by tools/testbed/start-second-libvirtd.sh, whose disk operations
  go over SSH: it is registered with the ``sshd`` fixture's address, port
  and user, and ``[ssh] key_file`` / ``known_hosts_file`` are that
  fixture's files.

Neither is qemu:///system: the audit claims every vmflow domain of a
registered host, and qemu:///system is shared with other test sessions.
Each host has its own instances path under one 0755 folder in /var/tmp
(QEMU runs as libvirt-qemu). The database is one SQLite file for the
module, so a guest built by one test can be reused by the next;
:meth:`ResizeBed.configure` points the test's CONF at it.

The guest is the tiny real guest (ACPI variant: it powers off on the
power button, so a resize's clean shutdown is quick), booted by direct
kernel boot; its disk is the instance's qcow2 overlay, into which
:meth:`ResizeBed.write_pattern` writes a known pattern while it is stopped.
"""
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import tempfile

import libvirt
import pytest
import sqlalchemy

from tests.integration.conftest import (cleanup_domains, run_testbed_script,
                                        wait_until)
from vmflow import audit, compute, instances
from vmflow.drivers.libvirt import connection as libvirt_connection
from vmflow.drivers.libvirt import driver as libvirt_driver
from vmflow.drivers.remote import runner as remote_runner
from vmflow.engine import operations
from vmflow.engine import persistence as engine_persistence
from vmflow.inventory import flavors, hosts, images, quotas, servers
from vmflow.persistence import api, migration, models

HOST_A, HOST_B = "hv-a", "hv-b"
PROJECT = "demo"
IMAGE = "tiny-acpi"
# (vcpus, ram MB, disk GB): "big" is the resize target.
FLAVORS = {"tiny": (1, 128, 1), "big": (2, 256, 2)}
DOMAIN_PREFIX = libvirt_driver.DEFAULT_DOMAIN_NAME_PREFIX
BOOT_TIMEOUT = 120
OPERATION_TIMEOUT = 300
# Where the pattern goes on the guest's disk, and what it is.
PATTERN = ("0x5a", "1M", "64k")


@dataclasses.dataclass(frozen=True)
class HostFacts:
    name: str
    uri: str
    instances_path: str


class ResizeBed:
    """The module's database, two hosts and helpers to look at them."""

    def __init__(self, url, host_a, host_b, sshd, tiny_guest):
        self.url = url
        self.hosts = {HOST_A: host_a, HOST_B: host_b}
        self.sshd = sshd
        self.tiny_guest = tiny_guest
        self.engine = None
        self.guest_uuid = None  # the shared guest, once built

    # -- configuration ------------------------------------------------------

    def configure(self, conf, **overrides):
        """Point ``conf`` at the bed's database; ``overrides`` override
        the ``[ssh]`` options that reach host B."""
        conf.set_override("connection", self.url, group="database")
        for option, value in {"virt_type": "qemu",
                              "wait_running_seconds": BOOT_TIMEOUT,
                              "poll_interval_seconds": 0.2,
                              "shutdown_timeout_seconds": 60}.items():
            conf.set_override(option, value, group="libvirt")
        ssh = dict(ssh_options(self.sshd), **overrides)
        for option, value in ssh.items():
            conf.set_override(option, value, group="ssh")
        self.engine = api.get_engine(conf)

    def session(self):
        return api.session_scope(self.engine)

    # -- operations, the way users request them -------------------------------

    def run(self, request):
        """Wait for a posted operation (run in this process: no runner is
        alive); its final OperationStatus."""
        return operations.wait_for_operation(request.job_uuid,
                                             timeout=OPERATION_TIMEOUT)

    def succeed(self, request):
        status = self.run(request)
        assert status.succeeded, (status, self.fault(request.instance_uuid))
        return status

    def ensure_guest(self, name="vm-resize"):
        """The shared guest: built on host A the first time (stopped, the
        pattern written into its disk, started again, its boot seen on the
        console); later calls return it, started if it is stopped, after
        checking it is on host A."""
        if self.guest_uuid is None:
            request = compute.create_server(name, "tiny", IMAGE, PROJECT,
                                            host=HOST_A)
            self.succeed(request)
            uuid = self.guest_uuid = request.instance_uuid
            self.wait_boots(HOST_A, uuid, 1)
            self.succeed(compute.power_server("stop", uuid))
            self.write_pattern(HOST_A, uuid)
            self.succeed(compute.power_server("start", uuid))
            self.wait_boots(HOST_A, uuid, 2)
        uuid = self.guest_uuid
        instance = self.instance(uuid)
        assert (instance["host"], instance["task_state"]) == (HOST_A, None), \
            instance
        if instance["vm_state"] == instances.STOPPED:
            boots = self.boots(HOST_A, uuid)
            self.succeed(compute.power_server("start", uuid))
            self.wait_boots(HOST_A, uuid, boots + 1)
        assert self.instance(uuid)["vm_state"] == instances.ACTIVE
        assert self.domain_state(HOST_A, uuid) == libvirt.VIR_DOMAIN_RUNNING
        return uuid

    # -- the database -----------------------------------------------------------

    def instance(self, uuid):
        with self.session() as session:
            return instances.get_instance(session, uuid)

    def fault(self, uuid):
        with self.session() as session:
            return servers.latest_fault(session, uuid)

    def migrations(self, uuid):
        with self.session() as session:
            rows = session.scalars(
                sqlalchemy.select(models.Migration)
                .where(models.Migration.instance_uuid == uuid)
                .order_by(models.Migration.id))
            return [{"uuid": row.uuid, "status": row.status,
                     "source_host": row.source_host,
                     "dest_host": row.dest_host} for row in rows]

    def claims(self, host_name):
        """{consumer uuid: (vcpus, memory_mb, disk_gb)} claimed on the
        host (instances and migrations alike)."""
        with self.session() as session:
            rows = session.execute(
                sqlalchemy.select(models.Allocation)
                .join(models.Host, models.Host.id == models.Allocation.host_id)
                .where(models.Host.name == host_name)).scalars()
            return {row.consumer_uuid: (row.vcpus, row.memory_mb, row.disk_gb)
                    for row in rows}

    def set_ssh_port(self, port):
        """Host B's registered SSH port (the unreachable-host case)."""
        with self.session() as session:
            session.execute(sqlalchemy.update(models.Host)
                            .where(models.Host.name == HOST_B)
                            .values(ssh_port=port))

    def assert_audit_ok(self):
        report = audit.run_audit(self.engine)
        assert report["ok"], json.dumps(report, indent=2, default=str)

    # -- the hosts, asked directly ----------------------------------------------

    def instance_dir(self, host_name, uuid):
        return os.path.join(self.hosts[host_name].instances_path, uuid)

    def disk(self, host_name, uuid):
        return os.path.join(self.instance_dir(host_name, uuid), "disk")

    def leftovers(self, host_name, uuid):
        """What is on the host of the instance: its claims (its own or
        its migrations'), libvirt domain and instance directory (or
        ``_resize`` stash)."""
        consumers = {uuid} | {m["uuid"] for m in self.migrations(uuid)}
        directory = self.instance_dir(host_name, uuid)
        return {"claim": bool(consumers & set(self.claims(host_name))),
                "domain": self._domain(host_name, uuid,
                                       lambda domain: True, missing=False),
                "files": (os.path.exists(directory)
                          or os.path.exists(directory + "_resize"))}

    def _domain(self, host_name, uuid, question, missing=None):
        connection = libvirt.open(self.hosts[host_name].uri)
        try:
            try:
                domain = connection.lookupByUUIDString(uuid)
            except libvirt.libvirtError as error:
                if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
                return missing
            return question(domain)
        finally:
            connection.close()

    def domain_state(self, host_name, uuid):
        return self._domain(host_name, uuid, lambda d: d.state()[0])

    def domain_id(self, host_name, uuid):
        return self._domain(host_name, uuid, lambda d: d.ID())

    def domain_resources(self, host_name, uuid):
        """(vcpus, memory MiB) of the running domain, from libvirt's
        domain info (what QEMU was given)."""
        def ask(domain):
            _state, _max_kib, memory_kib, vcpus, _cpu_time = domain.info()
            return vcpus, memory_kib // 1024
        return self._domain(host_name, uuid, ask)

    def domain_xml(self, host_name, uuid):
        return self._domain(host_name, uuid, lambda d: d.XMLDesc(0))

    def console(self, host_name, uuid):
        return os.path.join(self.instance_dir(host_name, uuid), "console.log")

    def boots(self, host_name, uuid):
        """Boot marker lines on the instance's console file on the host."""
        line = self.tiny_guest.marker_line("acpi").encode()
        try:
            with open(self.console(host_name, uuid), "rb") as console:
                return console.read().count(line)
        except FileNotFoundError:
            return 0

    def wait_boots(self, host_name, uuid, boots):
        wait_until(lambda: self.boots(host_name, uuid) >= boots,
                   BOOT_TIMEOUT, f"{boots} boot marker(s) of {uuid} on "
                   f"{host_name}'s console")
        assert self.boots(host_name, uuid) == boots

    def write_pattern(self, host_name, uuid):
        """Write PATTERN into the (stopped) guest's disk."""
        value, offset, length = PATTERN
        _qemu_io(self.disk(host_name, uuid),
                 f"write -P {value} {offset} {length}")

    def has_pattern(self, host_name, uuid):
        """Whether the guest's disk on the host holds PATTERN (read-only,
        shared: the guest may be running; it never writes to its disk)."""
        value, offset, length = PATTERN
        result = _qemu_io(self.disk(host_name, uuid),
                          f"read -P {value} {offset} {length}",
                          "-r", "-U", check=False)
        if result.returncode == 0:
            assert f"read {_bytes(length)}/{_bytes(length)} bytes" in \
                result.stdout, result.stdout
            return True
        assert "Pattern verification failed" in result.stdout, result
        return False

    def virtual_size(self, host_name, uuid):
        info = subprocess.run(
            ["qemu-img", "info", "-U", "--output=json",
             self.disk(host_name, uuid)],
            capture_output=True, text=True, check=True, timeout=60)
        return json.loads(info.stdout)["virtual-size"]


def _bytes(size):
    units = {"k": 1024, "M": 1024 ** 2}
    return int(size[:-1]) * units[size[-1]]


def _qemu_io(path, command, *options, check=True):
    return subprocess.run(["qemu-io", "-f", "qcow2", *options, "-c", command,
                           path], capture_output=True, text=True,
                          check=check, timeout=60)


def _start_host_b_daemon(state_dir):
    stdout = run_testbed_script("start-second-libvirtd.sh", str(state_dir),
                                timeout=300)
    return stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def two_hosts(second_libvirt_uri, daemon_dir, tag="resize"):
    """{HOST_A: HostFacts, HOST_B: HostFacts} of the two hypervisors
    (host A: ``second_libvirt_uri``; host B: a libvirtd started in
    ``daemon_dir``), each with an empty instances path under one 0755
    folder in /var/tmp and no vmflow domain. At the end every vmflow
    domain on both is removed, host B's daemon stopped and the instances
    paths deleted."""
    root = tempfile.mkdtemp(prefix=f"vmflow-test-{tag}-", dir="/var/tmp")
    os.chmod(root, 0o755)
    try:
        uri_b = _start_host_b_daemon(daemon_dir)
        facts = {}
        for name, uri in ((HOST_A, second_libvirt_uri), (HOST_B, uri_b)):
            path = os.path.join(root, name)
            os.makedirs(path, mode=0o755)
            facts[name] = HostFacts(name, uri, path)
            # An earlier module's leftovers would fail the audit.
            cleanup_domains(uri, prefix=DOMAIN_PREFIX)
        yield facts
    finally:
        libvirt_connection.close_all()
        try:
            cleanup_domains(second_libvirt_uri, prefix=DOMAIN_PREFIX)
        finally:
            run_testbed_script("stop-second-libvirtd.sh", str(daemon_dir),
                               timeout=300)
            shutil.rmtree(root, ignore_errors=True)


def add_hosts(session, facts, sshd, vcpus=4, memory_mb=2048, disk_gb=20):
    """Register :func:`two_hosts`' hosts, host B with ``sshd``'s address
    (its disk work goes over SSH), each with the resources given."""
    for name, ssh in ((HOST_A, None),
                      (HOST_B, f"{sshd.user}@{sshd.host}:{sshd.port}")):
        hosts.add_host(session, name, facts[name].uri, vcpus, memory_mb,
                       disk_gb, instances_path=facts[name].instances_path,
                       ssh=ssh, verify=False)


def ssh_options(sshd):
    """The ``[ssh]`` options that reach host B through ``sshd``."""
    return {"key_file": str(sshd.key_file),
            "known_hosts_file": str(sshd.known_hosts_file),
            "connect_timeout_seconds": 5}


def _seed(url, tiny_guest, facts, sshd):
    engine = api.create_engine(url)
    try:
        migration.db_sync(engine)
        with api.session_scope(engine) as session:
            for name, (vcpus, ram_mb, disk_gb) in FLAVORS.items():
                flavors.create_flavor(session, name, vcpus, ram_mb, disk_gb)
            images.add_image(session, IMAGE, str(tiny_guest.disk),
                             kernel=str(tiny_guest.kernel),
                             initrd=str(tiny_guest.initrd("acpi")),
                             cmdline=tiny_guest.cmdline)
            quotas.set_limits(session, PROJECT, {
                "instances": 4, "cores": 8, "ram": 2048})
            add_hosts(session, facts, sshd)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def resize_bed(second_libvirt_uri, sshd, tiny_guest, tmp_path_factory):
    """The two-host :class:`ResizeBed` for a module (:func:`two_hosts`)."""
    with two_hosts(second_libvirt_uri,
                   tmp_path_factory.mktemp("hv-b")) as facts:
        url = f"sqlite:///{tmp_path_factory.mktemp('resize-db')}/vmflow.db"
        _seed(url, tiny_guest, facts, sshd)
        try:
            yield ResizeBed(url, facts[HOST_A], facts[HOST_B], sshd,
                            tiny_guest)
        finally:
            engine_persistence.forget_persistence()


@pytest.fixture
def resize_cloud(conf, resize_bed):
    """The module's bed with this test's CONF pointed at it."""
    resize_bed.configure(conf)
    yield resize_bed
    remote_runner.close_thread_runners()  # the SSH connections to B
    engine_persistence.forget_persistence()
    libvirt_connection.close_all()
