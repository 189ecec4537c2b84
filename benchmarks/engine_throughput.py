"""Build + delete throughput through the runner, against the ceiling of the
same flows on TaskFlow's in-memory backend (issue 12).

    .venv/bin/python -m benchmarks.engine_throughput [--count 40]
        [--workers 4] [--rounds 2] [--no-scale-out]

Every case runs the real build and delete flows (vmflow.flows.build and
.delete) on a fresh database holding one host on libvirt's
``test:///default`` (in-process, so every process has its own), a flavor,
a 16 MiB qcow2 image and a quota (tests/integration/
test_concurrent_builds.py's Scenario). Each case builds COUNT servers,
then deletes them:

* ceiling: WORKERS threads of this process, each taking the next server:
  insert its instance record, ``engines.run`` its build flow with
  TaskFlow's in-memory backend (no job, no logbook, no listeners); once
  all are built, the same for their deletes;
* one runner: one ``vmflow-engine`` ([engine] max_workers = WORKERS,
  serial executor) on SQLite and the SQL job board, started and
  registered first; this process posts the COUNT builds at once (one
  thread each calling ``compute.create_server``), waits until every one
  ended, then posts the COUNT deletes the same way;
* two runners (unless ``--no-scale-out``): two ``vmflow-engine`` processes
  on a private PostgreSQL database and TaskFlow's Redis job board (a
  private namespace), against the ceiling with its app data on the same
  kind of PostgreSQL database. Each runner has its own test:///default,
  so a delete claimed by the runner that did not build the server finds
  no domain there (a real delete step, without the libvirt calls).

A phase's time is from its first request (record insert or post) to the
end of its last operation (its instance action's finish time, for the
runners); throughput = 2 * COUNT / (builds' time + deletes' time). Every
build must end ACTIVE and every delete leave nothing (the scenario's
checks, audit included). The cases take turns ROUNDS times (the machine's
load changes); each prints its figures, with the mean time of one flow
(ceiling) or one job (runners: from its first step's start to its
action's finish, and the part of it inside its steps' events) and the
share of the runners' worker slots' time those jobs filled (jobs' time /
(slots * phases' time); the rest is claiming, loading each job's engine
and the conductor's idle waits), and the best of each case is compared
at the end.
"""
import argparse
import concurrent.futures
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid

from taskflow import engines, states

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run as a script, not with -m
    sys.path.insert(0, REPO_ROOT)

from benchmarks import operations_timing  # noqa: E402
from tests import databases  # noqa: E402
from tests.functional.engine import helpers  # noqa: E402
import tests.integration.test_concurrent_builds as scenario_module  # noqa
from vmflow import conf as vmflow_conf  # noqa: E402
from vmflow import flows, instances  # noqa: E402
from vmflow.engine import jobboard, runner  # noqa: E402
from vmflow.engine import persistence as engine_persistence  # noqa: E402
from vmflow.flows import build, constants, delete  # noqa: E402
from vmflow.persistence import api, models  # noqa: E402

TEST_URI = "test:///default"
PHASE_TIMEOUT = 600
START_TIMEOUT = 60
SECOND = operations_timing.SECOND
STOPPED = re.compile(r"Runner (\S+?)@\S+ stopped after (\d+) job")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=40,
                        help="servers built, then deleted (default 40)")
    parser.add_argument("--workers", type=int,
                        default=scenario_module.MAX_WORKERS,
                        help="threads of the ceiling and [engine] "
                             "max_workers of each runner (default 4)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="times each case runs, in turn; the best "
                             "of each is compared (default 2)")
    parser.add_argument("--no-scale-out", action="store_true",
                        help="skip PostgreSQL + Redis with two runners")
    args = parser.parse_args(argv)
    if min(args.count, args.workers, args.rounds) < 1:
        parser.error("need --count, --workers and --rounds >= 1")
    return args


class Case:
    """One fresh cloud (a Scenario on its own database and folder)."""

    def __init__(self, args, url, work_dir, board=None):
        os.makedirs(work_dir)
        # All set each time: CONF keeps the previous case's overrides.
        more = {"jobboard": {"claim_expiry_seconds": 30, "backend": "sql"}}
        if board is not None:
            more["jobboard"].update(board)
        self.scenario = scenario_module.Scenario(
            vmflow_conf.CONF, url, TEST_URI, work_dir,
            scenario_module.private_instances_root("throughput"),
            capacity=args.count, builds=args.count,
            max_workers=args.workers, more_settings=more)
        engine_persistence.forget_persistence()
        self.scenario.set_up()

    def close(self):
        self.scenario.close()
        api.dispose_engines()
        engine_persistence.forget_persistence()


