"""What ``--wait`` shows while an operation runs, through the installed
CLI on libvirt's test driver: a live bar redrawn on a terminal (a
pseudo-terminal here), plain lines without escape sequences elsewhere,
and a poll's expected "not yet" never shown as a failure."""
import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import termios
import threading

import pytest

from tests.cloud import image_file  # noqa: F401 (fixture)
from tests.conftest import (BIN_DIR, Cli, progress_lines, started_steps,
                            wait_until, write_config)
from tests.functional.test_cli_operations import seed_cloud
from vmflow import flows
from vmflow.flows import build

BUILD = ("server", "create", "vm1", "--flavor", "tiny", "--image", "img",
         "--wait")
BUILD_TASKS = [task.name for task in flows.iter_tasks(build.get_build_flow())]
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SCREEN_TIMEOUT = 60


@pytest.fixture
def cloud_cli(tmp_path, image_file):  # noqa: F811
    """A seeded cloud whose domain polls run every 50 ms."""
    cli = Cli(write_config(tmp_path / "vmflow.conf", {
        "DEFAULT": {"state_path": tmp_path / "state"},
        "libvirt": {"poll_interval_seconds": 0.05,
                    "wait_running_seconds": 1}}))
    seed_cloud(cli, tmp_path, image_file)
    return cli


class TerminalCli:
    """``vmflow`` with stdin, stdout and stderr on a pseudo-terminal of
    120 columns; :meth:`screen` is everything it wrote, escape sequences
    removed."""

    def __init__(self, cli, *args, env):
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ,
                    struct.pack("HHHH", 24, 120, 0, 0))
        environment = {name: value for name, value in os.environ.items()
                       if name not in ("COLUMNS", "LINES", "NO_COLOR")}
        self.process = subprocess.Popen(
            [os.path.join(BIN_DIR, "vmflow"), "--config-file",
             cli.config_file, *args], stdin=slave, stdout=slave,
            stderr=slave, env=dict(environment, TERM="xterm-256color", **env))
        os.close(slave)
        self._master = master
        self._output = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        while True:
            try:
                chunk = os.read(self._master, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not chunk:
                return
            self._output.extend(chunk)

    def output(self):
        return bytes(self._output).decode(errors="replace")

    def screen(self):
        return ESCAPE.sub("", self.output())

    def wait(self):
        try:
            return self.process.wait(timeout=120)
        finally:
            self._reader.join(timeout=10)
            os.close(self._master)


def redraws(screen):
    """The states of the live line, each redraw on its own."""
    return [part for part in re.split(r"[\r\n]", screen) if part.strip()]


def test_on_a_terminal_a_live_bar_shows_the_running_step_and_time(
        cloud_cli, tmp_path):
    pause_dir = tmp_path / "pause"
    pause_dir.mkdir()
    terminal = TerminalCli(cloud_cli, *BUILD, "-f", "value", "-c",
                           "vm_state", env={
                               "VMFLOW_PAUSE_AT": "CreateDisks:before-execute",
                               "VMFLOW_PAUSE_DIR": str(pause_dir)})
    try:
        wait_until(lambda: (pause_dir / "CreateDisks:before-execute.paused")
                   .exists(), SCREEN_TIMEOUT, "CreateDisks to pause")
        total = len(BUILD_TASKS)
        done = BUILD_TASKS.index("CreateDisks")
        paused_line = re.compile(
            rf"build vm1 [━╸╺ ]+ {done}/{total} CreateDisks "
            r"0:00:(0[1-9]|[1-5]\d)\s*")
        # Redrawn while the step stays paused: its time goes on.
        wait_until(lambda: any(paused_line.fullmatch(line) for line in
                               redraws(terminal.screen())), SCREEN_TIMEOUT,
                   "a redraw of the paused step after a second:\n"
                   + terminal.screen())
    finally:
        (pause_dir / "release").touch()
        returncode = terminal.wait()
    output = terminal.output()
    assert returncode == 0, output
    assert "\r" in output and "━" in output
    assert "build vm1: [" not in output  # no plain lines on a terminal
    lines = redraws(terminal.screen())
    assert re.fullmatch(rf"build vm1 ━+ {total}/{total} succeeded "
                        r"\d:\d\d:\d\d\s*", lines[-2]), lines
    assert lines[-1].strip() == "active"
    assert "\x1b[?25h" in output  # the cursor is shown again


def test_without_a_terminal_one_plain_line_per_step(cloud_cli):
    result = cloud_cli(*BUILD)
    assert "\x1b" not in result.stderr
    total = len(BUILD_TASKS)
    assert [(line["label"], int(line["done"]), int(line["total"]),
             line["step"], line["what"])
            for line in progress_lines(result.stderr)] == [
        ("build vm1", done, total, step, "running")
        for done, step in enumerate(BUILD_TASKS)]
    assert re.fullmatch(rf"build vm1: \[{total}/{total}\] succeeded "
                        r"\(\d+\.\d s\)", result.stderr.splitlines()[-1])


# ``vmflow`` whose test-driver domains start only at the LOOKS-th look at
# their power state (never with 0): WaitForDomainRunning polls "not yet".
SLOW_START = """
import os, sys
from vmflow.cmd import cli
from vmflow.drivers.libvirt import driver

LOOKS = int(os.environ["SLOW_START_LOOKS"])
real_start = driver.LibvirtDriver.start
real_power_state = driver.LibvirtDriver.get_power_state
pending = {}

def start(self, instance_uuid, paused=False):
    pending[instance_uuid] = [paused, 0]
    return "started"

def get_power_state(self, instance_uuid):
    if instance_uuid in pending:
        pending[instance_uuid][1] += 1
        if pending[instance_uuid][1] == LOOKS:
            real_start(self, instance_uuid, pending.pop(instance_uuid)[0])
    return real_power_state(self, instance_uuid)

driver.LibvirtDriver.start = start
driver.LibvirtDriver.get_power_state = get_power_state
sys.exit(cli.main())
"""


def slow_start_cli(cli, looks, *args):
    return subprocess.run(
        [sys.executable, "-c", SLOW_START, "--config-file", cli.config_file,
         *args], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, SLOW_START_LOOKS=str(looks)))


