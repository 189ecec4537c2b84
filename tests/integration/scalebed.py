"""The cloud of the scale-out test (tests/integration/test_scale_out.py):
one private PostgreSQL or MariaDB database, a job board (TaskFlow's Redis
board on the machine's Redis in a namespace of its own, or the embedded
SQL board), the two hosts of :func:`tests.integration.resizebed.
two_hosts` (host B's disk work over the real sshd), the tiny real guest
as image, and three ``vmflow-engine`` processes, each with its own log.

:class:`OwnerWatch` samples from the board who holds each job while the
test runs; :class:`ScaleOut` reads what came out from the database, the
runners' logs and the hypervisors themselves.
"""
import collections
import os
import pathlib
import re
import shutil
import threading
import time

import libvirt
import pytest
import sqlalchemy

from tests import databases
from tests.conftest import Cli, write_config
from tests.functional.engine import helpers
from tests.integration import resizebed
from tests.integration.conftest import cleanup_domains, wait_until
from tests.integration.resizebed import DOMAIN_PREFIX
from vmflow import audit
from vmflow.drivers.libvirt import connection as libvirt_connection
from vmflow.drivers.remote import runner as remote_runner
from vmflow.engine import jobboard, runner
from vmflow.inventory import flavors, images, quotas
from vmflow.persistence import api, models

BUILDS = 60
RUNNERS = ("runner-1", "runner-2", "runner-3")
MAX_WORKERS = 10
# A live runner renews its claims every third of this. 5 s (the option's
# minimum) lapsed under this test's load on MariaDB: the steps they held
# ran again beside the running ones (see the module docstring).
CLAIM_EXPIRY = 10
PROJECT = "scale"
FLAVOR, FLAVOR_RAM_MB = "scale", 96  # the guest's kernel needs over 64 MiB
IMAGE = "tiny-acpi"
# Sixty TCG guests booting on two cores starve the kernel's timer check
# ("IO-APIC + timer doesn't work!" panics); quiet: less serial output.
EXTRA_CMDLINE = "no_timer_check quiet"
WATCH_INTERVAL = 0.5
END_LINE = re.compile(r"^(\S+ \S+) \d+ \w+ \S+ Job (?:completed successfully|"
                      r"execution failed \(consumption proceeding\)): "
                      r".*?uuid=([0-9a-f-]{36})", re.MULTILINE)
CLAIM_LOST = "lost its claim on job"
ACTIONS = models.InstanceAction.__table__
EVENTS = models.InstanceActionEvent.__table__


class OwnerWatch(threading.Thread):
    """Samples the owner of every job on the board every WATCH_INTERVAL
    seconds; ``history[job uuid]`` is the list of (monotonic time, runner
    name or None) at each change."""

    def __init__(self, conf):
        super().__init__(name="owner-watch", daemon=True)
        self.conf = conf
        self.history = collections.defaultdict(list)
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.started = time.monotonic()
        self.error = None

    def run(self):
        try:
            with jobboard.opened(self.conf) as board:
                while not self.stopped.wait(WATCH_INTERVAL):
                    now = time.monotonic()
                    owners = board_owners(board)
                    with self.lock:
                        for job_uuid, owner in owners.items():
                            changes = self.history[job_uuid]
                            if not changes or changes[-1][1] != owner:
                                changes.append((now, owner))
        except Exception as error:  # reported by stop()
            self.error = error

    def latest(self):
        """{job uuid: its owner when last seen}."""
        with self.lock:
            return {job_uuid: changes[-1][1]
                    for job_uuid, changes in self.history.items()}

    def last_owners(self):
        """{job uuid: the last runner seen holding it}."""
        with self.lock:
            return {job_uuid: owners[-1]
                    for job_uuid, owners in (
                        (job_uuid, [owner for _at, owner in changes if owner])
                        for job_uuid, changes in self.history.items())
                    if owners}

    def lapses(self):
        """Jobs whose runner's claim was seen to lapse and be taken again
        by the same runner (no other runner claimed it meanwhile)."""
        with self.lock:
            return sorted(
                job_uuid for job_uuid, changes in self.history.items()
                if any(before[1] and after[1] is None and later[1] == before[1]
                       for before, after, later in zip(
                           changes, changes[1:], changes[2:])))

    def owners_seen(self, job_uuid):
        """The owners of a job, in order, with seconds since the watch
        began."""
        with self.lock:
            return [(round(at - self.started, 1), owner)
                    for at, owner in self.history.get(job_uuid, ())]

    def stop(self):
        self.stopped.set()
        self.join(30)
        assert self.error is None, f"watching the board failed: {self.error!r}"


