"""Runner path measurements (not a test): the per-step cost of a flow run
through the whole runner path against the same flow on TaskFlow's
in-memory backend, and where the runner path's database statements go.

    .venv/bin/python -m benchmarks.runner_path [sqlite|postgresql|mariadb]

Each round runs FLOWS flows of TASKS no-op steps twice:

* baseline: ``engines.run`` on TaskFlow's in-memory backend, serial
  engine, no board, no listeners;
* runner path: each flow posted as an operation (``post_operation``) on a
  new instance, claimed and run by a :class:`vmflow.engine.runner.Runner`
  in this process (its event listener, claim keep-alive and job end) on
  the project persistence, one job at a time.

Per step: the wall time from the first step's start to the last step's
end of a flow, divided by its steps (the steps record the times
themselves); and the whole job per step: ``engines.run`` (load, compile,
run) against the runner's dispatch (the conductor's ``compilation_start``)
to done (the runner recorded the job's end: action finished, lock
released). Per job: post -> done, split into its parts. Rounds are
interleaved; figures are medians. The timed rounds also add up the wall
time spent in the event listener, the claim keep-alive, the job end and
the persistence backend's updates (per step).

A last, untimed round counts the database statements, commits and
connection checkouts each component of the runner path issues (SQLAlchemy
``before_cursor_execute``/``commit``/``checkout`` events, and the
persistence backend's driver-level updates; a component is found on the
statement's call stack). On PostgreSQL and MariaDB every checkout also
pings the server (``pool_pre_ping``), outside these counts.
A server database is private to the run and dropped afterwards.
"""
import collections
import functools
import statistics
import sys
import tempfile
import threading
import time
import uuid

from sqlalchemy import event
from taskflow import engines, task
from taskflow.patterns import linear_flow

from tests.functional.engine import helpers
from vmflow import conf as vmflow_conf
from vmflow.engine import listeners, outcome, posting, row_updates, runner
from vmflow.persistence import api

FLOWS = 10
TASKS = 10
ROUNDS = 5
BENCH_KEY = "bench_key"
ACTION = "bench"
# When each flow's first step started and its last step ended
# (time.perf_counter), by the flow's bench key.
SPANS = {}


class RecordTime(task.Task):
    """Does nothing but note when it ran (see SPANS).

    Reversion strategy: nothing to undo.
    """

    def execute(self, bench_key):
        now = time.perf_counter()
        SPANS.setdefault(bench_key, [now, now])[1] = time.perf_counter()


def get_noop_flow():
    return linear_flow.Flow("noop").add(
        *[RecordTime(f"step{number}") for number in range(TASKS)])


def _span_ms_per_step(key):
    first_start, last_end = SPANS.pop(key)
    return (last_end - first_start) * 1000 / TASKS


def baseline_round():
    """Per flow on the in-memory backend: (per-step ms, the whole
    ``engines.run`` -- load, compile, run -- in ms per step)."""
    measured = []
    for _ in range(FLOWS):
        key = uuid.uuid4().hex
        started = time.perf_counter()
        engines.run(get_noop_flow(), store={BENCH_KEY: key},
                    engine="serial")
        whole = (time.perf_counter() - started) * 1000 / TASKS
        measured.append((_span_ms_per_step(key), whole))
    return measured


def runner_round(conf, bench_runner, instances):
    """Per job, one at a time, one per instance: (per-step ms, post ->
    dispatch, dispatch -> first step, last step -> done, dispatch -> done
    per step, post -> done; all in ms)."""
    conductor = bench_runner.conductor
    dispatched = {}
    conductor.notifier.register(
        "compilation_start", lambda _event, details: dispatched.setdefault(
            details["job"].uuid, time.perf_counter()))
    measured = []
    for instance in instances:
        key = uuid.uuid4().hex
        ended_before = len(conductor.finished_jobs)
        posted = time.perf_counter()
        job_uuid = posting.post_operation(ACTION, instance, get_noop_flow,
                                          {BENCH_KEY: key}, conf=conf)
        while len(conductor.finished_jobs) == ended_before:
            time.sleep(0.0005)
        done = time.perf_counter()
        while not conductor.idle:  # consumed
            time.sleep(0.0005)
        first_start, last_end = SPANS[key]
        started = dispatched[job_uuid]
        measured.append((
            _span_ms_per_step(key), (started - posted) * 1000,
            (first_start - started) * 1000, (done - last_end) * 1000,
            (done - started) * 1000 / TASKS, (done - posted) * 1000))
    conductor.notifier.deregister_event("compilation_start")
    return measured


