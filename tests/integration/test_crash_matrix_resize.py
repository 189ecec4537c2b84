"""The crash matrix of resize, confirm and revert: a real ``vmflow-engine``
is killed with SIGKILL at every atom boundary of the resize flow (prep,
execute, finish), of confirmResize and of revertResize, started again,
and the job must end consistent: the guest's disk is never lost (a
pattern written into it with qemu-io is read back on the host the server
ends on), the server is on one host (RESIZED on the destination after a
resize, back on the source after a revert, active on the destination
after a confirm) and the audit passes.

Cases are flow x task x crash point, the tasks taken from the flows with
:func:`vmflow.flows.iter_tasks`, the crash points those of
:mod:`vmflow.tasks.hooks` (as in :mod:`tests.integration.test_crash_matrix`:
for ``during-revert`` the next task fails, the last one fails itself).

Two hosts on this machine (no SSH: the disk copy takes the local runner;
the SSH path has its own tests): the private libvirtd of
``second_libvirt_uri`` and a third one of this module, each with its own
instances path, the flowbed's blank guest (no boot; it ignores ACPI, so
``shutdown_timeout_seconds = 0`` powers it off at once).

Cheap by design (the CI run is near its budget): one database and one
server for the whole module. A case starts from where the previous one
left the server, and the cases are ordered so that it is the start the
next one needs (a resumed resize leaves it RESIZED: the start of a confirm
or revert case; those and a reverted resize leave it active: the start of
the next resize). When it is not (a case run alone, or after a failed
one), :func:`server_ready` brings it there with inline operations, or
builds a new server. 56 resumed resizes feed 75 confirm/revert cases, so
19 of those start after an inline resize.

A ``during-revert`` case of confirm or revert ends the job in ERROR (they
only go forward; their sentinel marks the failure): it then checks the
disk that flow never touches and posts the same operation again (from
ERROR, as an operator would), which must finish it.

160 cases took 13 min 47 s on the shared 2-core test bed (load 4-8 from
other sessions): resize about 6 s a case, revert 5.5 s, confirm 2 s. Each
libvirt destroy is 1.4-1.8 s of that: the test bed's init reaps exited
QEMU processes slowly and libvirt waits for it.
"""
import itertools
import os
import signal
import subprocess
import tempfile

import pytest

from tests.functional.engine import helpers
from tests.functional.test_build_delete_flows import leftovers
from tests.integration import forkserver
from tests.integration.conftest import (
    cleanup_domains, run_testbed_script)
from tests.integration.flowbed import (  # noqa: F401 (fixtures)
    DOMAIN_PREFIX, FLAVOR, HOST, IMAGE, NOTHING_LEFT, PROJECT, disks_root,
    make_cloud, sweeper, template_db)
from vmflow import compute, conf as vmflow_conf, instances, migrations
from vmflow import power_states
from vmflow.drivers.libvirt import connection as libvirt_connection
from vmflow.engine import actions, operations
from vmflow.flows import iter_tasks, resize
from vmflow.inventory import flavors, hosts, quotas
from vmflow.persistence import api, models
from vmflow.tasks import base, hooks

BEFORE, AFTER, DURING_REVERT = hooks.CRASH_POINTS
RESIZE, CONFIRM, REVERT = "resize", "confirmResize", "revertResize"
FLOWS = {RESIZE: resize.get_resize_flow,
         CONFIRM: resize.get_confirm_resize_flow,
         REVERT: resize.get_revert_resize_flow}
TASKS = {flow: [task.name for task in iter_tasks(factory())]
         for flow, factory in FLOWS.items()}
OTHER_HOST = "hv3"
BIGGER = "tiny-plus"  # same disk as FLAVOR: a resize either way is allowed
RAM_MB = {FLAVOR: 64, BIGGER: 96}
PATTERN = "0x5a"
PATTERN_BYTES = 1024 * 1024
RUNNER_TIMEOUT = 60
LIBVIRT_OPTIONS = {"shutdown_timeout_seconds": 0,
                   "poll_interval_seconds": 0.05}


def ordered_cases():
    """Every (flow, task, point), in an order where each case ends in the
    state the next one starts from."""
    resized = [(RESIZE, task, point) for task in TASKS[RESIZE]
               for point in (BEFORE, AFTER)]
    reverted = [(RESIZE, task, DURING_REVERT) for task in TASKS[RESIZE]]
    # confirm and revert cases alternate, so the server changes host.
    ending = [case for pair in itertools.zip_longest(*(
        [(flow, task, point) for task in TASKS[flow]
         for point in hooks.CRASH_POINTS] for flow in (CONFIRM, REVERT)))
        for case in pair if case]
    cases = []
    while resized or reverted or ending:
        for queue in (resized, ending, reverted):
            if queue:
                cases.append(queue.pop(0))
    return cases


