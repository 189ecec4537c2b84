"""LocalRunner: argument lists, no shell, errors as CommandFailed."""
import os

import pytest

from vmflow import exception
from vmflow.drivers.remote import runner as remote_runner
from vmflow.drivers.remote import transfer
from vmflow.drivers.remote.runner import LocalRunner

HOSTILE_ARGUMENTS = ["$(touch {marker})", "`touch {marker}`",
                     "; touch {marker}", "&& touch {marker}",
                     "| touch {marker}", "'\"", "*", "~", "$HOME",
                     "line\nbreak", "-n"]


@pytest.fixture
def runner():
    return LocalRunner()


def test_run_returns_stdout(runner):
    assert runner.run(["printf", "%s|", "a b", "c"]) == "a b|c|"


def test_failing_command_raises_with_status_and_stderr(runner):
    with pytest.raises(exception.CommandFailed) as caught:
        runner.run(["sh", "-c", "echo first line >&2; echo oops >&2; "
                                "exit 3"])
    error = caught.value
    assert error.kwargs["status"] == 3
    assert error.kwargs["stderr"] == "first line oops"
    assert "\n" not in str(error)
    assert isinstance(error, exception.RescheduleableError)


def test_long_stderr_is_trimmed_to_its_end(runner):
    script = "i=0; while [ $i -lt 400 ]; do echo noise $i >&2; " \
             "i=$((i+1)); done; echo THE-REAL-ERROR >&2; exit 1"
    with pytest.raises(exception.CommandFailed) as caught:
        runner.run(["sh", "-c", script])
    stderr = caught.value.kwargs["stderr"]
    assert stderr.endswith("THE-REAL-ERROR")
    assert len(stderr) <= remote_runner.STDERR_LIMIT + 3


def test_arguments_are_passed_literally(runner, tmp_path):
    marker = tmp_path / "marker"
    arguments = [arg.format(marker=marker) for arg in HOSTILE_ARGUMENTS]
    output = runner.run(["printf", "%s\\0", *arguments])
    assert output.split("\0")[:-1] == arguments
    assert not marker.exists()


def test_a_shell_string_is_refused(runner):
    with pytest.raises(TypeError):
        runner.run("echo hi; rm -rf /")
    with pytest.raises(TypeError):
        runner.run([])


def test_timeout_is_command_failed(runner):
    with pytest.raises(exception.CommandFailed) as caught:
        runner.run(["sleep", "10"], timeout=0.2)
    assert "timeout" in str(caught.value)


def test_missing_program_is_command_failed(runner):
    with pytest.raises(exception.CommandFailed) as caught:
        runner.run(["vmflow-no-such-program"])
    assert caught.value.kwargs["status"] == 127


def test_file_operations(runner, tmp_path):
    source = tmp_path / "source"
    source.write_text("payload")
    directory = str(tmp_path / "a" / "b")
    runner.makedirs(directory)
    runner.makedirs(directory)  # exists already: fine
    target = os.path.join(directory, "copy.part")
    runner.put_file(str(source), target)
    runner.rename(target, os.path.join(directory, "copy"))
    runner.touch(os.path.join(directory, "empty"))
    assert runner.listdir(directory) == ["copy", "empty"]
    assert runner.exists(os.path.join(directory, "copy"))
    runner.get_file(os.path.join(directory, "copy"), str(tmp_path / "back"))
    assert (tmp_path / "back").read_text() == "payload"
    assert runner.remove_tree(str(tmp_path / "a")) is True
    assert runner.remove_tree(str(tmp_path / "a")) is False
    assert not runner.exists(str(tmp_path / "a"))


def test_file_errors_are_image_backend_errors(runner, tmp_path):
    with pytest.raises(exception.ImageBackendError):
        runner.put_file(str(tmp_path / "missing"), str(tmp_path / "x"))
    with pytest.raises(exception.ImageBackendError):
        runner.listdir(str(tmp_path / "missing"))


def test_runner_for_host_picks_local_without_ssh_host():
    assert isinstance(remote_runner.runner_for_host(
        {"ssh_host": None, "ssh_port": None}), LocalRunner)


def test_ensure_room_refuses_a_file_bigger_than_the_free_space(runner,
                                                              tmp_path):
    free = transfer.ensure_room(runner, str(tmp_path), 1, "a file")
    assert free >= 1
    with pytest.raises(exception.ImageBackendError) as caught:
        transfer.ensure_room(runner, str(tmp_path), free + 2**50, "big.img")
    message = str(caught.value)
    assert "not enough space on" in message and "big.img" in message
    assert str(tmp_path) in message