class StatementCounter:
    """Counts statements, commits and connection checkouts on ``engine``
    (and the engines derived from it with ``execution_options``) by the
    runner path component on the call stack."""

    # (label, file of the component, class of its ``self`` or None,
    # function or None), by priority: the first found anywhere on the
    # stack names the component.
    COMPONENTS = (
        ("event listener", "vmflow/engine/listeners.py",
         "ActionEventListener", None),
        ("claim keep-alive", "vmflow/engine/listeners.py", "ClaimKeepAlive",
         None),
        ("posting", "vmflow/engine/posting.py", None, None),
        ("job end (action, lock)", "vmflow/engine/outcome.py", None, None),
        ("runner heartbeat", "vmflow/engine/runner.py", "Runner", "_beat"),
        *(("TaskFlow persistence", path, None, None)
          for path in ("vmflow/engine/persistence_backend.py",
                       "vmflow/engine/row_updates.py",
                       "taskflow/persistence/")),
        ("job board", "vmflow/engine/jobboard_sql", None, None),
        *(("runner services", f"vmflow/engine/{module}.py", None, None)
          for module in ("reconcile", "host_watch", "power_sync",
                         "auto_confirm")),
    )
    KINDS = ("statements", "commits", "checkouts")

    def __init__(self, engine):
        self._engine = engine
        self.counts = collections.defaultdict(collections.Counter)
        self._lock = threading.Lock()
        self._hooks = (("before_cursor_execute", self._on_statement),
                       ("commit", self._on_commit),
                       ("checkout", self._on_checkout))

    def __enter__(self):
        for name, hook in self._hooks:
            event.listen(self._engine, name, hook)
        self._driver_run = row_updates.DriverUpdates.run
        row_updates.DriverUpdates.run = self._counted_driver_run()
        return self

    def __exit__(self, *exc_info):
        row_updates.DriverUpdates.run = self._driver_run
        for name, hook in self._hooks:
            event.remove(self._engine, name, hook)

    def _counted_driver_run(self):
        """The persistence backend's updates go straight through the
        driver, past SQLAlchemy's events: counted here (one transaction,
        BEGIN IMMEDIATE first on SQLite)."""
        run, counter = self._driver_run, self
        begin = 1 if self._engine.dialect.name == "sqlite" else 0

        @functools.wraps(run)
        def counted(driver, updates):
            updates = list(updates)
            counter._count("statements", len(updates) + begin)
            counter._count("commits")
            return run(driver, updates)
        return counted

    def _on_statement(self, *args):
        self._count("statements")

    def _on_commit(self, *args):
        self._count("commits")

    def _on_checkout(self, *args):
        self._count("checkouts")

    def _count(self, kind, number=1):
        component = self._component()
        with self._lock:
            self.counts[component][kind] += number

    def _component(self):
        found = set()
        frame = sys._getframe(3)
        while frame is not None:
            filename = frame.f_code.co_filename
            owner = type(frame.f_locals.get("self")).__name__
            function = frame.f_code.co_name
            for index, (_label, path, cls, name) in enumerate(
                    self.COMPONENTS):
                if (path in filename and cls in (None, owner)
                        and name in (None, function)):
                    found.add(index)
            frame = frame.f_back
        if not found:
            return "other"
        return self.COMPONENTS[min(found)][0]

    def report(self, jobs):
        steps = jobs * TASKS
        labels = list(dict.fromkeys(
            [component[0] for component in self.COMPONENTS] + ["other"]))
        totals = collections.Counter()
        lines = []
        for label in labels:
            counts = self.counts.get(label)
            if not counts:
                continue
            totals.update(counts)
            lines.append(_count_line(label, counts, jobs, steps))
        lines.append(_count_line("all", totals, jobs, steps))
        return lines


