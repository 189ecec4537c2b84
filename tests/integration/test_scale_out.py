"""Issue 12's scale-out check: three ``vmflow-engine`` runners share sixty
builds of the real tiny guest on two real libvirt hosts, and one of them
is SIGKILLed midway -- on PostgreSQL with TaskFlow's Redis board, and on
MariaDB with the embedded SQL board.

The hosts are :func:`tests.integration.resizebed.two_hosts`' two private
libvirtds (host B's disk work over the real sshd); not qemu:///system,
which other test sessions share (the audit claims every vmflow domain of
a registered host). The runner to kill is the one the board names as the
owner of the most jobs in the middle of their flow (some steps recorded,
the action unfinished), once a quarter of the builds ended. The others
take its jobs over when its claims end (the Redis board: after the claim
expiry; the SQL board: as soon as the dead process is reaped, as for any
runner of this machine).

What must come out: every build ACTIVE with its guest running on its host,
or cleanly reverted (ERROR, no host, nothing left anywhere); every job
ended exactly once, the dead runner's by another runner (the conductor's
end-of-job log line, in each runner's own log); no two runs at the same
time -- the build and delete flows are linear, so the events of an
instance, in the order they were opened, must each end before the next
one starts, whichever runner wrote them; a job's owner, sampled from the
board while it ran, changed only from the dead runner to its taker, after
the kill; ``vmflow audit`` passes. Then the sixty deletes leave no domain,
disk, claim or quota on either host, and the audit passes again.
"""
import collections
import datetime
import os
import pathlib
import re
import shutil
import signal
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
from tests.integration.resizebed import DOMAIN_PREFIX, HOST_A, HOST_B
from vmflow import audit, compute, instances
from vmflow.drivers.libvirt import connection as libvirt_connection
from vmflow.drivers.remote import runner as remote_runner
from vmflow.engine import jobboard, runner
from vmflow.engine.actions import EVENT_SUCCESS, SUCCESS
from vmflow.inventory import flavors, images, quotas, servers
from vmflow.persistence import api, models

BUILDS = 60
RUNNERS = ("runner-1", "runner-2", "runner-3")
MAX_WORKERS = 10
CLAIM_EXPIRY = 5
PROJECT = "scale"
FLAVOR, FLAVOR_RAM_MB = "scale", 96  # the guest's kernel needs over 64 MiB
IMAGE = "tiny-acpi"
# Sixty TCG guests booting on two cores starve the kernel's timer check
# ("IO-APIC + timer doesn't work!" panics); quiet: less serial output.
EXTRA_CMDLINE = "no_timer_check quiet"
# Generous bounds for a loaded two-core machine (a run takes minutes).
SETTLE_TIMEOUT = 420
KILL_TIMEOUT = 240
WATCH_INTERVAL = 0.5
POLLED_TASK = "WaitForDomainRunning"  # one event per poll
END_LINE = re.compile(r"^(\S+ \S+) \d+ \w+ \S+ Job (?:completed successfully|"
                      r"execution failed \(consumption proceeding\)): "
                      r".*?uuid=([0-9a-f-]{36})", re.MULTILINE)
CLAIM_LOST = "lost its claim on job"
ACTIONS = models.InstanceAction.__table__
EVENTS = models.InstanceActionEvent.__table__
COMBINATIONS = [pytest.param(("postgresql", "redis"), id="postgresql-redis"),
                pytest.param(("mariadb", "sql"), id="mariadb-sql")]


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
        with api.session_scope(self.engine) as session:
            return {request.instance_uuid: dict(
                instances.get_instance(session, request.instance_uuid),
                fault=servers.latest_fault(session, request.instance_uuid))
                for request in requests}

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


# --- the phases -----------------------------------------------------------------

def post_builds(cloud):
    return [compute.create_server(f"scale-{number:02d}", FLAVOR, IMAGE,
                                  project=PROJECT, conf=cloud.conf)
            for number in range(BUILDS)]


def pick_victim(cloud, watch, builds):
    """Once a quarter of the builds ended: the runner the board names as
    the owner of the most jobs in mid-flow (at least two)."""
    def candidate():
        if cloud.finished(builds) < BUILDS // 4:
            return None
        busy = cloud.mid_flow(builds)
        counts = collections.Counter(
            owner for job_uuid, owner in watch.latest().items()
            if job_uuid in busy and owner)
        if counts and counts.most_common(1)[0][1] >= 2:
            return counts.most_common(1)[0][0]
        return None
    return wait_until(candidate, KILL_TIMEOUT, "a runner holding two jobs "
                      "in mid-flow", interval=0.5)