def server_events(cli):
    return json.loads(cli("server", "event-list", "vm1", "-f",
                          "json").stdout)


def test_a_polls_not_yet_is_not_shown(cloud_cli):
    result = slow_start_cli(cloud_cli, 3, *BUILD)
    assert result.returncode == 0, result.stderr
    polls = [event for event in server_events(cloud_cli)
             if event["event"] == "WaitForDomainRunning"]
    assert len(polls) >= 3  # it did poll "not yet", twice at least
    assert started_steps(result.stderr) == BUILD_TASKS
    assert [line for line in progress_lines(result.stderr)
            if line["what"] != "running"] == []
    assert "not running yet" not in result.stderr


def test_a_poll_that_times_out_is_shown_once_and_the_build_fails(
        cloud_cli):
    result = slow_start_cli(cloud_cli, 0, *BUILD)
    assert result.returncode == 1, result.stderr
    assert "\x1b" not in result.stderr
    assert len([event for event in server_events(cloud_cli)
                if event["event"] == "WaitForDomainRunning"]) >= 2
    notices = [(line["step"], line["what"])
               for line in progress_lines(result.stderr)
               if line["what"] != "running"]
    failed, *reverted = notices
    assert failed[0] == "WaitForDomainRunning"
    assert re.fullmatch(r"failed: domain \S+ on host h1 is shutdown, not "
                        r"running, after 1 s", failed[1]), failed
    ran_before = BUILD_TASKS[:BUILD_TASKS.index("WaitForDomainRunning")]
    assert reverted == [(step, "reverting") for step in
                        ["WaitForDomainRunning", *reversed(ran_before)]], (
        result.stderr)
    assert "not running yet" not in result.stderr


def test_a_failed_step_is_shown_with_its_reverts_and_exits_1(cloud_cli):
    failed = cloud_cli(*BUILD, check=False,
                       env={"VMFLOW_FAIL_AT": "CreateDisks"})
    assert failed.returncode == 1, failed.stderr
    assert "\x1b" not in failed.stderr
    total = len(BUILD_TASKS)
    at = BUILD_TASKS.index("CreateDisks")
    notices = [(int(line["done"]), line["step"], line["what"])
               for line in progress_lines(failed.stderr)
               if line["what"] != "running"]
    assert notices[0] == (at, "CreateDisks",
                          "failed: injected fault in CreateDisks execute")
    assert [step for _done, step, what in notices[1:]] == list(
        reversed(BUILD_TASKS[:at + 1]))
    assert {what for _done, _step, what in notices[1:]} == {"reverting"}
    *_, end, error = failed.stderr.splitlines()
    assert re.fullmatch(rf"build vm1: \[0/{total}\] failed at CreateDisks "
                        r"\(\d+\.\d s\)", end), end
    assert error.startswith("vmflow: error: build of server vm1 failed: "
                            "CreateDisks failed: injected fault")