CASES = [pytest.param(*case, id="-".join(case)) for case in ordered_cases()]


def test_the_matrix_covers_every_task_of_the_flows():
    assert TASKS[RESIZE][0] == "RestoreInstanceStateOnRevert"
    assert TASKS[RESIZE][-1] == "MarkInstanceResized"
    assert TASKS[CONFIRM][-1] == "MarkInstanceResizeConfirmed"
    assert TASKS[REVERT][-1] == "MarkInstanceResizeReverted"
    assert "CopyDiskToDestination" in TASKS[RESIZE]
    expected = {(flow, task, point) for flow, tasks in TASKS.items()
                for task in tasks for point in hooks.CRASH_POINTS}
    cases = [tuple(case.values) for case in CASES]
    assert sorted(cases) == sorted(expected)
    assert len(cases) == len(expected) == 3 * sum(map(len, TASKS.values()))


# --- the test bed ------------------------------------------------------------

@pytest.fixture(scope="module")
def third_libvirt_uri(tmp_path_factory):
    """A libvirtd of this module only: the second host."""
    state_dir = tmp_path_factory.mktemp("hv3")
    uri = run_testbed_script("start-second-libvirtd.sh", str(state_dir),
                             timeout=300).strip().splitlines()[-1]
    try:
        yield uri
    finally:
        libvirt_connection.close_all()
        run_testbed_script("stop-second-libvirtd.sh", str(state_dir),
                           timeout=300)


@pytest.fixture(scope="module")
def module_conf(tmp_path_factory):
    """The global CONF for the whole module (as the ``conf`` fixture)."""
    conf = vmflow_conf.CONF
    vmflow_conf.parse(config_files=[])
    conf.set_override("state_path",
                      str(tmp_path_factory.mktemp("resize-state")))
    yield conf
    api.dispose_engines()
    conf.reset()
    conf.clear_override("state_path")


@pytest.fixture(scope="module")
def bed(module_conf, tmp_path_factory, template_db, disks_root, sweeper,
        third_libvirt_uri):  # noqa: F811
    """One database with two hosts and a second flavor, for every case."""
    tmp_path = tmp_path_factory.mktemp("crash-matrix-resize")
    other_path = tempfile.mkdtemp(prefix="hv3-", dir=disks_root)
    os.chmod(other_path, 0o755)  # QEMU runs as libvirt-qemu
    with make_cloud(module_conf, tmp_path, template_db, disks_root, sweeper,
                    libvirt=LIBVIRT_OPTIONS) as cloud:
        with cloud.session() as session:
            hosts.add_host(session, OTHER_HOST, third_libvirt_uri, 2, 1024,
                           10, instances_path=other_path, verify=False)
            flavors.create_flavor(session, BIGGER, 1, RAM_MB[BIGGER], 1)
            quotas.set_limits(session, PROJECT, {"instances": 4, "cores": 4,
                                                 "ram": 1024})
        try:
            yield cloud
        finally:
            removed = cleanup_domains(third_libvirt_uri, prefix=DOMAIN_PREFIX)
            assert set(removed) <= {DOMAIN_PREFIX + uuid
                                    for uuid in cloud.instance_uuids()}


@pytest.fixture(scope="module")
def runners():
    server = forkserver.ForkServer()
    yield server
    server.close()


# --- the server ------------------------------------------------------------------

def run(bed, request):
    status = bed.run_inline(request)
    assert status.result == actions.SUCCESS, (status, bed.fault(
        request.instance_uuid))
    return request.instance_uuid


def disk_holds_pattern(host, uuid):
    """True when the instance's disk on ``host`` reads back the pattern
    (qemu-io, read-only and sharing the image with a running QEMU)."""
    path = base.get_driver(host).images.disk_path(uuid)
    result = subprocess.run(
        ["qemu-io", "-U", "-r", "-f", "qcow2", "-c",
         f"read -P {PATTERN} 0 {PATTERN_BYTES}", path],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return (f"read {PATTERN_BYTES}/{PATTERN_BYTES} bytes" in result.stdout
            and "Pattern verification failed" not in result.stdout)


def new_server(bed):
    """A server built, stopped, given the pattern, started again."""
    uuid = run(bed, compute.create_server("vm1", FLAVOR, IMAGE, PROJECT,
                                          conf=bed.conf))
    run(bed, compute.power_server("stop", uuid, PROJECT, conf=bed.conf))
    path = base.get_driver(bed.instance(uuid)["host"]).images.disk_path(uuid)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c",
                    f"write -P {PATTERN} 0 {PATTERN_BYTES}", path],
                   check=True, capture_output=True, timeout=60)
    run(bed, compute.power_server("start", uuid, PROJECT, conf=bed.conf))
    return uuid