def kill(cloud, watch, name, builds):
    """SIGKILL runner ``name``; returns (the jobs it held, those of them
    in mid-flow, the last event id it may have written, kill time)."""
    process = cloud.processes[name]
    process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    killed_utc = models.utcnow()
    time.sleep(0.5)  # what it was committing has landed
    # Not reaped yet: no runner of the SQL board takes its claims over.
    # Its jobs: those it holds now, and those it was last seen holding
    # that did not end (a claim that lapsed just now shows no owner).
    with jobboard.opened(cloud.conf) as board:
        owners = board_owners(board)
    unfinished = {job_uuid for job_uuid, action in cloud.actions(
        builds).items() if action.finish_time is None}
    held = {job_uuid for job_uuid, owner in owners.items() if owner == name}
    held |= {job_uuid for job_uuid, owner in watch.last_owners().items()
             if owner == name and job_uuid in unfinished}
    last_event = cloud.last_event_id()
    mid_flow = held & cloud.mid_flow(builds)
    assert process.wait(10) == -signal.SIGKILL
    del cloud.processes[name]
    return held, mid_flow, last_event, killed_at, killed_utc


def settle(cloud, requests, what):
    wait_until(lambda: cloud.settled(requests), SETTLE_TIMEOUT,
               f"every {what} to end", interval=0.5)


# --- checks -----------------------------------------------------------------------

def assert_builds_active_or_reverted(cloud, builds):
    """Returns {host: number of ACTIVE builds there}."""
    found = cloud.instances(builds)
    domains = cloud.domains()
    dirs = cloud.instance_dirs()
    active = collections.Counter()
    for uuid, instance in found.items():
        assert instance["task_state"] is None, instance
        if instance["vm_state"] == instances.ACTIVE:
            host = instance["host"]
            assert host in (HOST_A, HOST_B), instance
            assert instance["power_state"] == "running", instance
            assert domains[host].get(uuid) is True, (instance, domains)
            assert uuid in dirs[host], (instance, dirs)
            active[host] += 1
        else:
            assert (instance["vm_state"], instance["host"]) == (
                instances.ERROR, None), (instance, cloud.logs_tail())
            assert instance["fault"], instance
            assert all(uuid not in domains[h] and uuid not in dirs[h]
                       for h in cloud.hosts), (instance, domains, dirs)
    live = {uuid for uuid, i in found.items()
            if i["vm_state"] == instances.ACTIVE}
    assert {row.consumer_uuid for row in helpers.rows(
        cloud.engine, models.Allocation)} == live
    assert cloud.usage() == {"instances": len(live), "cores": len(live),
                             "ram": len(live) * FLAVOR_RAM_MB}
    assert {uuid for host in domains.values() for uuid in host} == live
    return dict(active)


def assert_runs_never_overlap(cloud, requests, watch):
    """The flows are linear: an instance's events, in the order they were
    opened, each end before the next one starts (whichever runner wrote
    them), none stays open, and a step succeeds at most once per action
    (the resumed flow goes on from the saved step)."""
    problems = collections.defaultdict(list)
    for uuid, events in cloud.events_by_instance(requests).items():
        for before, after in zip(events, events[1:]):
            if (before.finish_time is None
                    or before.finish_time > after.start_time):
                problems[uuid].append(f"{_describe(before)} overlaps "
                                      f"{_describe(after)}")
        if events[-1].finish_time is None:
            problems[uuid].append(f"{_describe(events[-1])} never ended")
        successes = collections.Counter(
            (event.action_id, event.event) for event in events
            if event.result == EVENT_SUCCESS and event.event != POLLED_TASK)
        problems[uuid].extend(
            f"{step} of action {action_id} succeeded {count} times"
            for (action_id, step), count in successes.items() if count > 1)
    report = []
    for request in requests:
        if problems.get(request.instance_uuid):
            report.append(f"instance {request.instance_uuid}, job "
                          f"{request.job_uuid} (owners seen: "
                          f"{watch.owners_seen(request.job_uuid)}):")
            report.extend("  " + line
                          for line in problems.pop(request.instance_uuid))
    assert not report, "\n".join(report + cloud.claims_lost())


def _describe(event):
    return (f"event {event.id} {event.event} of action {event.action_id}: "
            f"{event.start_time} .. {event.finish_time} {event.result}")


