"""Issue 12's scale-out check: three ``vmflow-engine`` runners share sixty
builds of the real tiny guest on two real libvirt hosts, and one of them
is SIGKILLed midway -- on PostgreSQL with TaskFlow's Redis board, and on
MariaDB with the embedded SQL board (the cloud: :mod:`.scalebed`).

The hosts are :func:`tests.integration.resizebed.two_hosts`' two private
libvirtds; not qemu:///system, which other test sessions share (the audit
claims every vmflow domain of a registered host). The builds are posted
through :mod:`vmflow.compute` while the runners run. The runner to kill
is the one the board names as the owner of the most jobs in the middle
of their flow (some steps recorded, the action unfinished), once a
quarter of the builds ended. The others take its jobs over when its
claims end (the Redis board: after the claim expiry; the SQL board: as
soon as the dead process is reaped, as for any runner of this machine)
and a worker of theirs is free.

What must come out: every build ACTIVE with its guest running on its
host, or cleanly reverted (ERROR, no host, nothing left anywhere); every
job ended, the dead runner's by another runner (the conductor's end-of-job
log line, in each runner's own log), after the kill (the owners sampled
from the board); no two runs at the same time -- the build and delete
flows are linear, so the events of an instance, in the order they were
opened, must each end before the next one starts, whichever runner wrote
them, none may stay open, and no step may succeed twice in one action;
``vmflow audit`` passes. Then the sixty deletes leave no domain, disk,
claim or quota on either host, and the audit passes again.

A claim a live runner could not renew in time (the machine too loaded for
the claim expiry) may be taken over: that is no failure as long as the
two runs do not overlap (its engine must stop before its next step); the
summary printed at the end counts those.
"""
import collections
import datetime
import signal
import time

import pytest

from tests.functional.engine import helpers
from tests.integration.conftest import wait_until
from tests.integration.resizebed import HOST_A, HOST_B
from tests.integration.scalebed import (  # noqa: F401 (fixtures)
    BUILDS, FLAVOR, FLAVOR_RAM_MB, IMAGE, PROJECT, RUNNERS, OwnerWatch,
    board_owners, cloud, hosts)
from vmflow import compute, instances
from vmflow.engine import jobboard
from vmflow.engine.actions import EVENT_SUCCESS, SUCCESS
from vmflow.persistence import models

# Generous bounds for a loaded two-core machine (a run takes minutes).
SETTLE_TIMEOUT = 420
KILL_TIMEOUT = 240
POLLED_TASK = "WaitForDomainRunning"  # one event per poll
COMBINATIONS = [pytest.param(("postgresql", "redis"), id="postgresql-redis"),
                pytest.param(("mariadb", "sql"), id="mariadb-sql")]


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


def assert_taken_over_after_the_kill(watch, enders, victim, held,
                                     killed_at):
    """The dead runner's jobs were ended by another runner, who was not
    seen holding them before the kill."""
    for job_uuid in held:
        ender = enders[job_uuid]
        changes = [(at, owner) for at, owner in watch.history[job_uuid]
                   if owner is not None]
        assert ender != victim, job_uuid
        assert all(at > killed_at for at, owner in changes
                   if owner != victim), (job_uuid, changes, killed_at)


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
        assert_taken_over_after_the_kill(watch, enders, victim, held,
                                         killed_at)
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
    summary["claims taken from live runners"] = len(cloud.claims_lost())
    print(f"after the deletes: {summary}")
    survivors = [name for name in RUNNERS if name != victim]
    assert cloud.stop_runners() == dict.fromkeys(survivors, 0)
    print(f"whole test: {time.monotonic() - started:.1f} s")
