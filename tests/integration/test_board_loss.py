"""A Redis job board that loses its data loses no operation.

A private ``redis-server`` (own port, no persistence) is the job board of a
real ``vmflow-engine``; builds and deletes are in flight on the private
libvirtd of the flow test bed (:mod:`tests.integration.flowbed`) when the
board loses every key: Redis is SIGKILLed and started again empty, or its
keys are deleted with FLUSHDB while it stays up. That happens before any
runner claimed the jobs, while a step runs, and while a failed build
reverts (the step waits at a pause point of :mod:`vmflow.tasks.hooks`
meanwhile). Every operation must end ACTIVE, DELETED or cleanly reverted,
no lock may be left, and ``vmflow audit`` must pass.
"""
import os
import signal
import socket
import subprocess
import uuid as uuidlib

import pytest
import redis

from tests.conftest import wait_until
from tests.functional.engine import helpers
from tests.integration.flowbed import (  # noqa: F401 (fixtures)
    EVERYTHING_THERE, FLAVOR, HOST, IMAGE, NOTHING_LEFT, PROJECT, disks_root,
    make_cloud, sweeper, template_db)
from vmflow import compute
from vmflow.engine import operations, runner
from vmflow.persistence import models
from vmflow.tasks import hooks

pytestmark = pytest.mark.integration

SETTLE_TIMEOUT = 90
LOST_WARNING = "lost"
KEEPALIVE_WARNING = "was lost by the job board"
TAKEOVER_ERROR = "another runner took it over"


