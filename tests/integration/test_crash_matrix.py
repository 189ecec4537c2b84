"""The crash matrix: a real ``vmflow-engine`` is killed with SIGKILL at
every atom boundary of the build and delete flows, started again, and the
job must end ACTIVE (build), DELETED (delete) or fully reverted (ERROR with
a fault, nothing left), with the audit passing.

The cases are the flows' tasks (:func:`vmflow.flows.iter_tasks`) times the
crash points of :mod:`vmflow.tasks.hooks`: ``before-execute`` (nothing
done yet), ``after-execute`` (done, its result not saved: it runs again)
and ``during-revert`` (reverted, not recorded: it reverts again). A revert
needs a failure after the task ran: in those cases the task after it fails
(``VMFLOW_FAIL_AT``; the last task fails itself), so it and every task
before it revert. ``VMFLOW_CRASH_MARKER`` makes the crash happen once; the
runner is restarted with the same environment. A reverted delete is run
again (delete must be safe to run twice) and must then leave nothing.

The hypervisor is the private libvirtd of ``second_libvirt_uri``,
registered as the only host: the audit claims every vmflow domain of a
registered host for its database, and qemu:///system is shared with other
test sessions. The guest needs no boot: an empty qcow2 without kernel,
whose domain runs (in its firmware) from the moment it starts. Its disks
live under /var/tmp (QEMU runs as libvirt-qemu and cannot enter pytest's
directories). Each case gets a copy of one database synced once, its own
instances path, and a claim expiry of 5 s that the restarted runner does
not wait for: it takes the job of its dead predecessor over at once.

Destroying a domain takes libvirt a second or two on the test bed (it
waits until QEMU's exited process is reaped, which its init does slowly),
so a case's domains left on purpose (a build that ended ACTIVE) are
removed in the background while the next case runs, and that case waits
for it before its audit.
"""
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import uuid as uuidlib

import pytest
import sqlalchemy

from tests.conftest import write_config
from tests.functional.engine import helpers
from tests.integration.conftest import cleanup_domains
from vmflow import audit, compute, instances
from vmflow.drivers.libvirt import connection as libvirt_connection
from vmflow.drivers.libvirt import driver as libvirt_driver
from vmflow.engine import actions, operations, runner
from vmflow.engine import persistence as engine_persistence
from vmflow.flows import build, constants, delete, iter_tasks
from vmflow.inventory import flavors, hosts, images, quotas, servers
from vmflow.persistence import api, migration, models
from vmflow.tasks import base, hooks

FLOWS = {constants.BUILD_FLOW: build.get_build_flow,
         constants.DELETE_FLOW: delete.get_delete_flow}
TASKS = {flow: [task.name for task in iter_tasks(factory())]
         for flow, factory in FLOWS.items()}
DURING_REVERT = "during-revert"
CASES = [pytest.param(flow, task, point, id=f"{flow}-{task}-{point}")
         for flow, tasks in TASKS.items() for task in tasks
         for point in hooks.CRASH_POINTS]

HOST = "hv"
PROJECT = "demo"
FLAVOR = IMAGE = "tiny"
FLAVOR_RAM_MB = 64
CLAIM_EXPIRY = 5
RUNNER_TIMEOUT = 60
NO_USAGE = {"instances": 0, "cores": 0, "ram": 0}
ONE_INSTANCE = {"instances": 1, "cores": 1, "ram": FLAVOR_RAM_MB}
DOMAIN_PREFIX = libvirt_driver.DEFAULT_DOMAIN_NAME_PREFIX
NOTHING_LEFT = {"claim": False, "domain": False, "disks": False}
EVERYTHING_THERE = {"claim": True, "domain": True, "disks": True}


def test_the_matrix_covers_every_task_of_both_flows():
    build_tasks, delete_tasks = TASKS.values()
    assert len(CASES) == 3 * (len(build_tasks) + len(delete_tasks))
    assert (build_tasks[-1], delete_tasks[-1]) == (
        "MarkInstanceActive", "MarkInstanceDeleted")


# --- set-up shared by the module ---------------------------------------------

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
    image_file = os.path.join(disks_root, "empty.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", image_file,
                    "16M"], check=True)
    path = tmp_path_factory.mktemp("crash-matrix") / "template.sqlite"
    engine = api.create_engine(f"sqlite:///{path}")
    try:
        migration.db_sync(engine)
        with api.session_scope(engine) as session:
            flavors.create_flavor(session, FLAVOR, 1, FLAVOR_RAM_MB, 1)
            images.add_image(session, IMAGE, image_file)
            quotas.set_limits(session, PROJECT, {
                "instances": 2, "cores": 2, "ram": 2 * FLAVOR_RAM_MB})
    finally:
        engine.dispose()  # SQLite checkpoints its WAL: one file to copy
    return path


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