def board_owners(board):
    """{job uuid: name of the runner holding it, or None}."""
    return {job.uuid: _runner_name(board.find_owner(job))
            for job in board.iterjobs()}


def _runner_name(owner):
    return owner.split("@")[0] if owner else None


class ScaleOut:
    """One combination's database, board, two hosts and runners."""

    def __init__(self, conf, url, backend, namespace, hosts, sshd, work_dir):
        self.conf = conf
        self.hosts = hosts
        self.work_dir = pathlib.Path(work_dir)
        board = {"backend": backend, "namespace": namespace,
                 "claim_expiry_seconds": CLAIM_EXPIRY}
        if backend == "redis":
            board["hosts"] = "127.0.0.1:6379"
        settings = {
            "DEFAULT": {"state_path": self.work_dir / "state"},
            "database": {"connection": url},
            "jobboard": board,
            "engine": {"max_workers": MAX_WORKERS},
            "libvirt": {"virt_type": "qemu", "wait_running_seconds": 120,
                        "poll_interval_seconds": 0.5},
            "ssh": resizebed.ssh_options(sshd)}
        for group, options in settings.items():
            for option, value in options.items():
                if group == "jobboard" and option == "hosts":
                    value = [value]
                conf.set_override(option, value,
                                  group=None if group == "DEFAULT" else group)
        self.config_file = write_config(self.work_dir / "vmflow.conf",
                                        settings)
        self.cli = Cli(self.config_file)
        self.engine = api.get_engine(conf)
        self.sshd = sshd
        self.processes = {}

    def seed(self, tiny_guest):
        with api.session_scope(self.engine) as session:
            flavors.create_flavor(session, FLAVOR, 1, FLAVOR_RAM_MB, 1)
            images.add_image(session, IMAGE, str(tiny_guest.disk),
                             kernel=str(tiny_guest.kernel),
                             initrd=str(tiny_guest.initrd("acpi")),
                             cmdline=f"{tiny_guest.cmdline} {EXTRA_CMDLINE}")
            quotas.set_limits(session, PROJECT, {
                "instances": BUILDS, "cores": BUILDS,
                "ram": BUILDS * FLAVOR_RAM_MB})
            # Room for every build on either host.
            resizebed.add_hosts(session, self.hosts, self.sshd,
                                vcpus=BUILDS, memory_mb=BUILDS * FLAVOR_RAM_MB,
                                disk_gb=BUILDS)

    # -- runners -------------------------------------------------------------

    def start_runners(self):
        for name in RUNNERS:
            self.processes[name] = helpers.start_runner(
                self.config_file, name=name, log_path=self.log_path(name))
        with jobboard.opened(self.conf) as board:
            wait_until(lambda: len(runner.live_runners(board)) == len(RUNNERS),
                       120, "every runner's registration")

    def log_path(self, name):
        return self.work_dir / f"{name}.log"

    def log(self, name):
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    def logs_tail(self, tail=4000):
        return "\n".join(f"--- {name}:\n{self.log(name)[-tail:]}"
                         for name in RUNNERS)

    def ended_by(self):
        """{job uuid: [(log time, runner name) of each end its runners'
        conductors logged]}."""
        ends = collections.defaultdict(list)
        for name in RUNNERS:
            for logged_at, job_uuid in END_LINE.findall(self.log(name)):
                ends[job_uuid].append((logged_at, name))
        return ends

    def claims_lost(self):
        """The runners' log lines saying a live runner lost a claim."""
        return [line for name in RUNNERS
                for line in self.log(name).splitlines() if CLAIM_LOST in line]

    def stop_runners(self):
        """SIGTERM the live runners; {name: exit status}."""
        return {name: helpers.stop_process(process)
                for name, process in self.processes.items()}

    def close(self):
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(30)
        remote_runner.close_thread_runners()
        libvirt_connection.close_all()
        for facts in self.hosts.values():
            cleanup_domains(facts.uri, prefix=DOMAIN_PREFIX)
            shutil.rmtree(facts.instances_path)
            os.makedirs(facts.instances_path, mode=0o755)

    # -- the database ----------------------------------------------------------

    def actions(self, requests):
        """{job uuid: its instance action row} of posted ``requests``."""
        by_request = {(row.instance_uuid, row.request_id): row
                      for row in helpers.rows(self.engine,
                                              models.InstanceAction)}
        return {request.job_uuid: by_request[(request.instance_uuid,
                                              request.request_id)]
                for request in requests}

    def mid_flow(self, requests):
        """Job uuids whose action recorded a step and is unfinished."""
        with self.engine.connect() as connection:
            started = set(connection.scalars(
                sqlalchemy.select(EVENTS.c.action_id).distinct()))
        return {job_uuid for job_uuid, action in self.actions(requests).items()
                if action.finish_time is None and action.id in started}

    def finished(self, requests):
        return sum(action.finish_time is not None
                   for action in self.actions(requests).values())

    def settled(self, requests):
        if self.finished(requests) < len(requests):
            return False
        with jobboard.opened(self.conf) as board:
            if board_owners(board):
                return False
        return not helpers.rows(self.engine, models.InstanceLock)

    def last_event_id(self):
        with self.engine.connect() as connection:
            return connection.scalar(sqlalchemy.select(
                sqlalchemy.func.max(EVENTS.c.id))) or 0

    def events_by_instance(self, requests):
        """{instance uuid: its event rows (+ action id), oldest first}."""
        uuids = sorted({request.instance_uuid for request in requests})
        with self.engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.select(EVENTS, ACTIONS.c.instance_uuid)
                .join(ACTIONS, ACTIONS.c.id == EVENTS.c.action_id)
                .where(ACTIONS.c.instance_uuid.in_(uuids))
                .order_by(EVENTS.c.id)).all()
        found = collections.defaultdict(list)
        for row in rows:
            found[row.instance_uuid].append(row)
        return found

    def instances(self, requests):
        return helpers.instances_with_faults(
            self.engine, [request.instance_uuid for request in requests])

    def usage(self):
        with api.session_scope(self.engine) as session:
            return quotas.get_usage(session, PROJECT)

    def assert_audit_ok(self):
        result = self.cli("audit", check=False,
                          env={"PYTHONPATH": helpers.REPO_ROOT})
        assert result.returncode == 0, result.stdout + result.stderr
        assert audit.run_audit(self.engine)["ok"]

    # -- the hosts, asked directly ---------------------------------------------

    def domains(self):
        """{host: {instance uuid: running?}} of vmflow's domains."""
        found = {}
        for name, facts in self.hosts.items():
            connection = libvirt.open(facts.uri)
            try:
                found[name] = {
                    dom.name()[len(DOMAIN_PREFIX):]: bool(dom.isActive())
                    for dom in connection.listAllDomains()
                    if dom.name().startswith(DOMAIN_PREFIX)}
            finally:
                connection.close()
        return found

    def instance_dirs(self):
        return {name: sorted(set(os.listdir(facts.instances_path))
                             - {"_base"})
                for name, facts in self.hosts.items()}


@pytest.fixture(scope="module")
def hosts(second_libvirt_uri, tmp_path_factory):
    with resizebed.two_hosts(second_libvirt_uri,
                             tmp_path_factory.mktemp("hv-b"),
                             tag="scale") as facts:
        yield facts


@pytest.fixture
def cloud(request, conf, hosts, sshd, tiny_guest, tmp_path, redis_namespace):
    database, backend = request.param
    with databases.private_database(database, tmp_path) as url:
        cloud = ScaleOut(conf, url, backend, redis_namespace, hosts, sshd,
                         tmp_path)
        try:
            cloud.seed(tiny_guest)
            yield cloud
        finally:
            cloud.close()
