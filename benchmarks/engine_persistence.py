"""Engine measurements (not a test): job claim latency (per-task
persistence cost is benchmarks/persistence_overhead.py).

    .venv/bin/python -m benchmarks.engine_persistence [sqlite|postgresql]

Prints one line per measurement. PostgreSQL uses a private database,
dropped afterwards.
"""
import statistics
import sys
import tempfile
import threading
import time


from tests.functional.engine import helpers, sample_flows
from vmflow import conf as vmflow_conf
from vmflow.engine import jobboard, posting, runner
from vmflow.persistence import api, models

CLAIMS = 20


def claim_latency(conf, engine):
    """Seconds from post_operation's return to the job's claim by an idle
    runner (in this process), and the cost of one claim UPDATE."""
    runner_obj = runner.Runner("bench", conf)
    thread = threading.Thread(target=runner_obj.run)
    thread.start()
    latencies = []
    trace = tempfile.mktemp()
    try:
        for _ in range(CLAIMS):
            instance = helpers.add_instance(engine)
            job_uuid = posting.post_operation(
                "sample", instance, sample_flows.QUICK,
                {"trace_file": trace}, conf=conf)
            posted = time.perf_counter()
            helpers.wait_until(lambda: _claimed(engine, job_uuid), 10,
                               "the claim", interval=0.001)
            latencies.append(time.perf_counter() - posted)
            time.sleep(0.05)
    finally:
        runner_obj.stop()
        thread.join()
    return latencies


def _claimed(engine, job_uuid):
    row, = helpers.rows(engine, models.Job, uuid=job_uuid)
    return row.state != "UNCLAIMED"


def raw_claim_ms(conf, engine):
    board = jobboard.get_jobboard(conf, engine=engine)
    jobs = [board.post(f"j{n}") for n in range(CLAIMS)]
    started = time.perf_counter()
    for job in jobs:
        board.claim(job, "bench")
    elapsed = time.perf_counter() - started
    board.close()
    return elapsed * 1000 / CLAIMS


def main(kind="sqlite"):
    conf = vmflow_conf.CONF
    vmflow_conf.parse(config_files=[])
    folder = tempfile.mkdtemp()
    conf.set_override("state_path", folder)
    with helpers.private_database(kind, folder) as url:
        conf.set_override("connection", url, group="database")
        engine = api.get_engine(conf)
        print(f"{kind}: one claim UPDATE {raw_claim_ms(conf, engine):.2f} ms")
        latencies = claim_latency(conf, engine)
        print(f"{kind}: post -> claimed by an idle runner: median "
              f"{statistics.median(latencies) * 1000:.0f} ms, max "
              f"{max(latencies) * 1000:.0f} ms (poll every "
              f"{runner.IDLE_WAIT_SECONDS} s)")
        api.dispose_engines()


if __name__ == "__main__":
    main(*sys.argv[1:])
