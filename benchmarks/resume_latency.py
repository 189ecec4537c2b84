"""How soon a job goes on after its runner is SIGKILLed mid-step (issue 12):
restarted on the same machine, and taken over by a second runner.

    .venv/bin/python -m benchmarks.resume_latency [--rounds 5]
        [--expiry 5]

The job is the sample flow ``first -> wait -> last``
(tests/functional/engine/sample_flows.py): ``wait`` blocks until its gate
file exists and records the wall-clock time it started in the job's trace
file, so every figure ends when that step starts running again. The
database is SQLite (one file for all rounds); each measurement posts a
new job. Every round measures every case in turn (the machine's load
changes over a run).

* resume: a ``vmflow-engine`` is SIGKILLed while it runs ``wait`` and a new
  one is started; measured from just before the new process is exec'd
  (interpreter start and imports included) to ``wait`` starting again.
  Baselines measured in the same run: a new runner started the same way
  with the job posted and never claimed (start to ``wait`` starting; its
  ``first`` step runs before), and a bare interpreter importing the
  runner's modules. Target: resume <= 1.5 s.
* takeover: runner A runs ``wait``; runner B is started and claiming;
  after a wait spread evenly over the rounds across one heartbeat interval
  (so the kills fall at every phase of B's heartbeat and A's claim
  renewals), A is SIGKILLed (and reaped); measured from the kill to B
  running ``wait``. On the SQL board B ends the claims of this machine's dead
  runners at its heartbeat (every third of the claim expiry); on the Redis
  board (a private namespace on 127.0.0.1:6379) the claim must expire
  first. Target: <= claim expiry + 1 s ([jobboard] claim_expiry_seconds,
  default here 5 s: the option's minimum).

After each round the gate is opened and the job must succeed with
``first`` and ``last`` run once and ``wait`` passed once. Prints the
minimum, median and maximum of each.
"""
import argparse
import contextlib
import logging
import os
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run as a script, not with -m
    sys.path.insert(0, REPO_ROOT)

from tests import databases  # noqa: E402
from tests.conftest import write_config  # noqa: E402
from tests.functional.engine import helpers, sample_flows  # noqa: E402
from vmflow import conf as vmflow_conf  # noqa: E402
from vmflow.engine import operations  # noqa: E402
from vmflow.engine import persistence as engine_persistence  # noqa: E402
from vmflow.persistence import api  # noqa: E402

STEP = "wait"
STEP_TIMEOUT = 60
JOB_TIMEOUT = 60
RESUME_TARGET = 1.5
IMPORTS = "import vmflow.cmd.engine, vmflow.engine.runner"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5,
                        help="kills measured per case (default 5)")
    parser.add_argument("--expiry", type=int, default=5,
                        help="[jobboard] claim_expiry_seconds (default 5, "
                             "the option's minimum)")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("need at least one round")
    return args


class Bench:
    """One SQLite database, a job board configuration and runner
    processes started on it."""

    def __init__(self, work_dir, url, board):
        self.work_dir = pathlib.Path(work_dir)
        self.work_dir.mkdir()
        self.url = url
        self.board = board
        self.conf = vmflow_conf.CONF
        self.db = self.use()
        self.config_file = write_config(self.work_dir / "runner.conf", {
            "DEFAULT": {"state_path": self.work_dir / "state"},
            "database": {"connection": url},
            "jobboard": board})
        self.processes = []
        self._jobs = self._runners = 0

    def use(self):
        """Point CONF (this process's posting and reading) at this bench's
        database and board; its database engine."""
        self.conf.set_override("connection", self.url, group="database")
        for option, value in self.board.items():
            self.conf.set_override(option, value, group="jobboard")
        return api.get_engine(self.conf)

    def start_runner(self, name):
        """A runner process; (the process, time.time() just before it was
        started, its log file)."""
        self._runners += 1
        log_path = self.work_dir / f"{name}-{self._runners}.log"
        started = time.time()
        process = helpers.start_runner(self.config_file, name=name,
                                       log_path=log_path)
        self.processes.append(process)
        return process, started, log_path

    def post(self):
        """A new job (no runner holds it yet); its uuid, trace and gate."""
        self.use()
        self._jobs += 1
        trace = str(self.work_dir / f"trace-{self._jobs}")
        gate = self.work_dir / f"gate-{self._jobs}"
        job_uuid = helpers.post_sample(self.conf, self.db, trace,
                                       sample_flows.TIMED_GATED,
                                       gate_file=str(gate))
        return Job(job_uuid, trace, gate)

    def kill(self, process):
        """SIGKILL ``process`` and reap it (a dead runner's pid must be
        gone for the SQL board to see it dead); time.time() of the kill."""
        killed = time.time()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        return killed

    def stop_all(self):
        """SIGTERM every runner still running (SIGKILL if it hangs)."""
        for process in self.processes:
            try:
                helpers.stop_process(process)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=30)
        self.processes = []

    def finish(self, job, process, log_path):
        """Open the gate; the job must succeed, each step once (``wait``
        started as often as it was killed in, plus one)."""
        self.use()
        job.gate.touch()

        def ended():
            check_running(process, log_path)
            return operations.operation_status(job.uuid, self.conf).finished
        helpers.wait_until(ended, JOB_TIMEOUT, f"job {job.uuid} to end",
                           interval=0.05)
        status = operations.operation_status(job.uuid, self.conf)
        steps = sample_flows.read_trace(job.trace)
        counts = {line: steps.count(line) for line in (
            "execute:first", f"passed:{STEP}", "execute:last")}
        if not status.succeeded or set(counts.values()) != {1}:
            raise AssertionError(f"job {job.uuid}: {status}, steps {steps}"
                                 f"\n{log_path.read_text()}")

    def close(self):
        self.stop_all()


