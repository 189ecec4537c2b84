"""Issue 3's concurrency "must show": twenty builds posted at once against
a host with room for ten end with exactly ten ACTIVE and ten ERROR (no
valid host), the audit passing -- on SQLite with one runner and on
PostgreSQL with two runner processes on one board. Deleting all twenty
then leaves nothing behind.

The only host is the private libvirtd of ``second_libvirt_uri``: ``vmflow
audit`` claims every ``vmflow-*`` domain of a registered hypervisor, and
qemu:///system is shared with other test sessions. Guests boot nothing (a
blank qcow2, no kernel): a build only waits for the domain to run.

:class:`Scenario` is also what ``benchmarks/concurrent_builds.py`` runs.
"""
import collections
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading
import time
import uuid

import libvirt
import pytest

from tests.conftest import write_config
from tests.functional.engine import helpers
from tests.integration.conftest import cleanup_domains
from vmflow import audit, compute, instances
from vmflow.drivers.libvirt import connection as libvirt_connection
from vmflow.drivers.libvirt import driver as libvirt_driver
from vmflow.engine import actions, operations
from vmflow.flows import build, constants, iter_tasks
from vmflow.inventory import flavors, hosts, images, quotas
from vmflow.persistence import api, models
from vmflow.tasks import hooks

BUILDS = 20
CAPACITY = 10
FLAVOR = {"name": "conc", "vcpus": 1, "ram_mb": 32, "disk_gb": 1}
IMAGE = "blank"
HOST = "hv"
PROJECT = "conc"
DOMAIN_PREFIX = libvirt_driver.DEFAULT_DOMAIN_NAME_PREFIX
RUNNER_TIMEOUT = 180
MAX_WORKERS = 4
# The first task of both flows: where several runners wait for each other.
FIRST_STEP = next(iter_tasks(build.get_build_flow())).name
# Polls of WaitForDomainRunning are runs of a task of their own (one event
# each); every other task runs once per action.
POLLED_TASK = "WaitForDomainRunning"


def private_instances_root(tag):
    """A 0755 directory under /var/tmp (QEMU runs as libvirt-qemu and
    cannot enter pytest's 0700 temporary directories)."""
    path = tempfile.mkdtemp(prefix=f"vmflow-test-{tag}-", dir="/var/tmp")
    os.chmod(path, 0o755)
    return path


def blank_image(folder):
    path = os.path.join(folder, "blank.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, "16M"],
                   check=True, timeout=60)
    return path


