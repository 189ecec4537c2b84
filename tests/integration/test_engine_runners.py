"""Runner processes against the database and Redis servers: two runners
on one PostgreSQL database, a runner on TaskFlow's Redis board."""
import collections
import uuid

import pytest

from tests.conftest import write_config
from tests.functional.engine import helpers, sample_flows
from vmflow.engine import operations, posting
from vmflow.persistence import api, models

JOBS = 20
RUNNER_TIMEOUT = 120


@pytest.fixture(scope="module")
def postgres_url(tmp_path_factory):
    with helpers.private_database(
            "postgresql", tmp_path_factory.mktemp("pg")) as url:
        yield url


def post_jobs(conf, engine, tmp_path, count, factory=sample_flows.SLOW):
    """``count`` operations on as many instances; {job uuid: trace file}."""
    jobs = {}
    for number in range(count):
        instance = helpers.add_instance(engine)
        trace = str(tmp_path / f"trace-{number}")
        jobs[posting.post_operation(
            sample_flows.SAMPLE_ACTION, instance, factory,
            {"trace_file": trace}, conf=conf)] = trace
    return jobs


def wait_all(runners, log_path):
    for runner in runners:
        status = runner.wait(timeout=RUNNER_TIMEOUT)
        assert status == 0, f"runner exited {status}:\n{log_path.read_text()}"


def assert_each_ran_exactly_once(conf, jobs):
    for job_uuid, trace in jobs.items():
        assert operations.operation_status(job_uuid, conf).succeeded
        assert sample_flows.read_trace(trace) == [
            "execute:first", "execute:sleep", "execute:last"], job_uuid


def test_two_runners_on_postgresql_run_each_job_exactly_once(
        conf, postgres_url, tmp_path):
    namespace = "two-runners-" + uuid.uuid4().hex[:8]
    conf.set_override("connection", postgres_url, group="database")
    conf.set_override("namespace", namespace, group="jobboard")
    engine = api.get_engine(conf)
    jobs = post_jobs(conf, engine, tmp_path, JOBS)
    config = helpers.runner_config(tmp_path / "runner.conf",
                                   tmp_path / "state", postgres_url,
                                   namespace, max_workers=2)
    log_path = tmp_path / "runners.log"
    runners = [helpers.start_runner(config, "--once", name=name,
                                    log_path=log_path)
               for name in ("runner-a", "runner-b")]
    wait_all(runners, log_path)

    assert_each_ran_exactly_once(conf, jobs)
    owners = collections.Counter(
        row.owner.split("@")[0] for job_uuid in jobs
        for row in helpers.rows(engine, models.Job, uuid=job_uuid))
    assert sum(owners.values()) == JOBS
    assert set(owners) == {"runner-a", "runner-b"}, owners
    events = collections.Counter(
        (action.id, event.event)
        for action in helpers.rows(engine, models.InstanceAction)
        for event in helpers.rows(engine, models.InstanceActionEvent,
                                  action_id=action.id))
    assert set(events.values()) == {1}
    assert helpers.rows(engine, models.InstanceLock) == []


def test_a_runner_on_the_redis_board(conf, tmp_path, redis_namespace):
    url = f"sqlite:///{tmp_path}/redis-board.sqlite"
    helpers._sync(url)
    conf.set_override("connection", url, group="database")
    for option, value in (("backend", "redis"),
                          ("hosts", ["127.0.0.1:6379"]),
                          ("namespace", redis_namespace),
                          ("claim_expiry_seconds", 5)):
        conf.set_override(option, value, group="jobboard")
    jobs = post_jobs(conf, api.get_engine(conf), tmp_path, 3)
    config = write_config(tmp_path / "runner.conf", {
        "DEFAULT": {"state_path": tmp_path / "state"},
        "database": {"connection": url},
        "jobboard": {"backend": "redis", "hosts": "127.0.0.1:6379",
                     "namespace": redis_namespace,
                     "claim_expiry_seconds": 5}})
    log_path = tmp_path / "runner.log"
    wait_all([helpers.start_runner(config, "--once", log_path=log_path)],
             log_path)
    assert_each_ran_exactly_once(conf, jobs)
    assert operations.list_jobs(conf) == []