class ComponentTimer:
    """Wall time spent in the runner path's listeners, job end and the
    persistence backend's updates (patched in for the timed rounds
    only)."""

    PARTS = (("event listener", listeners.ActionEventListener,
              ("_task_receiver", "_flow_receiver", "_retry_receiver",
               "deregister")),
             ("claim keep-alive", listeners.ClaimKeepAlive,
              ("_task_receiver", "_flow_receiver", "_retry_receiver")),
             ("job end (action, lock)", outcome, ("record_job_end",)),
             ("persistence updates", row_updates.DriverUpdates, ("run",)))

    def __init__(self):
        self.seconds = collections.Counter()
        self._patched = []

    def __enter__(self):
        for label, owner, names in self.PARTS:
            for name in names:
                original = getattr(owner, name, None)
                if original is None:
                    continue
                self._patched.append((owner, name, owner.__dict__.get(name)))
                setattr(owner, name, self._timed(label, original))
        return self

    def __exit__(self, *exc_info):
        for owner, name, original in reversed(self._patched):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)

    def _timed(self, label, function):
        @functools.wraps(function)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
        return timed


def _count_line(label, counts, jobs, steps):
    figures = "  ".join(
        f"{counts[kind] / steps:5.2f} {kind}/step "
        f"({counts[kind] / jobs:5.1f}/job)"
        for kind in StatementCounter.KINDS)
    return f"  {label:<24} {figures}"


def _median(values):
    return statistics.median(values)


def _instances(db):
    return [helpers.add_instance(db) for _ in range(FLOWS)]


def main(kind="sqlite"):
    conf = vmflow_conf.CONF
    vmflow_conf.parse(config_files=[])
    folder = tempfile.mkdtemp()
    conf.set_override("state_path", folder)
    with helpers.private_database(kind, folder) as url:
        conf.set_override("connection", url, group="database")
        db = api.get_engine(conf)
        baseline, runner_path = [], []
        with helpers.RunnerThread(conf, "bench") as bench:
            runner_round(conf, bench.runner, _instances(db))  # warm-up
            baseline_round()
            with ComponentTimer() as timer:
                for _ in range(ROUNDS):
                    baseline.extend(baseline_round())
                    runner_path.extend(
                        runner_round(conf, bench.runner, _instances(db)))
            instances = _instances(db)
            with StatementCounter(db) as counter:
                runner_round(conf, bench.runner, instances)
        api.dispose_engines()
    base_ms, base_whole_ms = (_median(column) for column in zip(*baseline))
    (step_ms, to_dispatch, to_first, to_done, whole_ms,
     post_done) = (_median(column) for column in zip(*runner_path))
    print(f"{kind}: {FLOWS} flows x {TASKS} no-op steps, {ROUNDS} "
          "interleaved rounds, medians")
    print(f"{kind}: first step's start to last step's end, per step: "
          f"in-memory engine {base_ms:.2f} ms, runner path {step_ms:.2f} ms "
          f"= {step_ms / base_ms:.2f} x")
    print(f"{kind}: whole job per step: in-memory engines.run (load, "
          f"compile, run) {base_whole_ms:.2f} ms, runner path from dispatch "
          f"to done {whole_ms:.2f} ms = {whole_ms / base_whole_ms:.2f} x")
    print(f"{kind}: runner path per job: post -> done {post_done:.0f} ms = "
          f"post -> dispatch {to_dispatch:.0f} ms (the claim poll, every "
          f"{runner.IDLE_WAIT_SECONDS} s) + dispatch -> first step "
          f"{to_first:.0f} ms (engine load) + the steps + last step -> "
          f"done {to_done:.0f} ms (flow end, job end)")
    steps = ROUNDS * FLOWS * TASKS
    print(f"{kind}: time in the runner path's parts, per step: " + ", ".join(
        f"{label} {timer.seconds[label] * 1000 / steps:.2f} ms"
        for label, _owner, _names in ComponentTimer.PARTS))
    print(f"{kind}: database work of one round ({FLOWS} jobs, "
          f"{FLOWS * TASKS} steps):")
    for line in counter.report(FLOWS):
        print(line)


if __name__ == "__main__":
    # Run as the importable module, not as __main__: the runner re-creates
    # the flow by its factory's dotted name, and SPANS must be one dict.
    from benchmarks import runner_path
    runner_path.main(*sys.argv[1:])