class Scenario:
    """One cloud on one database: the hypervisor ``uri`` as the only host
    with room for ``capacity`` builds of the flavor, an image, a quota for
    ``builds``; posting at once from threads, running ``vmflow-engine
    --once`` processes, and reading what came out. ``more_settings``:
    options by group (``DEFAULT`` too) added for CONF and the runners'
    config file, e.g. ``{"jobboard": {"backend": "redis"}}``."""

    def __init__(self, conf, url, uri, work_dir, instances_root,
                 capacity=CAPACITY, builds=BUILDS, max_workers=MAX_WORKERS,
                 more_settings=None):
        self.conf = conf
        self.url = url
        self.uri = uri
        self.work_dir = str(work_dir)
        self.instances_root = instances_root
        self.capacity = capacity
        self.builds = builds
        self.namespace = "conc-" + uuid.uuid4().hex[:8]
        self.log_path = os.path.join(self.work_dir, "runners.log")
        settings = {
            "DEFAULT": {"state_path": os.path.join(self.work_dir, "state")},
            "database": {"connection": url},
            "jobboard": {"namespace": self.namespace,
                         "claim_expiry_seconds": 10},
            "engine": {"max_workers": max_workers},
            "libvirt": {"virt_type": "qemu", "wait_running_seconds": 60,
                        "poll_interval_seconds": 0.2},
            "scheduler": {"ram_allocation_ratio": 1.0,
                          "cpu_allocation_ratio": 1.0,
                          "disk_allocation_ratio": 1.0},
        }
        for group, options in (more_settings or {}).items():
            settings.setdefault(group, {}).update(options)
        for group, options in settings.items():
            for option, value in options.items():
                conf.set_override(option, value,
                                  group=None if group == "DEFAULT" else group)
        self.config_file = write_config(
            pathlib.Path(self.work_dir) / "runner.conf", settings)
        self.engine = api.get_engine(conf)

    # -- the cloud ---------------------------------------------------------

    def set_up(self):
        image_file = blank_image(self.work_dir)
        builds = self.builds
        with api.session_scope(self.engine) as session:
            hosts.add_host(
                session, HOST, self.uri, vcpus=self.capacity * 4,
                memory_mb=self.capacity * FLAVOR["ram_mb"],
                disk_gb=self.capacity * 10,
                instances_path=os.path.join(self.instances_root, HOST),
                verify=False)
            flavors.create_flavor(session, FLAVOR["name"], FLAVOR["vcpus"],
                                  FLAVOR["ram_mb"], FLAVOR["disk_gb"])
            images.add_image(session, IMAGE, image_file)
            quotas.set_limits(session, PROJECT, {
                "instances": builds, "cores": builds * FLAVOR["vcpus"],
                "ram": builds * FLAVOR["ram_mb"]})

    # -- requests ------------------------------------------------------------

    def post_at_once(self, request, arguments):
        """``request(argument)`` from one thread each, released together;
        returns their results in order (raises the first error)."""
        barrier = threading.Barrier(len(arguments))
        results = [None] * len(arguments)

        def call(index, argument):
            barrier.wait()
            try:
                results[index] = request(argument)
            except BaseException as error:  # reported below
                results[index] = error

        threads = [threading.Thread(target=call, args=(index, argument))
                   for index, argument in enumerate(arguments)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        errors = [result for result in results
                  if isinstance(result, BaseException)]
        if errors:
            raise AssertionError(f"{len(errors)} of {len(results)} requests "
                                 f"failed, first: {errors[0]!r}") from \
                errors[0]
        return results

    def post_builds(self):
        names = [f"conc-{number:02d}" for number in range(self.builds)]
        return self.post_at_once(lambda name: compute.create_server(
            name, FLAVOR["name"], IMAGE, project=PROJECT, conf=self.conf),
            names)

    def post_deletes(self, requests):
        return self.post_at_once(lambda request: compute.delete_server(
            request.instance_uuid, project=PROJECT, conf=self.conf),
            requests)

    def run_runners(self, names, timeout=RUNNER_TIMEOUT):
        """Start ``vmflow-engine --once`` as each of ``names``; wait until
        all have drained the board.

        Several runners hold their first steps until each of them claimed
        a job: one that started a second earlier could otherwise drain
        the whole board alone (the claims would still be right, but the
        test would not show two runners sharing it).
        """
        gate = pathlib.Path(tempfile.mkdtemp(dir=self.work_dir))
        env = {}
        if len(names) > 1:
            env = {hooks.PAUSE_AT: f"{FIRST_STEP}:before-execute",
                   hooks.PAUSE_DIR: str(gate)}
        runners = [helpers.start_runner(self.config_file, "--once",
                                        name=name, log_path=self.log_path,
                                        env=env)
                   for name in names]
        try:
            if env:
                helpers.wait_until(lambda: self._claimers() >= set(names),
                                   timeout, "every runner to claim a job")
                (gate / "release").touch()
            for runner in runners:
                status = runner.wait(timeout=timeout)
                assert status == 0, (f"runner exited {status}:\n"
                                     f"{self.runner_log()}")
        finally:
            for runner in runners:
                if runner.poll() is None:
                    runner.kill()
                    runner.wait()

    def _claimers(self):
        """Names of the runners holding a claim now."""
        return {row.owner.split("@")[0] for row in helpers.rows(
            self.engine, models.Job, state="CLAIMED") if row.owner}

    def runner_log(self, tail=20000):
        """The runners' output (its last ``tail`` characters; None: all)."""
        with open(self.log_path, errors="replace") as log:
            text = log.read()
        return text[-tail:] if tail else text

    # -- what came out -----------------------------------------------------

    def instances(self, requests):
        return helpers.instances_with_faults(
            self.engine, [request.instance_uuid for request in requests])

    def action(self, request):
        rows = [row for row in helpers.rows(
            self.engine, models.InstanceAction,
            instance_uuid=request.instance_uuid)
            if row.request_id == request.request_id]
        assert len(rows) == 1, rows
        return rows[0]

    def latencies(self, requests):
        """Seconds from posting to the end of each operation (its instance
        action's start and finish times)."""
        spans = []
        for request in requests:
            row = self.action(request)
            assert row.finish_time is not None, row
            spans.append((row.finish_time - row.start_time).total_seconds())
        return spans

    def allocations(self):
        return helpers.rows(self.engine, models.Allocation)

    def usage(self):
        with api.session_scope(self.engine) as session:
            return quotas.get_usage(session, PROJECT)

    def audit(self):
        return audit.run_audit(self.engine)

    def domains(self):
        """{uuid: running?} of vmflow's domains on the hypervisor."""
        conn = libvirt.open(self.uri)
        try:
            return {dom.UUIDString(): bool(dom.isActive())
                    for dom in conn.listAllDomains()
                    if dom.name().startswith(DOMAIN_PREFIX)}
        finally:
            conn.close()

    def instance_dirs(self):
        path = os.path.join(self.instances_root, HOST)
        return sorted(name for name in os.listdir(path) if name != "_base")

    def close(self):
        libvirt_connection.close_all()
        shutil.rmtree(self.instances_root, ignore_errors=True)


# --- fixtures ---------------------------------------------------------------

@pytest.fixture
def hypervisor(second_libvirt_uri):
    """The private libvirtd; vmflow domains a test leaves are removed."""
    before = _domain_names(second_libvirt_uri)
    yield second_libvirt_uri
    left = cleanup_domains(second_libvirt_uri, prefix=DOMAIN_PREFIX,
                           keep=before)
    if left:
        print(f"\nremoved domains left on {second_libvirt_uri}: {left}")


def _domain_names(uri):
    conn = libvirt.open(uri)
    try:
        return {dom.name() for dom in conn.listAllDomains()}
    finally:
        conn.close()


@pytest.fixture
def scenario_factory(conf, hypervisor, tmp_path):
    made = []

    def make(url):
        scenario = Scenario(conf, url, hypervisor, tmp_path,
                            private_instances_root("concurrent"))
        made.append(scenario)
        return scenario

    yield make
    for scenario in made:
        scenario.close()


@pytest.fixture
def postgres_url(tmp_path):
    with helpers.private_database("postgresql", tmp_path) as url:
        yield url


# --- checks -----------------------------------------------------------------

def assert_builds_split_at_capacity(scenario, requests):
    """Exactly ``capacity`` ACTIVE with a running domain and the rest in
    ERROR for no valid host; claims, quota and audit agree. Returns the
    uuids of the ACTIVE instances."""
    capacity, builds = scenario.capacity, scenario.builds
    found = scenario.instances(requests)
    by_state = collections.defaultdict(list)
    for instance in found.values():
        by_state[instance["vm_state"]].append(instance)
    summary = {state: len(items) for state, items in by_state.items()}
    assert summary == {instances.ACTIVE: capacity,
                       instances.ERROR: builds - capacity}, (
        summary, [i["fault"] for i in by_state[instances.ERROR]],
        scenario.runner_log())
    assert {i["task_state"] for i in found.values()} == {None}

    domains = scenario.domains()
    active = {i["uuid"] for i in by_state[instances.ACTIVE]}
    assert {i["host"] for i in by_state[instances.ACTIVE]} == {HOST}
    assert {i["power_state"] for i in by_state[instances.ACTIVE]} == {
        "running"}
    assert domains == dict.fromkeys(active, True)
    assert scenario.instance_dirs() == sorted(active)
    for instance in by_state[instances.ERROR]:
        assert instance["host"] is None, instance
        assert "no valid host" in (instance["fault"] or ""), instance

    allocations = scenario.allocations()
    assert sorted(row.consumer_uuid for row in allocations) == sorted(
        active)
    assert sum(row.memory_mb for row in allocations) <= (
        capacity * FLAVOR["ram_mb"])
    assert scenario.usage() == {"instances": capacity,
                                "cores": capacity * FLAVOR["vcpus"],
                                "ram": capacity * FLAVOR["ram_mb"]}
    report = scenario.audit()
    assert report["ok"], report
    assert helpers.rows(scenario.engine, models.InstanceLock) == []
    return active


def assert_each_job_ran_once(scenario, requests, action):
    """One finished instance action per request, and each task's event
    once in it (polls of the running state aside)."""
    for request in requests:
        row = scenario.action(request)
        assert (row.action, row.finish_time is not None) == (action, True)
        events = helpers.rows(scenario.engine, models.InstanceActionEvent,
                              action_id=row.id)
        counts = collections.Counter(event.event for event in events
                                     if event.event != POLLED_TASK)
        assert set(counts.values()) <= {1}, (request, counts)
        polls = [event for event in events if event.event == POLLED_TASK]
        assert [event.result for event in polls[:-1]] == (
            [actions.EVENT_FAILURE] * (len(polls) - 1)), polls
    builds = collections.Counter(
        row.instance_uuid
        for row in helpers.rows(scenario.engine, models.InstanceAction)
        if row.action == action)
    assert set(builds.values()) == {1}, builds


def job_owners(scenario, requests):
    return collections.Counter(
        row.owner.split("@")[0] for request in requests
        for row in helpers.rows(scenario.engine, models.Job,
                                uuid=request.job_uuid))


def assert_nothing_left(scenario, requests):
    found = scenario.instances(requests)
    assert {(i["vm_state"], i["task_state"]) for i in found.values()} == {
        (instances.DELETED, None)}, scenario.runner_log()
    assert scenario.domains() == {}
    assert scenario.instance_dirs() == []
    assert scenario.allocations() == []
    assert scenario.usage() == {"instances": 0, "cores": 0, "ram": 0}
    assert helpers.rows(scenario.engine, models.InstanceLock) == []
    report = scenario.audit()
    assert report["ok"], report


def build_then_delete(scenario, runner_names):
    """The whole must-show; returns the seconds of each phase and what
    the failed builds failed in."""
    scenario.set_up()
    assert not operations.any_runner_alive(scenario.conf)
    timings = {}
    started = time.monotonic()
    builds = scenario.post_builds()
    timings["post builds"] = time.monotonic() - started
    assert helpers.rows(scenario.engine, models.Allocation) == []

    started = time.monotonic()
    scenario.run_runners(runner_names)
    timings["run builds"] = time.monotonic() - started
    assert_builds_split_at_capacity(scenario, builds)
    assert_each_job_ran_once(scenario, builds, constants.BUILD_FLOW)
    owners = job_owners(scenario, builds)
    assert sum(owners.values()) == scenario.builds
    assert set(owners) == set(runner_names), owners
    timings["faults"] = dict(collections.Counter(
        instance["fault"].split(" failed:")[0]
        for instance in scenario.instances(builds).values()
        if instance["fault"]))

    started = time.monotonic()
    deletes = scenario.post_deletes(builds)
    scenario.run_runners(runner_names)
    timings["delete"] = time.monotonic() - started
    assert all(scenario.action(request).result == actions.SUCCESS
               for request in deletes)
    assert_each_job_ran_once(scenario, deletes, constants.DELETE_FLOW)
    assert_nothing_left(scenario, builds)
    # No database error under concurrency, even one a retry absorbed.
    assert "OperationalError" not in scenario.runner_log(tail=None)
    return timings


# --- tests ------------------------------------------------------------------

def test_twenty_builds_on_sqlite_with_one_runner(conf, scenario_factory,
                                                 tmp_path):
    url = f"sqlite:///{tmp_path}/concurrent.sqlite"
    helpers._sync(url)
    scenario = scenario_factory(url)
    timings = build_then_delete(scenario, ["runner-a"])
    print(f"\nsqlite, one runner: {timings}")


def test_twenty_builds_on_postgresql_with_two_runners(conf, scenario_factory,
                                                      postgres_url):
    scenario = scenario_factory(postgres_url)
    timings = build_then_delete(scenario, ["runner-a", "runner-b"])
    print(f"\npostgresql, two runners: {timings}")
