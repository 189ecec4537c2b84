"""Helpers of the engine tests: private server databases and Redis
namespaces, instance rows, runner processes."""
import contextlib
import datetime
import os
import signal
import subprocess
import sys
import threading
import uuid

import sqlalchemy

from tests import databases
from tests.conftest import REPO_ROOT, wait_until, write_config  # noqa: F401
from tests.functional.engine import sample_flows
from vmflow import instances
from vmflow.engine import actions, posting, runner
from vmflow.engine import persistence as engine_persistence
from vmflow.inventory import servers
from vmflow.persistence import api, models

ENGINE_BIN = os.path.join(os.path.dirname(sys.executable), "vmflow-engine")
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379


private_database = databases.private_database
_sync = databases.sync_schema


def configure_database(conf, url, expiry=5):
    """CONF pointed at the database ``url`` with a fresh job board namespace
    (so tests sharing a database do not see each other's jobs); returns its
    engine."""
    conf.set_override("connection", url, group="database")
    conf.set_override("namespace", "test-" + uuid.uuid4().hex[:10],
                      group="jobboard")
    conf.set_override("claim_expiry_seconds", expiry, group="jobboard")
    engine_persistence.forget_persistence()
    return api.get_engine(conf)


@contextlib.contextmanager
def redis_namespace():
    """A new job board namespace on the Redis of 127.0.0.1:6379, whose keys
    are deleted afterwards (that Redis is shared: never flushed)."""
    import redis  # the redis extra, needed only by the Redis board's tests

    namespace = "vmflow-test-" + uuid.uuid4().hex[:10]
    try:
        yield namespace
    finally:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
        pattern = namespace.encode() + b":*"
        keys = list(client.scan_iter(match=pattern))
        if keys:
            client.delete(*keys)
        left = list(client.scan_iter(match=pattern))
        client.close()
        assert not left, f"keys of {namespace} left on Redis: {left}"


def configure_redis_board(conf, namespace, expiry=5):
    """CONF's [jobboard] set to the Redis board on 127.0.0.1:6379."""
    conf.set_override("backend", "redis", group="jobboard")
    conf.set_override("hosts", [f"{REDIS_HOST}:{REDIS_PORT}"],
                      group="jobboard")
    conf.set_override("namespace", namespace, group="jobboard")
    conf.set_override("claim_expiry_seconds", expiry, group="jobboard")


def writer(engine):
    """A session whose transaction takes SQLite's write lock up front (a
    deferred one that reads first fails at once when a runner wrote)."""
    return api.writer_scope(engine)


def add_instance(engine, name=None):
    """An instance row (with its flavor and image); returns its uuid."""
    name = name or "vm-" + uuid.uuid4().hex[:8]
    with writer(engine) as session:
        flavor = _get_or_add(session, models.Flavor, "engine-test", vcpus=1,
                             ram_mb=64, disk_gb=1)
        image = _get_or_add(session, models.Image, "engine-test",
                            file="/nonexistent", disk_format="qcow2",
                            size_bytes=1, virtual_size_bytes=1)
        instance = models.Instance(
            name=name, project="engine-tests", flavor_id=flavor.id,
            image_id=image.id, vcpus=1, memory_mb=64, disk_gb=1,
            vm_state="building", task_state="scheduling")
        session.add(instance)
        session.flush()
        return instance.uuid


def _get_or_add(session, model, name, **values):
    row = session.scalar(sqlalchemy.select(model).where(model.name == name))
    if row is None:
        row = model(name=name, **values)
        session.add(row)
        session.flush()
    return row


def instances_with_faults(engine, instance_uuids):
    """{uuid: the instance as a dict, with its latest ``fault``}."""
    with api.session_scope(engine) as session:
        return {uuid: dict(instances.get_instance(session, uuid),
                           fault=servers.latest_fault(session, uuid))
                for uuid in instance_uuids}


def rows(engine, model, **where):
    table = model.__table__
    query = sqlalchemy.select(table).where(
        *[table.c[key] == value for key, value in where.items()])
    with engine.connect() as connection:
        return connection.execute(query.order_by(*table.primary_key)).all()


def runner_config(path, state_path, url, namespace, expiry=5,
                  max_workers=4):
    return write_config(path, {
        "DEFAULT": {"state_path": state_path},
        "database": {"connection": url},
        "jobboard": {"namespace": namespace,
                     "claim_expiry_seconds": expiry},
        "engine": {"max_workers": max_workers}})


def start_runner(config_file, *args, name="test-runner", log_path=None,
                 env=None):
    """A ``vmflow-engine`` process; its output goes to ``log_path``."""
    environment = dict(os.environ, PYTHONPATH=REPO_ROOT, **(env or {}))
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [ENGINE_BIN, "--config-file", config_file, "--name", name,
             *args], stdout=log, stderr=subprocess.STDOUT, env=environment,
            cwd=REPO_ROOT)
    finally:
        if log_path:
            log.close()


def stop_process(process, sig=signal.SIGTERM, timeout=60):
    """Send ``sig`` (unless it exited) and return its exit status.

    A runner stops after its services' threads end; on a loaded 2-core
    machine that once took over 30 s (a board-loss test in a full run),
    hence the minute (a hang still fails)."""
    if process.poll() is None:
        process.send_signal(sig)
    return process.wait(timeout=timeout)


class RunnerThread:
    """A Runner in a thread of this process, stopped on exit."""

    def __init__(self, conf, name="runner", **kwargs):
        self.runner = runner.Runner(name, conf, **kwargs)
        self.thread = threading.Thread(target=self._run)
        self.result = None

    def _run(self):
        self.result = self.runner.run()

    def __enter__(self):
        self.thread.start()
        wait_until(self.runner.board.alive_entities, 10,
                   "the runner's registration")
        return self

    def __exit__(self, *exc_info):
        self.runner.stop()
        self.thread.join(30)
        assert not self.thread.is_alive()


def post_sample(conf, db, trace_file, factory=None, **store):
    """Post a sample flow (default: the quick one) on a new instance."""
    instance = add_instance(db)
    return posting.post_operation(
        sample_flows.SAMPLE_ACTION, instance, factory or sample_flows.QUICK,
        dict(store, trace_file=trace_file), conf=conf)


def insert_lock(db, instance, job_uuid, age_seconds=0, request_id="req-x",
                start_action=False):
    """An instance lock ``age_seconds`` old with no job behind it (and its
    unfinished instance action, with ``start_action``)."""
    with writer(db) as session:
        session.add(models.InstanceLock(
            instance_uuid=instance, action="sample", job_uuid=job_uuid,
            request_id=request_id, created_at=models.utcnow()
            - datetime.timedelta(seconds=age_seconds)))
        if start_action:
            return actions.start_instance_action(session, instance, "sample",
                                                 request_id)
    return None