@pytest.fixture
def cloud(conf, tmp_path, template_db, disks_root, sweeper):
    db_file = tmp_path / "vmflow.sqlite"
    shutil.copyfile(template_db, db_file)
    url = f"sqlite:///{db_file}"
    instances_path = os.path.join(disks_root, uuidlib.uuid4().hex)
    libvirt = {"virt_type": "qemu", "wait_running_seconds": 30,
               "poll_interval_seconds": 0.1}
    conf.set_override("connection", url, group="database")
    conf.set_override("claim_expiry_seconds", CLAIM_EXPIRY, group="jobboard")
    for option, value in libvirt.items():
        conf.set_override(option, value, group="libvirt")
    config_file = write_config(tmp_path / "vmflow.conf", {
        "DEFAULT": {"state_path": tmp_path / "state"},
        "database": {"connection": url},
        "jobboard": {"claim_expiry_seconds": CLAIM_EXPIRY},
        "libvirt": libvirt})
    engine = api.get_engine(conf)
    with api.session_scope(engine) as session:
        hosts.add_host(session, HOST, sweeper.uri, 2, 1024, 10,
                       instances_path=instances_path, verify=False)
    cloud = Cloud(conf, engine, tmp_path, config_file, sweeper)
    yield cloud
    sweeper.sweep_later(cloud.instance_uuids(), instances_path)
    engine_persistence.forget_persistence()


# --- the matrix --------------------------------------------------------------

def failing_task(flow, task):
    """The task that fails so that ``task`` is reverted: the next one (the
    last task fails itself)."""
    tasks = TASKS[flow]
    return tasks[min(tasks.index(task) + 1, len(tasks) - 1)]


def crash_env(flow, task, point, marker):
    env = {hooks.CRASH_AT: f"{task}:{point}", hooks.CRASH_MARKER: str(marker)}
    if point == DURING_REVERT:
        env[hooks.FAIL_AT] = failing_task(flow, task)
    return env


def built_server(cloud):
    request = compute.create_server("vm1", FLAVOR, IMAGE, PROJECT,
                                    conf=cloud.conf)
    status = cloud.run_inline(request)
    assert status.succeeded, status
    return request.instance_uuid


def assert_job_ended(cloud, request, succeeded):
    status = operations.operation_status(request.job_uuid, cloud.conf)
    assert status.finished, (status, cloud.log())
    assert status.result == (actions.SUCCESS if succeeded
                             else actions.ERROR), (status, cloud.log())
    row, = helpers.rows(cloud.engine, models.Job, uuid=request.job_uuid)
    assert (row.state, row.owner.split("@")[0]) == ("COMPLETE", "restarted")
    assert helpers.rows(cloud.engine, models.InstanceLock,
                        instance_uuid=request.instance_uuid) == []


def assert_active(cloud, uuid):
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"], instance["host"],
            instance["power_state"]) == ("active", None, HOST, "running")
    assert base.get_driver(HOST).get_power_state(uuid) == "running"
    assert cloud.leftovers(uuid) == EVERYTHING_THERE
    assert cloud.usage() == ONE_INSTANCE


def assert_deleted(cloud, uuid):
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"]) == (
        "deleted", None)
    assert cloud.leftovers(uuid) == NOTHING_LEFT
    assert cloud.usage() == NO_USAGE


def assert_reverted(cloud, flow, task, uuid):
    """ERROR with the injected fault and no task_state; a reverted build
    gave everything back (a reverted delete keeps its host: it is run
    again)."""
    failed = failing_task(flow, task)
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"]) == ("error", None)
    assert cloud.fault(uuid) == (
        f"{failed} failed: injected fault in {failed} execute")
    if flow == constants.BUILD_FLOW:
        assert instance["host"] is None
        assert cloud.leftovers(uuid) == NOTHING_LEFT
        assert cloud.usage() == NO_USAGE
    else:
        assert instance["host"] == HOST


@pytest.mark.parametrize("flow, task, point", CASES)
def test_sigkill_at_an_atom_boundary_then_restart(cloud, flow, task, point):
    if flow == constants.BUILD_FLOW:
        request = compute.create_server("vm1", FLAVOR, IMAGE, PROJECT,
                                        conf=cloud.conf)
    else:
        request = compute.delete_server(built_server(cloud), PROJECT,
                                        conf=cloud.conf)
    uuid = request.instance_uuid
    marker = cloud.tmp_path / "crashed"
    env = crash_env(flow, task, point, marker)

    crashed = cloud.start_runner("crashed", env)
    status = crashed.wait(timeout=RUNNER_TIMEOUT)
    assert status == -signal.SIGKILL, cloud.log()
    assert marker.read_text() == f"{task}:{point}\n"
    row, = helpers.rows(cloud.engine, models.Job, uuid=request.job_uuid)
    assert (row.state, row.owner.split("@")[0]) == ("CLAIMED", "crashed")

    # Same environment: the marker keeps it from crashing again; the dead
    # runner's claim (same machine, no such pid) is taken over at once.
    restarted = cloud.start_runner("restarted", env)
    status = restarted.wait(timeout=RUNNER_TIMEOUT)
    assert status == 0, cloud.log()

    reverted = point == DURING_REVERT
    assert_job_ended(cloud, request, succeeded=not reverted)
    if reverted:
        assert_reverted(cloud, flow, task, uuid)
    elif flow == constants.BUILD_FLOW:
        assert_active(cloud, uuid)  # removed in the background afterwards
    else:
        assert_deleted(cloud, uuid)
    cloud.assert_audit_ok()

    if reverted and flow == constants.DELETE_FLOW:
        request = compute.delete_server(uuid, PROJECT, conf=cloud.conf)
        assert cloud.run_inline(request).succeeded
        assert_deleted(cloud, uuid)
        cloud.assert_audit_ok()
