"""Concurrent builds, measured: issue 3's concurrency scenario on SQLite
with one runner (tests/integration/test_concurrent_builds.py runs it as a
test).

    .venv/bin/python -m benchmarks.concurrent_builds [--count 20]
        [--capacity N] [--max-workers 4] [--uri URI]

COUNT builds are posted at once (one thread each calling
``vmflow.compute.create_server``) with no runner alive, against one host
with room for CAPACITY of them (default COUNT / 2); then one
``vmflow-engine --once`` runs them all. The outcome is checked as the test
checks it (CAPACITY ACTIVE, the rest ERROR for no valid host, audit
passing), then every server is deleted through the delete flow and
nothing may be left. Prints wall times, builds per second and the
per-build latency from posting to the end of the build (its instance
action's start and finish times).

Without ``--uri`` a private libvirtd is started for the run
(tools/testbed/start-second-libvirtd.sh) and stopped afterwards: the audit
claims every ``vmflow-*`` domain of a registered hypervisor, so the shared
qemu:///system would see other runs' guests. Run as root on the test bed.
"""
import argparse
import datetime
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run as a script, not with -m
    sys.path.insert(0, REPO_ROOT)

from tests.functional.engine import helpers  # noqa: E402
import tests.integration.test_concurrent_builds as scenario_module  # noqa
from vmflow import conf as vmflow_conf  # noqa: E402
from vmflow import instances  # noqa: E402
from vmflow.persistence import api, models  # noqa: E402

TESTBED = os.path.join(REPO_ROOT, "tools", "testbed")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=20,
                        help="builds posted at once (default 20)")
    parser.add_argument("--capacity", type=int,
                        help="builds the host has room for "
                             "(default: count / 2)")
    parser.add_argument("--max-workers", type=int,
                        default=scenario_module.MAX_WORKERS,
                        help="jobs the runner runs at once (default 4)")
    parser.add_argument("--uri",
                        help="libvirt URI of a hypervisor no one else "
                             "uses (default: start a private libvirtd)")
    args = parser.parse_args(argv)
    if args.capacity is None:
        args.capacity = args.count // 2
    if not 0 < args.capacity <= args.count:
        parser.error("need 0 < capacity <= count")
    return args


def start_private_libvirtd():
    """(uri, state dir) of a new private libvirtd."""
    state_dir = tempfile.mkdtemp(prefix="vmflow-bench-hv-", dir="/tmp")
    result = subprocess.run(
        ["bash", os.path.join(TESTBED, "start-second-libvirtd.sh"),
         state_dir], capture_output=True, text=True, timeout=300,
        check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        sys.exit(f"start-second-libvirtd.sh failed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1], state_dir


def stop_private_libvirtd(state_dir):
    subprocess.run(["bash", os.path.join(TESTBED, "stop-second-libvirtd.sh"),
                    state_dir], capture_output=True, timeout=300,
                   check=True, stdin=subprocess.DEVNULL)
    shutil.rmtree(state_dir, ignore_errors=True)


def percentile(values, fraction):
    """The ``fraction`` quantile of ``values`` (linear interpolation)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values):
    return (f"median {statistics.median(values):6.2f} s   "
            f"p95 {percentile(values, 0.95):6.2f} s   "
            f"max {max(values):6.2f} s")


def build_figures(scenario, requests):
    """Per build: (vm_state, seconds from posting to the end, seconds from
    its first task to the end); and the first task's start time."""
    found = scenario.instances(requests)
    rows, first_task = [], None
    for request in requests:
        action = scenario.action(request)
        events = helpers.rows(scenario.engine, models.InstanceActionEvent,
                              action_id=action.id)
        started = min(event.start_time for event in events)
        first_task = min(first_task or started, started)
        rows.append((found[request.instance_uuid]["vm_state"],
                     _seconds(action.finish_time - action.start_time),
                     _seconds(action.finish_time - started)))
    return rows, first_task


def _seconds(delta):
    return delta / datetime.timedelta(seconds=1)


def run(args, uri, work_dir):
    conf = vmflow_conf.CONF
    vmflow_conf.parse(config_files=[])
    url = f"sqlite:///{work_dir}/bench.sqlite"
    helpers._sync(url)
    scenario = scenario_module.Scenario(
        conf, url, uri, work_dir,
        scenario_module.private_instances_root("bench"),
        capacity=args.capacity, builds=args.count,
        max_workers=args.max_workers)
    try:
        scenario.set_up()
        started = time.monotonic()
        requests = scenario.post_builds()
        posted = time.monotonic()
        scenario.run_runners(["bench-runner"])
        ended = time.monotonic()
        scenario_module.assert_builds_split_at_capacity(scenario, requests)
        figures, first_task = build_figures(scenario, requests)
        last_end = max(scenario.action(request).finish_time
                       for request in requests)

        deleting = time.monotonic()
        scenario.post_deletes(requests)
        scenario.run_runners(["bench-runner"])
        deleted = time.monotonic()
        scenario_module.assert_nothing_left(scenario, requests)
    finally:
        scenario.close()
        api.dispose_engines()

    total = ended - started
    processing = _seconds(last_end - first_task)
    active = [row for row in figures if row[0] == instances.ACTIVE]
    failed = [row for row in figures if row[0] != instances.ACTIVE]
    print(f"{args.count} builds posted at once, host room for "
          f"{args.capacity}, SQLite, one runner with max_workers "
          f"{args.max_workers}")
    print(f"  outcome           {len(active)} ACTIVE, {len(failed)} ERROR "
          "(no valid host); audit ok; delete of all left nothing")
    print(f"  post all          {posted - started:6.2f} s")
    print(f"  runner wall       {ended - posted:6.2f} s  (start-up, "
          "builds, drain and exit)")
    print(f"  total wall        {total:6.2f} s  (first post to runner "
          f"exit)   {args.count / total:5.2f} builds/s")
    print(f"  processing        {processing:6.2f} s  (first task to last "
          f"build end)  {args.count / processing:5.2f} builds/s")
    print(f"  post -> end, all     {spread([row[1] for row in figures])}")
    print(f"  post -> end, ACTIVE  {spread([row[1] for row in active])}")
    print(f"  post -> end, ERROR   {spread([row[1] for row in failed])}")
    print(f"  first task -> end    {spread([row[2] for row in figures])}")
    print(f"  delete all        {deleted - deleting:6.2f} s  (post "
          "deletes, runner, drain)")


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # no migration chatter
    if os.geteuid() != 0:
        sys.exit("run as root (QEMU guests, a private libvirtd)")
    state_dir = None
    uri = args.uri
    if uri is None:
        uri, state_dir = start_private_libvirtd()
    work_dir = tempfile.mkdtemp(prefix="vmflow-bench-")
    try:
        run(args, uri, work_dir)
    finally:
        if state_dir is not None:
            stop_private_libvirtd(state_dir)
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
