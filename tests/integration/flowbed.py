"""A test bed for flows run by real ``vmflow-engine`` processes on the
private libvirtd of ``second_libvirt_uri`` (the crash matrix, the job
board loss tests).

The hypervisor is registered as the only host: the audit claims every
vmflow domain of a registered host for its database, and qemu:///system
is shared with other test sessions. The guest needs no boot: an empty
qcow2 without kernel, whose domain runs (in its firmware) from the moment
it starts. Its disks live under /var/tmp (QEMU runs as libvirt-qemu and
cannot enter pytest's directories). Each test gets a copy of one database
synced once and its own instances path.

Destroying a domain takes libvirt a second or two on the test bed (it
waits until QEMU's exited process is reaped, which its init does slowly),
so a test's domains left on purpose (a build that ended ACTIVE) are
removed in the background while the next test runs, and that test waits
for it before its audit.
"""
import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import uuid as uuidlib

import pytest
import sqlalchemy

from tests.conftest import write_config
from tests.functional.engine import helpers
from tests.integration.conftest import cleanup_domains
from vmflow import audit, instances
from vmflow.drivers.libvirt import connection as libvirt_connection
from vmflow.drivers.libvirt import driver as libvirt_driver
from vmflow.engine import operations, runner
from vmflow.engine import persistence as engine_persistence
from vmflow.inventory import flavors, hosts, images, quotas, servers
from vmflow.persistence import api, migration, models
from vmflow.tasks import base

HOST = "hv"
PROJECT = "demo"
FLAVOR = IMAGE = "tiny"
FLAVOR_RAM_MB = 64
QUOTA_INSTANCES = 4
CLAIM_EXPIRY = 5
DOMAIN_PREFIX = libvirt_driver.DEFAULT_DOMAIN_NAME_PREFIX
NOTHING_LEFT = {"claim": False, "domain": False, "disks": False}
EVERYTHING_THERE = {"claim": True, "domain": True, "disks": True}


@pytest.fixture(scope="module")
def disks_root():
    """A 0755 directory QEMU (libvirt-qemu) can enter: the image and
    every case's instances path."""
    path = tempfile.mkdtemp(prefix="vmflow-test-crash-", dir="/var/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def template_db(tmp_path_factory, disks_root):
    """An SQLite file at the current schema with the flavor, the image
    (an empty qcow2, no kernel) and the project's quota; each case runs
    on a copy of it."""
    path = tmp_path_factory.mktemp("crash-matrix") / "template.sqlite"
    engine = api.create_engine(f"sqlite:///{path}")
    try:
        migration.db_sync(engine)
        seed_inventory(engine, disks_root)
    finally:
        engine.dispose()  # SQLite checkpoints its WAL: one file to copy
    return path


def seed_inventory(engine, disks_root):
    """The flavor, the image (an empty qcow2, no kernel, made under
    ``disks_root`` once) and the project's quota."""
    image_file = os.path.join(disks_root, "empty.qcow2")
    if not os.path.exists(image_file):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2",
                        image_file, "16M"], check=True)
    with api.session_scope(engine) as session:
        flavors.create_flavor(session, FLAVOR, 1, FLAVOR_RAM_MB, 1)
        images.add_image(session, IMAGE, image_file)
        quotas.set_limits(session, PROJECT, {
            "instances": QUOTA_INSTANCES, "cores": QUOTA_INSTANCES,
            "ram": QUOTA_INSTANCES * FLAVOR_RAM_MB})


class Sweeper:
    """Removes finished cases' domains and instances paths in the
    background; :meth:`wait` before looking at the hypervisor."""

    def __init__(self, uri):
        self.uri = uri
        self._threads = []
        self._errors = []

    def sweep_later(self, instance_uuids, instances_path):
        thread = threading.Thread(target=self._sweep,
                                  args=(instance_uuids, instances_path))
        thread.start()
        self._threads.append(thread)

    def _sweep(self, instance_uuids, instances_path):
        try:
            for uuid in instance_uuids:
                cleanup_domains(self.uri, prefix=DOMAIN_PREFIX + uuid)
            shutil.rmtree(instances_path, ignore_errors=True)
        except Exception as error:  # reported by wait()
            self._errors.append(error)

    def wait(self):
        while self._threads:
            self._threads.pop().join()
        errors, self._errors = self._errors, []
        assert not errors, f"removing the domains of a case failed: {errors}"