class PrivateRedis:
    """A redis-server of this test module: no persistence, own port."""

    def __init__(self, folder):
        self.folder = folder
        self.port = _free_port()
        self.pidfile = os.path.join(folder, "redis.pid")
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.folder],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, 10, f"redis on port {self.port}")

    def _answers(self):
        try:
            return self.client().ping()
        except redis.ConnectionError:
            return False

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def lose_data(self, how):
        """Empty the board: ``restart`` (SIGKILL, start empty) or
        ``flushdb`` (delete every key, the server stays up)."""
        if how == "restart":
            before = self._run_id()
            self.kill()
            self.start()
            # A runner may write again as soon as the server answers, so
            # the proof of the loss is a new server without persistence
            # (a new run id), not an empty keyspace a moment later.
            assert self._run_id() != before
        else:
            assert self.client().flushdb()

    def _run_id(self):
        return self.client().info("server")["run_id"]


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory):
    server = PrivateRedis(str(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    if server.process.poll() is None:
        server.kill()


@pytest.fixture
def cloud(conf, tmp_path, template_db, disks_root, sweeper,  # noqa: F811
          private_redis):
    board = {"backend": "redis", "hosts": f"127.0.0.1:{private_redis.port}",
             "namespace": "loss-" + uuidlib.uuid4().hex[:8]}
    with make_cloud(conf, tmp_path, template_db, disks_root, sweeper,
                    jobboard=board) as cloud:
        yield cloud


class Pauses:
    """The pause points of the runner (VMFLOW_PAUSE_AT)."""

    def __init__(self, folder, *points):
        self.folder = folder
        self.env = {hooks.PAUSE_AT: ",".join(points),
                    hooks.PAUSE_DIR: str(folder)}

    def wait_paused(self, point):
        wait_until(lambda: (self.folder / f"{point}.paused").exists(), 60,
                   f"the runner to pause at {point}")

    def release(self):
        (self.folder / "release").touch()


def start_runner(cloud, env=None):
    return helpers.start_runner(cloud.config_file, name="keeper",
                                log_path=cloud.log_path, env=env)


def built_server(cloud, name):
    request = compute.create_server(name, FLAVOR, IMAGE, PROJECT,
                                    conf=cloud.conf)
    assert runner.run_job_inline(request.job_uuid, cloud.conf)
    return request.instance_uuid


def noticed(cloud, jobs):
    """Wait until the runner found its ``jobs`` running jobs lost (and
    posted them again, claimed)."""
    wait_until(lambda: cloud.log().count(KEEPALIVE_WARNING) >= jobs, 30,
               f"the runner to notice {jobs} lost job(s)")


def settle(cloud, requests, process):
    """Wait until every operation ended, then stop the runner."""
    try:
        wait_until(lambda: all(
            operations.operation_status(request.job_uuid, cloud.conf)
            .finished for request in requests), SETTLE_TIMEOUT,
            "every operation to end")
    finally:
        status = helpers.stop_process(process)
    assert status == 0, cloud.log()
    assert helpers.rows(cloud.engine, models.InstanceLock) == [], cloud.log()
    assert LOST_WARNING in cloud.log()
    assert TAKEOVER_ERROR not in cloud.log()


def assert_state(cloud, uuid, vm_state, leftovers, host):
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"],
            instance["host"]) == (vm_state, None, host), cloud.log()
    assert cloud.leftovers(uuid) == leftovers


@pytest.mark.parametrize("how", ["restart", "flushdb"])
def test_jobs_posted_before_any_claim_survive(cloud, private_redis, how):
    requests = [compute.create_server(f"vm{n}", FLAVOR, IMAGE, PROJECT,
                                      conf=cloud.conf) for n in range(2)]
    private_redis.lose_data(how)
    listed = {job["uuid"]: job["state"]
              for job in operations.list_jobs(cloud.conf)}
    assert listed == {request.job_uuid: operations.LOST
                      for request in requests}
    settle(cloud, requests, start_runner(cloud))
    for request in requests:
        assert operations.operation_status(request.job_uuid,
                                           cloud.conf).succeeded
        assert_state(cloud, request.instance_uuid, "active",
                     EVERYTHING_THERE, HOST)
    cloud.assert_audit_ok()


@pytest.mark.parametrize("how", ["restart", "flushdb"])
def test_a_build_and_a_delete_survive_mid_flow(cloud, private_redis,
                                               tmp_path, how):
    doomed = built_server(cloud, "old")
    pauses = Pauses(tmp_path, "StartDomain:before-execute",
                    "UndefineDomain:before-execute")
    process = start_runner(cloud, pauses.env)
    build = compute.create_server("new", FLAVOR, IMAGE, PROJECT,
                                  conf=cloud.conf)
    delete = compute.delete_server(doomed, PROJECT, conf=cloud.conf)
    pauses.wait_paused("StartDomain:before-execute")
    pauses.wait_paused("UndefineDomain:before-execute")
    private_redis.lose_data(how)
    noticed(cloud, jobs=2)  # by each job's claim keep-alive, while paused
    pauses.release()
    settle(cloud, [build, delete], process)
    assert_state(cloud, build.instance_uuid, "active", EVERYTHING_THERE,
                 HOST)
    assert_state(cloud, doomed, "deleted", NOTHING_LEFT, HOST)
    cloud.assert_audit_ok()


@pytest.mark.parametrize("how", ["restart", "flushdb"])
def test_a_revert_survives(cloud, private_redis, tmp_path, how):
    pauses = Pauses(tmp_path, "DefineDomain:during-revert")
    process = start_runner(cloud, dict(
        pauses.env, **{hooks.FAIL_AT: "MarkInstanceActive"}))
    request = compute.create_server("vm1", FLAVOR, IMAGE, PROJECT,
                                    conf=cloud.conf)
    pauses.wait_paused("DefineDomain:during-revert")
    private_redis.lose_data(how)
    noticed(cloud, jobs=1)
    pauses.release()
    settle(cloud, [request], process)
    status = operations.operation_status(request.job_uuid, cloud.conf)
    assert not status.succeeded
    assert "MarkInstanceActive" in status.message
    assert_state(cloud, request.instance_uuid, "error", NOTHING_LEFT, None)
    cloud.assert_audit_ok()