class Job:
    def __init__(self, job_uuid, trace, gate):
        self.uuid = job_uuid
        self.trace = trace
        self.gate = gate

    def step_started(self, times, process, log_path):
        """Wait until ``wait`` started ``times`` times; when it last did."""
        def started():
            check_running(process, log_path)
            found = sample_flows.start_times(self.trace, STEP)
            return found[times - 1] if len(found) >= times else None
        return helpers.wait_until(started, STEP_TIMEOUT,
                                  f"{STEP!r} to start ({times})",
                                  interval=0.01)


def check_running(process, log_path):
    if process.poll() is not None:
        raise AssertionError(f"runner exited {process.returncode}:\n"
                             f"{log_path.read_text()}")


def wait_claiming(process, log_path):
    """Until the runner's log says it claims jobs (services started)."""
    def claiming():
        check_running(process, log_path)
        return "is claiming jobs" in log_path.read_text()
    helpers.wait_until(claiming, STEP_TIMEOUT, "the runner to claim jobs",
                       interval=0.01)


def measure_fresh_start(bench):
    """Start of a runner to ``wait`` of a job posted before it."""
    job = bench.post()
    process, started, log_path = bench.start_runner("fresh")
    seconds = job.step_started(1, process, log_path) - started
    bench.finish(job, process, log_path)
    bench.stop_all()
    return seconds


def measure_resume(bench):
    """Start of a runner to ``wait`` of the job a SIGKILLed one held."""
    job = bench.post()
    first, _, first_log = bench.start_runner("first")
    job.step_started(1, first, first_log)
    bench.kill(first)
    process, started, log_path = bench.start_runner("restarted")
    seconds = job.step_started(2, process, log_path) - started
    bench.finish(job, process, log_path)
    bench.stop_all()
    return seconds


def measure_takeover(bench, delay):
    """SIGKILL of the runner holding the job, ``delay`` seconds after the
    other one claims jobs, to the other running ``wait``."""
    job = bench.post()
    holder, _, holder_log = bench.start_runner("holder")
    job.step_started(1, holder, holder_log)
    other, _, other_log = bench.start_runner("other")
    wait_claiming(other, other_log)
    time.sleep(delay)
    killed = bench.kill(holder)
    seconds = job.step_started(2, other, other_log) - killed
    bench.finish(job, other, other_log)
    bench.stop_all()
    return seconds


def kill_delay(number, args):
    """Round ``number``'s wait between the second runner claiming and the
    kill: evenly over one heartbeat and claim renewal interval (a third
    of the expiry), so the kills fall at every phase of them."""
    return (number + 0.5) / args.rounds * args.expiry / 3


def import_seconds():
    started = time.time()
    subprocess.run([sys.executable, "-c", IMPORTS], check=True,
                   cwd=REPO_ROOT, env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    return time.time() - started


def show(label, values, note=""):
    print(f"  {label:<58} min {min(values):5.2f}  median "
          f"{statistics.median(values):5.2f}  max {max(values):5.2f} s{note}")


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # no migration chatter
    vmflow_conf.parse(config_files=[])
    work_dir = pathlib.Path(tempfile.mkdtemp(prefix="vmflow-bench-resume-"))
    target = args.expiry + 1
    try:
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(helpers.private_database(
                "sqlite", work_dir))
            stack.callback(engine_persistence.forget_persistence)
            stack.callback(api.dispose_engines)
            namespace = stack.enter_context(
                helpers.redis_namespace())
            sql = stack.enter_context(contextlib.closing(Bench(
                work_dir / "sql", url, {
                    "backend": "sql", "claim_expiry_seconds": args.expiry,
                    "namespace": "bench-" + uuid.uuid4().hex[:8]})))
            redis = stack.enter_context(contextlib.closing(Bench(
                work_dir / "redis", url, {
                    "backend": "redis", "namespace": namespace,
                    "claim_expiry_seconds": args.expiry})))
            cases = {"imports": lambda _delay: import_seconds(),
                     "fresh": lambda _delay: measure_fresh_start(sql),
                     "resume": lambda _delay: measure_resume(sql),
                     "sql": lambda delay: measure_takeover(sql, delay),
                     "redis": lambda delay: measure_takeover(redis, delay)}
            # In turn, round after round: the machine's load changes.
            found = {name: [] for name in cases}
            for number in range(args.rounds):
                delay = kill_delay(number, args)
                for name, measure in cases.items():
                    found[name].append(measure(delay))
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    print(f"resume: SQLite + SQL board, {args.rounds} rounds, every case in "
          "turn each round (from just before the exec of a vmflow-engine "
          f"to the {STEP!r} step starting in it)")
    show(f"baseline: python -c {IMPORTS!r}", found["imports"],
         " (no runner)")
    show("baseline: new runner, the job posted and unclaimed",
         found["fresh"])
    show("runner restarted after a SIGKILL mid-step", found["resume"],
         f"   (target <= {RESUME_TARGET} s)")
    print(f"takeover: two runners, SQLite, claim expiry {args.expiry} s (from "
          "the SIGKILL of the runner holding the job to the other running "
          f"{STEP!r})")
    show("SQL board (this machine's dead runners: at a heartbeat)",
         found["sql"], f"   (target <= {target} s; heartbeat every "
         f"{args.expiry / 3:.2f} s)")
    show("Redis board (the claim expires first)", found["redis"],
         f"   (target <= {target} s)")


if __name__ == "__main__":
    main()