def last_enders(cloud, requests):
    """{job uuid: the runner whose conductor logged its end last}. A job
    may end more than once (by design: when consuming it failed, or its
    runner died before, it is run again, and its finished flow only ends
    again); each of these requests must have ended."""
    ends = cloud.ended_by()
    missing = [request for request in requests
               if request.job_uuid not in ends]
    assert not missing, (missing, cloud.logs_tail())
    return {request.job_uuid: max(ends[request.job_uuid])[1]
            for request in requests}


def assert_owners_changed_only_at_the_takeover(watch, enders, victim, held,
                                               killed_at):
    for job_uuid, ender in enders.items():
        changes = [(at, owner) for at, owner in watch.history[job_uuid]
                   if owner is not None]
        if job_uuid in held:
            assert ender != victim, job_uuid
            assert {owner for _at, owner in changes} <= {victim, ender}
            assert all(at > killed_at for at, owner in changes
                       if owner != victim), (job_uuid, changes, killed_at)
        else:
            assert {owner for _at, owner in changes} <= {ender}, (
                job_uuid, changes, ender)


def takeover_delays(cloud, builds, mid_flow, last_event, killed_utc):
    """Seconds from the kill to the first step a taker ran, per job."""
    actions = cloud.actions(builds)
    events = cloud.events_by_instance(builds)
    delays = []
    for request in builds:
        if request.job_uuid not in mid_flow:
            continue
        after = [event for event in events[request.instance_uuid]
                 if event.id > last_event
                 and event.action_id == actions[request.job_uuid].id]
        if after:
            delays.append(round((after[0].start_time - killed_utc)
                                / datetime.timedelta(seconds=1), 1))
    return sorted(delays)


# --- the test -------------------------------------------------------------------

@pytest.mark.parametrize("cloud", COMBINATIONS, indirect=True)
def test_sixty_builds_three_runners_one_killed(cloud):
    started = time.monotonic()
    summary = {}

    def mark(phase):
        summary.setdefault("seconds", {})[phase] = round(
            time.monotonic() - started, 1)

    cloud.start_runners()
    watch = OwnerWatch(cloud.conf)
    watch.start()
    try:
        builds = post_builds(cloud)
        mark("posted")
        victim = pick_victim(cloud, watch, builds)
        held, mid_flow, last_event, killed_at, killed_utc = kill(
            cloud, watch, victim, builds)
        mark("killed")
        summary["killed"] = (f"{victim} holding {len(held)} job(s), "
                             f"{len(mid_flow)} in mid-flow")
        assert mid_flow, (victim, held)
        settle(cloud, builds, "build")
        mark("builds ended")
        summary["taken over after (s)"] = takeover_delays(
            cloud, builds, mid_flow, last_event, killed_utc)

        summary["ACTIVE per host"] = assert_builds_active_or_reverted(
            cloud, builds)
        assert_runs_never_overlap(cloud, builds, watch)
        enders = last_enders(cloud, builds)
        summary["builds ended per runner"] = dict(
            collections.Counter(enders.values()))
        summary["jobs ended more than once"] = sum(
            len(ends) > 1 for ends in cloud.ended_by().values())
        summary["claims seen lapsing under a live runner"] = len(
            watch.lapses())
        assert set(enders.values()) >= set(RUNNERS) - {victim}, enders
        assert_owners_changed_only_at_the_takeover(
            watch, enders, victim, held, killed_at)
        cloud.assert_audit_ok()

        deletes = [compute.delete_server(request.instance_uuid, PROJECT,
                                         conf=cloud.conf)
                   for request in builds]
        settle(cloud, deletes, "delete")
        mark("deletes ended")
    finally:
        watch.stop()
        print(f"\n{cloud.conf.database.connection.split(':')[0]} + "
              f"{cloud.conf.jobboard.backend} board: {summary}")

    found = cloud.instances(builds)
    assert {(i["vm_state"], i["task_state"]) for i in found.values()} == {
        (instances.DELETED, None)}, cloud.logs_tail()
    assert all(action.result == SUCCESS
               for action in cloud.actions(deletes).values())
    assert cloud.domains() == {HOST_A: {}, HOST_B: {}}
    assert cloud.instance_dirs() == {HOST_A: [], HOST_B: []}
    assert helpers.rows(cloud.engine, models.Allocation) == []
    assert cloud.usage() == {"instances": 0, "cores": 0, "ram": 0}
    cloud.assert_audit_ok()
    assert_runs_never_overlap(cloud, builds + deletes, watch)
    last_enders(cloud, deletes)
    assert cloud.claims_lost() == []
    survivors = [name for name in RUNNERS if name != victim]
    assert cloud.stop_runners() == dict.fromkeys(survivors, 0)
    print(f"whole test: {time.monotonic() - started:.1f} s")