def server_ready(bed, state):
    """The module's server, idle and ``state`` (active or resized): moved
    there with an inline resize or revert when it is the other one, built
    anew (the old one deleted) when it is neither."""
    for uuid in bed.instance_uuids():
        instance = bed.instance(uuid)
        if instance["vm_state"] == instances.DELETED:
            continue
        if instance["task_state"] is not None or instance["vm_state"] not in (
                instances.ACTIVE, instances.RESIZED):
            run(bed, compute.delete_server(uuid, PROJECT, conf=bed.conf))
            continue
        if instance["vm_state"] == state:
            return uuid
        if state == instances.RESIZED:
            return run(bed, post(bed, RESIZE, uuid))
        return run(bed, post(bed, REVERT, uuid))
    uuid = new_server(bed)
    return run(bed, post(bed, RESIZE, uuid)) if (
        state == instances.RESIZED) else uuid


def post(bed, flow, uuid):
    if flow == RESIZE:
        flavor = (BIGGER if bed.instance(uuid)["memory_mb"] == RAM_MB[FLAVOR]
                  else FLAVOR)
        return compute.resize_server(uuid, flavor, project=PROJECT,
                                     conf=bed.conf)
    end = compute.confirm_resize if flow == CONFIRM else compute.revert_resize
    return end(uuid, PROJECT, conf=bed.conf)


def in_flight_migration(bed, uuid):
    with bed.session() as session:
        return migrations.awaiting_confirm(session, uuid)


def migration_statuses(bed, uuid):
    """``{migration uuid: status}`` of the server's migrations."""
    with bed.session() as session:
        return {migration["uuid"]: migration["status"] for migration
                in migrations.list_migrations(session, uuid)}


# --- what must hold -----------------------------------------------------------

def failing_task(flow, task):
    tasks = TASKS[flow]
    return tasks[min(tasks.index(task) + 1, len(tasks) - 1)]


def crash_env(flow, task, point, marker):
    env = {hooks.CRASH_AT: f"{task}:{point}", hooks.CRASH_MARKER: str(marker)}
    if point == DURING_REVERT:
        env[hooks.FAIL_AT] = failing_task(flow, task)
    return env


def assert_job_ended(bed, request, succeeded):
    status = operations.operation_status(request.job_uuid, bed.conf)
    assert status.finished, (status, bed.log())
    assert status.result == (actions.SUCCESS if succeeded
                             else actions.ERROR), (status, bed.log())
    row, = helpers.rows(bed.engine, models.Job, uuid=request.job_uuid)
    assert (row.state, row.owner.split("@")[0]) == ("COMPLETE", "restarted")
    assert helpers.rows(bed.engine, models.InstanceLock,
                        instance_uuid=request.instance_uuid) == []


def assert_on_one_host(bed, uuid, host, other, vm_state, ram_mb,
                       other_keeps=False):
    """The server is ``vm_state`` on ``host`` with ``ram_mb``, running, its
    disk holding the pattern; ``other`` has nothing of it, or (RESIZED,
    ``other_keeps``) its shut-off domain and its original disk."""
    instance = bed.instance(uuid)
    assert (instance["vm_state"], instance["task_state"], instance["host"],
            instance["memory_mb"], instance["power_state"]) == (
        vm_state, None, host, ram_mb, power_states.RUNNING)
    assert leftovers(bed, uuid, host) == {"claim": True, "domain": True,
                                          "disks": True}
    assert base.get_driver(host).get_power_state(uuid) == power_states.RUNNING
    assert disk_holds_pattern(host, uuid)
    there = leftovers(bed, uuid, other)
    if not other_keeps:
        assert there == NOTHING_LEFT
    else:
        # the instance's claim moved; the migration holds the source's
        assert there == {"claim": False, "domain": True, "disks": True}
        assert base.get_driver(other).get_power_state(uuid) == (
            power_states.SHUTDOWN)
        assert disk_holds_pattern(other, uuid)
    bed.assert_audit_ok()