@pytest.fixture(scope="module")
def sweeper(second_libvirt_uri):
    """The private libvirtd (without vmflow domains left by other tests)
    and its sweeper; no vmflow domain is left there at the end."""
    leftovers = cleanup_domains(second_libvirt_uri, prefix=DOMAIN_PREFIX)
    if leftovers:
        print(f"\nremoved vmflow domains left on {second_libvirt_uri}: "
              f"{leftovers}")
    sweeper = Sweeper(second_libvirt_uri)
    yield sweeper
    sweeper.wait()
    libvirt_connection.close_all()
    assert cleanup_domains(second_libvirt_uri, prefix=DOMAIN_PREFIX) == []


class Cloud:
    """One case's database, host and runner processes."""

    def __init__(self, conf, engine, tmp_path, config_file, sweeper):
        self.conf = conf
        self.engine = engine
        self.tmp_path = tmp_path
        self.config_file = config_file
        self.sweeper = sweeper
        self.log_path = tmp_path / "runners.log"

    def session(self):
        return api.session_scope(self.engine)

    def start_runner(self, name, env):
        return helpers.start_runner(self.config_file, "--once", name=name,
                                    log_path=self.log_path, env=env)

    def log(self):
        return self.log_path.read_text() if self.log_path.exists() else ""

    def run_inline(self, request):
        """Run a posted operation in this process; its final status."""
        assert runner.run_job_inline(request.job_uuid, self.conf)
        return operations.operation_status(request.job_uuid, self.conf)

    def instance(self, uuid):
        with self.session() as session:
            return instances.get_instance(session, uuid)

    def instance_uuids(self):
        with self.session() as session:
            return list(session.scalars(
                sqlalchemy.select(models.Instance.uuid)))

    def fault(self, uuid):
        with self.session() as session:
            return servers.latest_fault(session, uuid)

    def usage(self):
        with self.session() as session:
            return quotas.get_usage(session, PROJECT)

    def leftovers(self, uuid):
        """What the instance has on the host: claim, domain, disks."""
        driver = base.get_driver(HOST)
        with self.session() as session:
            claimed = session.scalar(
                sqlalchemy.select(sqlalchemy.func.count())
                .select_from(models.Allocation)
                .where(models.Allocation.consumer_uuid == uuid))
        return {"claim": bool(claimed), "domain": driver.domain_exists(uuid),
                "disks": driver.instance_dir_exists(uuid)}

    def assert_audit_ok(self):
        self.sweeper.wait()  # the previous case's domains are gone
        report = audit.run_audit(self.engine)
        assert report["ok"], report


@contextlib.contextmanager
def make_cloud(conf, tmp_path, template_db, disks_root, sweeper,
               jobboard=None, url=None, runner_url=None, libvirt=None):
    """A :class:`Cloud` on a copy of ``template_db``, or on the seeded
    database ``url``; ``runner_url``: the database URL the runners use
    (default: the same); ``jobboard``, ``libvirt``: more ``[jobboard]``
    and ``[libvirt]`` options (for CONF and the runners' config file)."""
    if url is None:
        db_file = tmp_path / "vmflow.sqlite"
        shutil.copyfile(template_db, db_file)
        url = f"sqlite:///{db_file}"
    instances_path = os.path.join(disks_root, uuidlib.uuid4().hex)
    os.makedirs(instances_path)
    os.chmod(instances_path, 0o755)
    libvirt = dict({"virt_type": "qemu", "wait_running_seconds": 30,
                    "poll_interval_seconds": 0.1}, **(libvirt or {}))
    board = dict(jobboard or {}, claim_expiry_seconds=CLAIM_EXPIRY)
    conf.set_override("connection", url, group="database")
    for group, options in (("jobboard", board), ("libvirt", libvirt)):
        for option, value in options.items():
            conf.set_override(option, value, group=group)
    config_file = write_config(tmp_path / "vmflow.conf", {
        "DEFAULT": {"state_path": tmp_path / "state"},
        "database": {"connection": runner_url or url},
        "jobboard": board,
        "libvirt": libvirt})
    engine = api.get_engine(conf)
    with api.session_scope(engine) as session:
        hosts.add_host(session, HOST, sweeper.uri, 2, 1024, 10,
                       instances_path=instances_path, verify=False)
    cloud = Cloud(conf, engine, tmp_path, config_file, sweeper)
    yield cloud
    sweeper.sweep_later(cloud.instance_uuids(), instances_path)
    engine_persistence.forget_persistence()


