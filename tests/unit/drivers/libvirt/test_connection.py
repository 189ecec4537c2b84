import subprocess
import sys
import threading

import libvirt
import pytest

from vmflow import exception
from vmflow.drivers.libvirt import connection as libvirt_connection

from tests.unit.drivers.conftest import TEST_URI


@pytest.fixture
def conn():
    connection = libvirt_connection.LibvirtConnection(TEST_URI)
    yield connection
    connection.close()


def test_opens_lazily(conn):
    assert conn._conn is None
    assert conn.get().isAlive() == 1


def test_get_reuses_a_live_connection(conn):
    assert conn.get() is conn.get()


def test_health_check_describes_the_hypervisor(conn):
    health = conn.health_check()
    assert health["uri"] == TEST_URI
    assert health["hypervisor_type"] == "TEST"
    assert health["hostname"]
    major, minor, micro = health["libvirt_version"].split(".")
    assert int(major) >= 9


def test_unparsable_uri_is_hypervisor_unavailable_on_one_line(tmp_path):
    uri = f"test://{tmp_path}/missing.xml"
    connection = libvirt_connection.LibvirtConnection(uri, retries=0)
    with pytest.raises(exception.HypervisorUnavailable) as caught:
        connection.health_check()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"hypervisor at {uri} is unavailable: ")
    assert "missing.xml" in message


def test_unreachable_daemon_is_retried_then_unavailable(tmp_path, conf):
    conf.set_override("poll_interval_seconds", 0.05, "libvirt")
    uri = f"qemu+unix:///system?socket={tmp_path}/no-such-sock"
    connection = libvirt_connection.LibvirtConnection(uri, retries=2)
    with pytest.raises(exception.HypervisorUnavailable) as caught:
        connection.get()
    assert "no-such-sock" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, exception.RescheduleableError)


def test_reconnects_after_the_connection_broke(conn):
    first = conn.get()
    first.close()  # what a libvirtd restart leaves behind: a dead handle
    second = conn.get()
    assert second is not first
    assert second.isAlive() == 1
    assert conn.health_check()["hypervisor_type"] == "TEST"


def test_close_is_idempotent_and_get_reopens(conn):
    conn.get()
    conn.close()
    conn.close()
    assert conn.get().isAlive() == 1


def test_get_connection_is_one_object_per_uri_across_threads():
    results = []
    barrier = threading.Barrier(8)

    def fetch():
        barrier.wait()
        results.append(libvirt_connection.get_connection(TEST_URI))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(result) for result in results}) == 1
    assert results[0] is libvirt_connection.get_connection(TEST_URI)
    assert results[0] is not libvirt_connection.get_connection(
        TEST_URI + "?other")


def test_concurrent_get_opens_one_virconnect(conn):
    seen = []
    barrier = threading.Barrier(8)

    def fetch():
        barrier.wait()
        seen.append(conn.get())

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(virconnect) for virconnect in seen}) == 1


LOOKUP_MISSING_DOMAIN = """
import libvirt
from vmflow.drivers.libvirt.connection import LibvirtConnection
conn = LibvirtConnection("test:///default").get()
try:
    conn.lookupByName("vmflow-test-no-such-domain")
except libvirt.libvirtError as exc:
    print("raised:", exc.get_error_code())
"""


def test_libvirt_errors_are_raised_not_printed_to_stderr():
    # A fresh process: the handler is registered once per process.
    result = subprocess.run([sys.executable, "-c", LOOKUP_MISSING_DOMAIN],
                            capture_output=True, text=True, timeout=60,
                            check=True)
    assert result.stdout.strip() == f"raised: {libvirt.VIR_ERR_NO_DOMAIN}"
    assert "libvirt:" not in result.stderr
