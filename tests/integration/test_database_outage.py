"""The runner's database goes away for longer than a claim expiry while
builds run: every build ends consistent, the audit passes, and the runner
logs the outage in a few lines (not a traceback per retry).

A TCP proxy written here stands between ``vmflow-engine`` and the
PostgreSQL server on loopback; cutting it closes every connection and
refuses new ones until it is restored. The test process itself reaches
PostgreSQL directly.
"""
import re
import socket
import threading

import pytest

from tests.conftest import wait_until
from tests.functional.engine import helpers
from tests.integration.flowbed import (  # noqa: F401 (fixtures)
    EVERYTHING_THERE, FLAVOR, HOST, IMAGE, NOTHING_LEFT, PROJECT,
    CLAIM_EXPIRY, disks_root, make_cloud, seed_inventory, sweeper,
    template_db)
from tests.integration.test_board_loss import Pauses
from vmflow import compute
from vmflow.engine import operations
from vmflow.persistence import api, models

pytestmark = pytest.mark.integration

POSTGRESQL = ("127.0.0.1", 5432)
BUILDS = 3
OUTAGE_SECONDS = 2 * CLAIM_EXPIRY
# The runner's whole log over the test (start-up, three builds, the
# outage, stopping): a few records, one of them with the outage's
# traceback (about 270 lines of chained psycopg2/SQLAlchemy/TaskFlow
# frames). Before, every retry, keep-alive and failed job printed its own:
# 650-830 lines here, 21,557 in a 28 s outage with several runners.
MAX_LOG_LINES = 500
MAX_LOG_RECORDS = 40
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ \d+ [A-Z]+ ")


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to ``upstream`` until :meth:`cut`."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._cut = threading.Event()
        self._sockets = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _address = self.listener.accept()
            except OSError:
                return  # closed
            if self._cut.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target),
                                 daemon=True).start()

    def _pump(self, source, target):
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                self._close(end)

    def _close(self, end):
        with self._lock:
            self._sockets.discard(end)
        try:
            end.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        end.close()

    def cut(self):
        self._cut.set()
        with self._lock:
            ends = list(self._sockets)
        for end in ends:
            self._close(end)

    def restore(self):
        self._cut.clear()

    def close(self):
        self.cut()
        self.listener.close()


@pytest.fixture
def proxy():
    proxy = CuttableProxy(POSTGRESQL)
    yield proxy
    proxy.close()


@pytest.fixture
def cloud(conf, tmp_path, template_db, disks_root, sweeper,  # noqa: F811
          proxy):
    with helpers.private_database("postgresql", tmp_path) as url:
        engine = api.create_engine(url)
        try:
            seed_inventory(engine, disks_root)
        finally:
            engine.dispose()
        runner_url = url.replace(f"{POSTGRESQL[0]}:{POSTGRESQL[1]}",
                                 f"127.0.0.1:{proxy.port}")
        with make_cloud(conf, tmp_path, template_db, disks_root, sweeper,
                        url=url, runner_url=runner_url) as cloud:
            yield cloud


def test_builds_survive_a_database_outage_longer_than_a_claim_expiry(
        cloud, proxy, tmp_path):
    pauses = Pauses(tmp_path, "StartDomain:before-execute")
    process = helpers.start_runner(cloud.config_file, name="outage",
                                   log_path=cloud.log_path, env=pauses.env)
    requests = [compute.create_server(f"vm{n}", FLAVOR, IMAGE, PROJECT,
                                      conf=cloud.conf)
                for n in range(BUILDS)]
    pauses.wait_paused("StartDomain:before-execute")
    proxy.cut()
    pauses.release()  # the steps go on with the database gone
    threading.Event().wait(OUTAGE_SECONDS)
    proxy.restore()
    try:
        wait_until(lambda: all(
            operations.operation_status(request.job_uuid, cloud.conf)
            .finished for request in requests), 120, "every build to end")
    finally:
        status = helpers.stop_process(process)
    log = cloud.log()
    assert status == 0, log
    for request in requests:
        instance = cloud.instance(request.instance_uuid)
        assert instance["task_state"] is None, log
        if instance["vm_state"] == "active":
            assert cloud.leftovers(request.instance_uuid) == (
                EVERYTHING_THERE)
        else:  # reverted: nothing held
            assert (instance["vm_state"], instance["host"]) == ("error",
                                                                None), log
            assert cloud.leftovers(request.instance_uuid) == NOTHING_LEFT
    assert helpers.rows(cloud.engine, models.InstanceLock) == [], log
    cloud.assert_audit_ok()
    lines = log.splitlines()
    records = [index for index, line in enumerate(lines)
               if RECORD.match(line)]
    with_traceback = [index for index in records
                      if index + 1 < len(lines) and lines[index + 1]
                      == "Traceback (most recent call last):"]
    print(f"\nrunner log: {len(lines)} lines, {len(records)} records, "
          f"{len(with_traceback)} with a traceback")
    assert len(lines) < MAX_LOG_LINES, log
    assert len(records) < MAX_LOG_RECORDS, log
    assert len(with_traceback) == 1, log
