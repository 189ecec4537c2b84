"""Issue 10's concurrency "must show": resizes posted at once against a
destination with room for only some of them never overcommit it.

Six servers on ``host1`` are resized at once to a flavor of which the
destination ``dest`` (a private test-driver hypervisor) has room for three.
Two runners (each a real :class:`vmflow.engine.runner.Runner` in a thread
of this process, claiming from one SQL job board) work on all six jobs at
the same time: every job is held just before it claims on the destination
until all six got there, so the six claims race. Three end RESIZED on the
destination; the other three fail cleanly (no valid host, back on the
source as they were, nothing held for them); the destination's claims
never add up to more than it has, whenever they are read; quota holds and
``vmflow audit`` agree. Confirming the three at once then leaves only the
new flavor's claims and quota. On SQLite and on PostgreSQL (where claims
really run side by side, each locking the host's row).

Runners run in this process because the test driver's hypervisors live in
the process that opened them.
"""
import collections
import threading

import pytest

from tests import databases
from tests.cloud import cloud, image_file  # noqa: F401 (fixtures)
from tests.conftest import wait_until
from tests.functional.engine import helpers
from tests.functional.test_build_delete_flows import (
    NOTHING_LEFT, assert_audit_ok, built, leftovers)
from vmflow import compute, instances, migrations
from vmflow.engine import runner
from vmflow.inventory import flavors, quotas, servers
from vmflow.persistence import api, models
from vmflow.tasks import hooks

SOURCE, DEST = "host1", "dest"
PROJECT = "demo"
RESIZES = 6
CAPACITY = 3                 # resizes of the new flavor that fit on DEST
OLD = {"vcpus": 1, "memory_mb": 64, "disk_gb": 1}          # "tiny"
NEW = {"name": "bigger", "vcpus": 2, "memory_mb": 128, "disk_gb": 2}
RUNNERS = ("runner-a", "runner-b")
# the step every job is held at until all of them reached it
CLAIM_STEP = "ClaimResourcesOnDestination"
RUN_TIMEOUT = 120


@pytest.fixture(params=["sqlite", "postgresql"])
def db_engine(request, conf, tmp_path):
    """The cloud's database (and job board): SQLite or PostgreSQL."""
    with databases.private_database(request.param, tmp_path) as url:
        conf.set_override("connection", url, group="database")
        yield api.get_engine(conf)