def run_ceiling(args, case):
    """Seconds of the builds and of the deletes, threads of this process
    on TaskFlow's in-memory backend."""
    scenario = case.scenario
    names = [f"conc-{number:02d}" for number in range(args.count)]
    flow_seconds = {"build": [], "delete": []}

    def build_one(name):
        with api.writer_scope(scenario.engine) as session:
            instance_uuid = instances.create_instance_record(
                session, name, scenario_module.PROJECT,
                scenario_module.FLAVOR["name"],
                scenario_module.IMAGE)["uuid"]
        flow_seconds["build"].append(
            run_in_memory(build.get_build_flow, instance_uuid))
        return instance_uuid

    def delete_one(instance_uuid):
        flow_seconds["delete"].append(
            run_in_memory(delete.get_delete_flow, instance_uuid))

    with concurrent.futures.ThreadPoolExecutor(args.workers) as pool:
        started = time.monotonic()
        built = list(pool.map(build_one, names))
        build_seconds = time.monotonic() - started
        check_built(scenario, built)
        started = time.monotonic()
        list(pool.map(delete_one, built))
        delete_seconds = time.monotonic() - started
    requests = [FakeRequest(instance_uuid) for instance_uuid in built]
    scenario_module.assert_nothing_left(scenario, requests)
    split = ", ".join(f"{kind} {statistics.mean(seconds) * 1000:.0f} ms"
                      for kind, seconds in flow_seconds.items())
    return build_seconds, delete_seconds, f"one flow: {split}"


class FakeRequest:
    """What the scenario's checks read of a request: the instance."""

    def __init__(self, instance_uuid):
        self.instance_uuid = instance_uuid


def run_in_memory(factory, instance_uuid):
    """Run the flow; its seconds."""
    started = time.monotonic()
    engine = engines.load(factory(), store={
        constants.INSTANCE_UUID: instance_uuid,
        constants.REQUEST_ID: "req-" + str(uuid.uuid4())},
        **flows.ENGINE_OPTIONS)
    engine.run()
    state = engine.storage.get_flow_state()
    if state != states.SUCCESS:
        raise AssertionError(f"{factory.__name__} of {instance_uuid} "
                             f"ended {state}")
    return time.monotonic() - started


def check_built(scenario, instance_uuids):
    with api.session_scope(scenario.engine) as session:
        found = {(row["vm_state"], row["task_state"]) for row in (
            instances.get_instance(session, instance_uuid)
            for instance_uuid in instance_uuids)}
    if found != {(instances.ACTIVE, None)}:
        raise AssertionError(f"builds ended {found}, not all ACTIVE")


def run_runners(args, case, names):
    """Seconds of the builds and of the deletes posted to ``names``
    ``vmflow-engine`` processes (started first); jobs each ran."""
    scenario = case.scenario
    processes = [helpers.start_runner(scenario.config_file, name=name,
                                      log_path=scenario.log_path)
                 for name in names]
    try:
        wait_registered(scenario, processes, len(names))
        started = models.utcnow()
        requests = scenario.post_builds()
        posted = (models.utcnow() - started) / SECOND
        build_seconds = phase_seconds(scenario, processes, requests, started)
        check_built(scenario, [r.instance_uuid for r in requests])
        started = models.utcnow()
        deletes = scenario.post_deletes(requests)
        delete_seconds = phase_seconds(scenario, processes, deletes,
                                       started)
        scenario_module.assert_nothing_left(scenario, requests)
        slots = args.workers * len(names)
        builds, deletes = job_split(scenario, requests), job_split(
            scenario, deletes)
        busy = ((builds[0] * len(requests) + deletes[0] * len(deletes))
                / (slots * (build_seconds + delete_seconds)))
        breakdown = (f"posting the builds {posted:.2f} s; one job: build "
                     f"{builds[1]}, delete {deletes[1]}; jobs fill {busy:.0%}"
                     f" of the {slots} worker slots' time")
        for process in processes:
            status = helpers.stop_process(process)
            if status != 0:
                raise AssertionError(f"a runner exited {status}:\n"
                                     f"{scenario.runner_log()}")
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    jobs = {name: int(count) for name, count in
            STOPPED.findall(scenario.runner_log(tail=None))}
    split = ", ".join(f"{name} {count}" for name, count in sorted(
        jobs.items()))
    return build_seconds, delete_seconds, f"{breakdown}; jobs: {split}"


