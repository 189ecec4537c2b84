"""Per-task cost of durable flow progress (issue 12, benchmark a).

    .venv/bin/python -m benchmarks.persistence_overhead [ROUNDS]

The same work -- FLOWS linear flows of TASKS no-op tasks, TaskFlow's serial
engine -- on TaskFlow's in-memory backend (the baseline), TaskFlow's stock
SQLAlchemy backend and vmflow's backend, on SQLite (WAL, synchronous NORMAL
and FULL), PostgreSQL and MariaDB (private databases on the loopback
servers, dropped afterwards). Rounds are interleaved (every configuration
once per round, in a rotating order) and each figure is the median over
the rounds, in milliseconds per task. Both SQL backends run on the same
SQLAlchemy engine (vmflow's: the same pragmas, pool and driver), so the
difference is the backends' own work.
"""
import contextlib
import statistics
import sys
import tempfile
import time

from taskflow import engines, task
from taskflow.patterns import linear_flow
from taskflow.persistence.backends import impl_memory, impl_sqlalchemy

from tests import databases
from vmflow import conf as vmflow_conf
from vmflow.engine import persistence_backend
from vmflow.persistence import api

FLOWS = 10
TASKS = 10
DATABASES = ("sqlite-normal", "sqlite-full", "postgresql", "mariadb")


class Noop(task.Task):
    def execute(self):
        return None


def ms_per_task(backend):
    started = time.perf_counter()
    for number in range(FLOWS):
        flow = linear_flow.Flow(f"f{number}").add(
            *[Noop(f"t{n}") for n in range(TASKS)])
        engines.run(flow, backend=backend)
    return (time.perf_counter() - started) * 1000 / (FLOWS * TASKS)


@contextlib.contextmanager
def sql_engines(folder):
    """name -> vmflow SQLAlchemy engine, one per database of DATABASES."""
    conf = vmflow_conf.CONF
    with contextlib.ExitStack() as stack:
        found = {}
        for name in DATABASES:
            kind = name.split("-")[0]
            url = stack.enter_context(databases.private_database(
                kind, tempfile.mkdtemp(dir=folder)))
            conf.set_override("sqlite_synchronous_full",
                              name != "sqlite-normal", group="database")
            engine = api.create_engine(url, conf)
            stack.callback(engine.dispose)
            found[name] = engine
        conf.clear_override("sqlite_synchronous_full", group="database")
        yield found


def configurations(sql):
    yield "in-memory", impl_memory.MemoryBackend()
    for name, engine in sql.items():
        yield f"{name} stock", impl_sqlalchemy.SQLAlchemyBackend(
            {}, engine=engine)
        yield f"{name} vmflow", persistence_backend.ProgressBackend(engine)


def main(rounds=5):
    vmflow_conf.parse(config_files=[])
    with tempfile.TemporaryDirectory() as folder, sql_engines(folder) as sql:
        runs = list(configurations(sql))
        figures = {name: [] for name, _backend in runs}
        for round_number in range(int(rounds)):
            shift = round_number % len(runs)
            for name, backend in runs[shift:] + runs[:shift]:
                figures[name].append(ms_per_task(backend))
        median = {name: statistics.median(values)
                  for name, values in figures.items()}
    base = median["in-memory"]
    print(f"persistence overhead: {FLOWS} flows x {TASKS} no-op tasks, "
          f"serial engine, {rounds} interleaved rounds, medians")
    print(f"  in-memory backend            {base:7.2f} ms/task (baseline)")
    for name in DATABASES:
        stock, ours = median[f"{name} stock"], median[f"{name} vmflow"]
        print(f"  {name:13} stock backend {stock:7.2f} ms/task "
              f"({stock / base:5.1f}x in-memory)")
        print(f"  {name:13} vmflow        {ours:7.2f} ms/task "
              f"({ours / base:5.2f}x in-memory, {stock / ours:5.1f}x faster "
              "than stock)")


if __name__ == "__main__":
    main(*sys.argv[1:])
