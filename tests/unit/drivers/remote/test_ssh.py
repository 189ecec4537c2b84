"""SSHRunner without a server: refusals happen before anything runs."""
import socket

import pytest

from vmflow import exception
from vmflow.drivers.remote import runner as remote_runner
from vmflow.drivers.remote.ssh import SSHRunner


def unused_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_runner_for_host_with_ssh_host_is_an_ssh_runner():
    runner = remote_runner.runner_for_host(
        {"ssh_host": "192.0.2.10", "ssh_port": 2222, "ssh_user": "vmflow"})
    assert isinstance(runner, SSHRunner)
    assert runner.target == "vmflow@192.0.2.10:2222"


def test_unreadable_known_hosts_file_is_refused(tmp_path):
    runner = SSHRunner("127.0.0.1", port=unused_port(), user="root",
                       known_hosts_file=str(tmp_path / "missing"))
    with pytest.raises(exception.HostKeyMismatch) as caught:
        runner.run(["true"])
    assert "known_hosts" in str(caught.value)


def test_closed_port_is_remote_connection_error(tmp_path):
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    runner = SSHRunner("127.0.0.1", port=unused_port(), user="root",
                       known_hosts_file=str(known_hosts), connect_timeout=2)
    with pytest.raises(exception.RemoteConnectionError) as caught:
        runner.exists("/")
    assert "127.0.0.1" in str(caught.value)
    assert "Connection refused" in str(caught.value)
    assert "Errno None" not in str(caught.value)
    assert isinstance(caught.value, exception.RescheduleableError)