def job_split(scenario, requests):
    """Mean seconds of a job (first step's start to its action's
    finish), and a text with it and the part inside its steps (their
    events)."""
    spans, in_steps = [], []
    for request in requests:
        action = scenario.action(request)
        events = helpers.rows(scenario.engine, models.InstanceActionEvent,
                              action_id=action.id)
        spans.append((action.finish_time - min(
            event.start_time for event in events)) / SECOND)
        in_steps.append(sum((event.finish_time - event.start_time) / SECOND
                            for event in events))
    return statistics.mean(spans), (
        f"{statistics.mean(spans) * 1000:.0f} ms "
        f"({statistics.mean(in_steps) * 1000:.0f} ms in steps)")


def wait_registered(scenario, processes, count):
    def registered():
        check_alive(scenario, processes)
        with jobboard.opened(scenario.conf) as board:
            return len(runner.live_runners(board)) >= count
    try:
        helpers.wait_until(registered, START_TIMEOUT,
                           "the runners to register", interval=0.1)
    except AssertionError as error:
        raise AssertionError(f"{error}; their log:\n"
                             f"{scenario.runner_log()}") from None


def check_alive(scenario, processes):
    for process in processes:
        if process.poll() is not None:
            raise AssertionError(f"a runner exited {process.returncode}:\n"
                                 f"{scenario.runner_log()}")


def phase_seconds(scenario, processes, requests, started):
    """Seconds from ``started`` to the end of the last of ``requests``,
    all of which must succeed."""
    return operations_timing.seconds_until_all_end(
        scenario.engine, [request.request_id for request in requests],
        started, PHASE_TIMEOUT, check=lambda: check_alive(scenario,
                                                          processes),
        context=scenario.runner_log)


def report(label, args, build_seconds, delete_seconds, detail):
    per_second = 2 * args.count / (build_seconds + delete_seconds)
    print(f"  {label:<37} builds {build_seconds:6.2f} s  deletes "
          f"{delete_seconds:6.2f} s  {per_second:6.2f} builds+deletes/s")
    print(f"      ({detail})")
    return per_second


def private_database(kind, folder):
    os.makedirs(folder)
    return helpers.private_database(kind, folder)


def measure(args, kind, work_dir, runner_names, board=None):
    """(ceiling rate, runners' rate) on a fresh database of ``kind`` each."""
    with private_database(kind, os.path.join(work_dir, "ceiling")) as url:
        case = Case(args, url, os.path.join(work_dir, "ceiling", "cloud"))
        try:
            ceiling = report(f"ceiling, in-memory backend, {kind}", args,
                             *run_ceiling(args, case))
        finally:
            case.close()
    with private_database(kind, os.path.join(work_dir, "runners")) as url:
        case = Case(args, url, os.path.join(work_dir, "runners", "cloud"),
                    board)
        try:
            figures = run_runners(args, case, runner_names)
        finally:
            case.close()
    board_name = board["backend"] if board else "sql"
    label = (f"{len(runner_names)} runner{'s' * (len(runner_names) > 1)}, "
             f"{kind} + {board_name} board")
    return ceiling, report(label, args, *figures)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # no migration chatter
    vmflow_conf.parse(config_files=[])
    work_dir = tempfile.mkdtemp(prefix="vmflow-bench-throughput-")
    print(f"{args.count} builds then {args.count} deletes on {TEST_URI}, "
          f"{args.workers} workers (ceiling threads = each runner's "
          f"[engine] max_workers, serial executor); {args.rounds} "
          "round(s), the cases taking turns")
    best = {}
    try:
        with helpers.redis_namespace() as namespace:
            for number in range(1, args.rounds + 1):
                print(f"round {number}")
                folder = os.path.join(work_dir, f"round-{number}")
                for key, rate in measure_round(args, folder,
                                               namespace).items():
                    best[key] = max(best.get(key, 0), rate)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    print(f"best of {args.rounds}: one runner on SQLite / ceiling on SQLite"
          f" = {best['one'] / best['ceiling']:.2f} (target >= 0.70)")
    if not args.no_scale_out:
        print(f"best of {args.rounds}: two runners on PostgreSQL + Redis / "
              f"ceiling on PostgreSQL = {best['two'] / best['pg']:.2f};  "
              f"/ one runner on SQLite = {best['two'] / best['one']:.2f}")


def measure_round(args, folder, namespace):
    """Builds+deletes per second of each case, in turn."""
    rates = dict(zip(("ceiling", "one"), measure(
        args, "sqlite", os.path.join(folder, "sqlite"), ["runner-a"])))
    if not args.no_scale_out:
        rates.update(zip(("pg", "two"), measure(
            args, "postgresql", os.path.join(folder, "pg"),
            ["runner-a", "runner-b"],
            board={"backend": "redis", "namespace": namespace})))
    return rates


if __name__ == "__main__":
    main()