@pytest.fixture
def crowded(cloud, conf, tmp_path, monkeypatch):  # noqa: F811 (fixture)
    """RESIZES servers on SOURCE; DEST with room for CAPACITY of NEW
    (memory is what runs out: allocation ratios 1.0)."""
    for option in ("cpu_allocation_ratio", "ram_allocation_ratio",
                   "disk_allocation_ratio"):
        conf.set_override(option, 1.0, group="scheduler")
    # each runner works on half the jobs at once: all six run together
    conf.set_override("max_workers", RESIZES // len(RUNNERS), group="engine")
    conf.set_override("claim_expiry_seconds", 30, group="jobboard")
    with cloud.session() as session:
        session.get(models.Host, _host_id(cloud, SOURCE)).vcpus = RESIZES
        flavors.create_flavor(session, NEW["name"], NEW["vcpus"],
                              NEW["memory_mb"], NEW["disk_gb"])
        quotas.set_limits(session, PROJECT, {
            "instances": RESIZES, "cores": RESIZES * NEW["vcpus"],
            "ram": RESIZES * NEW["memory_mb"]})
    uuids = [built(cloud, f"crowd-{number}") for number in range(RESIZES)]
    cloud.add_host(DEST, vcpus=RESIZES * NEW["vcpus"],
                   memory_mb=CAPACITY * NEW["memory_mb"],
                   disk_gb=RESIZES * NEW["disk_gb"])
    gate = tmp_path / "gate"
    gate.mkdir()
    monkeypatch.setenv(hooks.PAUSE_AT, f"{CLAIM_STEP}:before-execute")
    monkeypatch.setenv(hooks.PAUSE_DIR, str(gate))
    cloud.gate = gate
    return cloud, uuids


def _host_id(cloud, name):
    return helpers.rows(cloud.engine, models.Host, name=name)[0].id


class ClaimWatch:
    """Reads the sum of DEST's claims every few milliseconds in a thread
    of its own while the runners work."""

    def __init__(self, cloud):
        self.engine = cloud.engine
        self.host_id = _host_id(cloud, DEST)
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def sum(self):
        claimed = collections.Counter()
        for row in helpers.rows(self.engine, models.Allocation,
                                host_id=self.host_id):
            claimed.update(vcpus=row.vcpus, memory_mb=row.memory_mb,
                           disk_gb=row.disk_gb)
        return dict(claimed)

    def _watch(self):
        while not self._stop.is_set():
            self.samples.append(self.sum())
            self._stop.wait(0.005)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._stop.set()
        self._thread.join(10)


def post_at_once(request, arguments):
    """``request(argument)`` from one thread each, released together."""
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
    assert not errors, errors
    return results


def claim_steps_started(cloud, requests):
    """How many of the requests' actions started CLAIM_STEP."""
    count = 0
    for request in requests:
        action, = [row for row in helpers.rows(
            cloud.engine, models.InstanceAction,
            instance_uuid=request.instance_uuid)
            if row.request_id == request.request_id]
        count += any(event.event == CLAIM_STEP for event in helpers.rows(
            cloud.engine, models.InstanceActionEvent, action_id=action.id))
    return count


def run_runners(conf, cloud, requests, hold_at_claim):
    """Two draining runners in threads until the board is empty; with
    ``hold_at_claim`` every job waits before its destination claim until
    all of them are there."""
    if not hold_at_claim:
        (cloud.gate / "release").touch()
    runners = [runner.Runner(name, conf, drain=True) for name in RUNNERS]
    results = {}
    threads = [threading.Thread(
        target=lambda r=r: results.setdefault(r.who, r.run()))
        for r in runners]
    for thread in threads:
        thread.start()
    try:
        if hold_at_claim:
            wait_until(lambda: claim_steps_started(cloud, requests)
                       == len(requests), RUN_TIMEOUT,
                       f"all {len(requests)} jobs at {CLAIM_STEP}")
            (cloud.gate / "release").touch()
        for thread in threads:
            thread.join(RUN_TIMEOUT)
        assert not any(thread.is_alive() for thread in threads), (
            "a runner did not drain the board")
    finally:
        (cloud.gate / "release").touch()
        for each in runners:
            each.stop()
        for thread in threads:
            thread.join(30)
    return results


def job_owners(cloud, requests):
    return collections.Counter(
        row.owner.split("@")[0] for request in requests
        for row in helpers.rows(cloud.engine, models.Job,
                                uuid=request.job_uuid))


def migration_of(cloud, uuid):
    rows = helpers.rows(cloud.engine, models.Migration, instance_uuid=uuid)
    assert len(rows) == 1, rows
    return rows[0]


def claims_by_consumer(cloud):
    hosts = {row.id: row.name for row in helpers.rows(cloud.engine,
                                                      models.Host)}
    return {(row.consumer_uuid, hosts[row.host_id]): {
        "vcpus": row.vcpus, "memory_mb": row.memory_mb,
        "disk_gb": row.disk_gb} for row in helpers.rows(cloud.engine,
                                                        models.Allocation)}


def quota_holds(cloud):
    return {row.consumer_uuid: (row.instances, row.cores, row.ram)
            for row in helpers.rows(cloud.engine, models.QuotaHold)}


def new_resources():
    return {key: NEW[key] for key in OLD}


def test_concurrent_resizes_never_overcommit_the_destination(conf, crowded):
    cloud, uuids = crowded
    requests = post_at_once(lambda uuid: compute.resize_server(
        uuid, NEW["name"], project=PROJECT, conf=conf), uuids)
    with ClaimWatch(cloud) as watch:
        run_runners(conf, cloud, requests, hold_at_claim=True)
    owners = job_owners(cloud, requests)
    assert set(owners) == set(RUNNERS), owners

    # never more on DEST than it has, at every reading and at the end
    capacity = {"vcpus": RESIZES * NEW["vcpus"],
                "memory_mb": CAPACITY * NEW["memory_mb"],
                "disk_gb": RESIZES * NEW["disk_gb"]}
    final = watch.sum()
    readings = watch.samples + [final]
    assert len(watch.samples) > 1
    over = [reading for reading in readings
            if any(reading.get(key, 0) > limit
                   for key, limit in capacity.items())]
    assert not over, (f"{len(over)} of {len(readings)} readings over "
                      f"{capacity}, the first: {over[0]}")
    assert final["memory_mb"] == capacity["memory_mb"], final

    by_state = collections.defaultdict(list)
    for uuid in uuids:
        by_state[cloud.instance(uuid)["vm_state"]].append(uuid)
    assert {state: len(found) for state, found in by_state.items()} == {
        instances.RESIZED: CAPACITY, instances.ACTIVE: RESIZES - CAPACITY}
    resized, refused = by_state[instances.RESIZED], by_state[instances.ACTIVE]

    expected_claims, expected_holds = {}, {}
    old_hold = (1, OLD["vcpus"], OLD["memory_mb"])
    delta_hold = (0, NEW["vcpus"] - OLD["vcpus"],
                  NEW["memory_mb"] - OLD["memory_mb"])
    for uuid in resized:
        instance, migration = cloud.instance(uuid), migration_of(cloud, uuid)
        assert (instance["host"], instance["task_state"],
                instance["power_state"], instance["vcpus"],
                instance["memory_mb"], migration.status,
                migration.dest_host) == (
            DEST, None, "running", NEW["vcpus"], NEW["memory_mb"],
            migrations.FINISHED, DEST)
        expected_claims[(uuid, DEST)] = new_resources()
        expected_claims[(migration.uuid, SOURCE)] = dict(OLD)
        expected_holds[uuid] = old_hold
        expected_holds[migration.uuid] = delta_hold
    for uuid in refused:
        instance, migration = cloud.instance(uuid), migration_of(cloud, uuid)
        assert (instance["host"], instance["task_state"],
                instance["power_state"], instance["vcpus"],
                instance["memory_mb"], migration.status) == (
            SOURCE, None, "running", OLD["vcpus"], OLD["memory_mb"],
            migrations.ERROR)
        with cloud.session() as session:
            fault = servers.latest_fault(session, uuid) or ""
        assert "no valid host" in fault.lower(), fault
        assert leftovers(cloud, uuid, DEST) == NOTHING_LEFT
        assert leftovers(cloud, uuid, SOURCE) == {
            "claim": True, "domain": True, "disks": True}
        expected_claims[(uuid, SOURCE)] = dict(OLD)
        expected_holds[uuid] = old_hold
    assert claims_by_consumer(cloud) == expected_claims
    assert quota_holds(cloud) == expected_holds
    assert helpers.rows(cloud.engine, models.InstanceLock) == []
    assert_audit_ok(cloud)

    # confirming the three at once keeps only the new flavor's claims
    confirms = post_at_once(lambda uuid: compute.confirm_resize(
        uuid, project=PROJECT, conf=conf), resized)
    run_runners(conf, cloud, confirms, hold_at_claim=False)
    for uuid in resized:
        assert (cloud.instance(uuid)["vm_state"],
                migration_of(cloud, uuid).status) == (
            instances.ACTIVE, migrations.CONFIRMED)
        assert leftovers(cloud, uuid, SOURCE) == NOTHING_LEFT
        expected_claims.pop((migration_of(cloud, uuid).uuid, SOURCE))
        expected_holds.pop(migration_of(cloud, uuid).uuid)
        expected_holds[uuid] = (1, NEW["vcpus"], NEW["memory_mb"])
    assert claims_by_consumer(cloud) == expected_claims
    assert quota_holds(cloud) == expected_holds
    assert_audit_ok(cloud)