def run_again(bed, flow, uuid):
    """Post the failed confirm or revert again, as an operator would (a
    failed one left the server in ERROR; they only go forward, so running
    them again finishes them) and run it inline."""
    run(bed, post(bed, flow, uuid))


def assert_failed_end(bed, flow, task, start):
    """A confirm or revert whose next task failed: ERROR with the fault,
    the disk it never touches still holding the pattern; run again, it
    finishes."""
    uuid, source, dest = start[:3]
    failed = failing_task(flow, task)
    instance = bed.instance(uuid)
    assert (instance["vm_state"], instance["task_state"]) == (
        instances.ERROR, None)
    assert bed.fault(uuid) == (
        f"{failed} failed: injected fault in {failed} execute")
    assert disk_holds_pattern(dest if flow == CONFIRM else source, uuid)
    run_again(bed, flow, uuid)


def assert_outcome(bed, flow, task, point, start, before):
    """What the job must have left, from the flows: a resumed resize is
    RESIZED on the destination, a failed one back on the source (active,
    a fault, the migration error or never recorded); a confirm ends active
    on the destination, a revert on the source."""
    uuid, source, dest, old_ram, new_ram = start
    failed = failing_task(flow, task) if point == DURING_REVERT else None
    if failed and flow != RESIZE:
        assert_failed_end(bed, flow, task, start)
    statuses = migration_statuses(bed, uuid)
    new = [status for migration, status in statuses.items()
           if migration not in before]
    if flow == RESIZE and failed is None:
        assert new == [migrations.FINISHED]
        assert_on_one_host(bed, uuid, dest, source, instances.RESIZED,
                           new_ram, other_keeps=True)
    elif flow == RESIZE:
        assert bed.fault(uuid) == (
            f"{failed} failed: injected fault in {failed} execute")
        recorded = (TASKS[RESIZE].index(failed)
                    > TASKS[RESIZE].index("CreateMigrationRecord"))
        assert new == ([migrations.ERROR] if recorded else [])
        assert_on_one_host(bed, uuid, source, dest, instances.ACTIVE,
                           old_ram)
    elif flow == CONFIRM:
        assert (new, statuses[before[-1]]) == ([], migrations.CONFIRMED)
        assert_on_one_host(bed, uuid, dest, source, instances.ACTIVE,
                           new_ram)
    else:
        assert (new, statuses[before[-1]]) == ([], migrations.REVERTED)
        assert_on_one_host(bed, uuid, source, dest, instances.ACTIVE,
                           old_ram)


def case_start(bed, flow):
    """(uuid, source, dest, old ram, new ram) of the case's server, made
    ready for ``flow``; dest and new ram are None before a resize."""
    if flow == RESIZE:
        uuid = server_ready(bed, instances.ACTIVE)
        instance = bed.instance(uuid)
        dest = OTHER_HOST if instance["host"] == HOST else HOST
        new_ram = RAM_MB[BIGGER if instance["memory_mb"] == RAM_MB[FLAVOR]
                         else FLAVOR]
        return uuid, instance["host"], dest, instance["memory_mb"], new_ram
    uuid = server_ready(bed, instances.RESIZED)
    migration = in_flight_migration(bed, uuid)
    return (uuid, migration["source_host"], migration["dest_host"],
            migration["old_memory_mb"], migration["new_memory_mb"])


# --- the matrix --------------------------------------------------------------

@pytest.mark.parametrize("flow, task, point", CASES)
def test_sigkill_at_an_atom_boundary_then_restart(bed, runners, tmp_path,
                                                  flow, task, point):
    bed.log_path.write_text("")
    start = case_start(bed, flow)
    before = list(migration_statuses(bed, start[0]))
    request = post(bed, flow, start[0])
    marker = tmp_path / "crashed"
    env = crash_env(flow, task, point, marker)

    crashed = runners.start_runner(bed.config_file, "--once", name="crashed",
                                   log_path=bed.log_path, env=env)
    assert crashed.wait(timeout=RUNNER_TIMEOUT) == -signal.SIGKILL, bed.log()
    assert marker.read_text() == f"{task}:{point}\n"
    row, = helpers.rows(bed.engine, models.Job, uuid=request.job_uuid)
    assert (row.state, row.owner.split("@")[0]) == ("CLAIMED", "crashed")

    restarted = runners.start_runner(bed.config_file, "--once",
                                     name="restarted", log_path=bed.log_path,
                                     env=env)
    assert restarted.wait(timeout=RUNNER_TIMEOUT) == 0, bed.log()
    assert_job_ended(bed, request, succeeded=point != DURING_REVERT)
    assert_outcome(bed, flow, task, point, start, before)
