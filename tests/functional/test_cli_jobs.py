"""``job list``, ``job show`` and ``server event-list`` of builds a real
``vmflow-engine`` runs (held at a known step by the pause hook), through
the installed CLI, on SQLite and libvirt's test driver."""
import datetime
import os
import re
import socket
import subprocess

import pytest

from tests.conftest import wait_until
from tests.functional.test_cli_operations import (  # noqa: F401 (fixture)
    ENGINE_BIN, as_json, cloud_cli, image_file, _runner_registered)
from vmflow import flows
from vmflow.flows import build
from vmflow.persistence import models

BUILD_TASKS = [task.name for task in flows.iter_tasks(build.get_build_flow())]
CLAIM_EXPIRY = datetime.timedelta(seconds=30)  # [jobboard] default
INJECTED = "injected fault in StartDomain execute"
# A step of job show that ran once: its state and how long it took.
RAN_STEP = re.compile(r"(?P<name>\w+): (?P<state>[A-Z_]+) \(\d+\.\d\d s\)")


class PausedRunner:
    """A ``vmflow-engine`` whose tasks wait at ``pause_at`` (see
    :mod:`vmflow.tasks.hooks`) until :meth:`release`."""

    def __init__(self, cli, folder, pause_at, **env):
        self.folder = folder
        folder.mkdir()
        self.pause_at = pause_at
        self.process = subprocess.Popen(
            [ENGINE_BIN, "--config-file", cli.config_file, "--name",
             "paused"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(os.environ, VMFLOW_PAUSE_AT=pause_at,
                     VMFLOW_PAUSE_DIR=str(folder), **env))
        self.owner = f"paused@{socket.gethostname()}:{self.process.pid}"
        wait_until(lambda: _runner_registered(cli), 60,
                   "the runner's heartbeat")

    def wait_paused(self):
        paused = self.folder / f"{self.pause_at}.paused"
        wait_until(paused.exists, 60, f"the runner to pause at "
                   f"{self.pause_at}")

    def release(self):
        (self.folder / "release").touch()

    def stop(self):
        self.release()
        if self.process.poll() is None:
            self.process.terminate()
        assert self.process.wait(timeout=60) == 0


@pytest.fixture
def paused_runner(cloud_cli, tmp_path):  # noqa: F811
    runners = []

    def start(pause_at, **env):
        runners.append(PausedRunner(cloud_cli, tmp_path / "pauses",
                                    pause_at, **env))
        return runners[-1]
    yield start
    for runner in runners:
        runner.stop()


def post_build(cli):
    return as_json(cli("server", "create", "vm1", "--flavor", "tiny",
                       "--image", "img", "-f", "json"))


def job_list(cli):
    return {job["uuid"]: job for job in as_json(cli("job", "list", "-f",
                                                    "json"))}


def job_show(cli, job_uuid):
    return as_json(cli("job", "show", job_uuid, "-f", "json"))


def shown_time(text):
    return datetime.datetime.fromisoformat(text)


def wait_for_result(cli, job_uuid, result):
    return wait_until(
        lambda: (lambda shown: shown if shown["result"] == result else None)(
            job_show(cli, job_uuid)), 60, f"job {job_uuid} to end {result}")


def test_a_claimed_job_shows_its_owner_claim_expiry_and_progress(
        cloud_cli, paused_runner):
    cli = cloud_cli
    runner = paused_runner("StartDomain:before-execute")
    posted = post_build(cli)
    runner.wait_paused()

    before = models.utcnow()
    listed = job_list(cli)[posted["job"]]
    after = models.utcnow()
    started = BUILD_TASKS.index("StartDomain")
    assert {key: listed[key] for key in (
        "action", "instance_uuid", "server", "state", "owner", "progress",
        "failing", "request_id")} == {
        "action": "build", "instance_uuid": posted["instance_uuid"],
        "server": "vm1", "state": "CLAIMED", "owner": runner.owner,
        "progress": f"{started}/{len(BUILD_TASKS)}", "failing": None,
        "request_id": posted["request_id"]}
    # Shown to the second: the claim was live when the list read it.
    assert (before.replace(microsecond=0)
            <= shown_time(listed["claim_expires_at"])
            <= after + CLAIM_EXPIRY)

    shown = job_show(cli, posted["job"])
    # The heartbeat may have renewed the claim in between.
    assert shown_time(shown["claim_expires_at"]) >= shown_time(
        listed["claim_expires_at"])
    assert {key: shown[key] for key in listed
            if key != "claim_expires_at"} == {
        key: value for key, value in listed.items()
        if key != "claim_expires_at"}
    assert shown["running"] == "StartDomain"
    steps = shown["steps"].splitlines()
    assert [RAN_STEP.fullmatch(line).group("name", "state")
            for line in steps[:started]] == [
        (name, "SUCCESS") for name in BUILD_TASKS[:started]]
    assert RAN_STEP.fullmatch(steps[started]).group("name", "state") == (
        "StartDomain", "RUNNING")

    runner.release()
    ended = wait_for_result(cli, posted["job"], "success")
    assert (ended["state"], ended["owner"], ended["claim_expires_at"],
            ended["progress"], ended["failing"]) == (
        "ENDED", None, None, f"{len(BUILD_TASKS)}/{len(BUILD_TASKS)}", None)
    assert posted["job"] not in job_list(cli)


def test_a_failed_build_shows_its_failing_step_and_event_errors(
        cloud_cli, paused_runner):
    cli = cloud_cli
    runner = paused_runner("CreateDisks:during-revert",
                           VMFLOW_FAIL_AT="StartDomain")
    posted = post_build(cli)
    runner.wait_paused()
    reverting = job_list(cli)[posted["job"]]
    assert (reverting["state"], reverting["owner"]) == ("CLAIMED",
                                                        runner.owner)
    assert reverting["failing"] == f"StartDomain: {INJECTED}"

    runner.release()
    ended = wait_for_result(cli, posted["job"], "error")
    assert (ended["state"], ended["failing"]) == (
        "ENDED", f"StartDomain: {INJECTED}")
    # A reverted step is not done.
    assert ended["progress"] == f"0/{len(BUILD_TASKS)}"
    ran = dict(RAN_STEP.fullmatch(line).group("name", "state")
               for line in ended["steps"].splitlines()
               if RAN_STEP.fullmatch(line))
    assert ran == {name: "REVERTED"
                   for name in BUILD_TASKS[:BUILD_TASKS.index(
                       "StartDomain") + 1]}

    events = as_json(cli("server", "event-list", "vm1", "-f", "json"))
    assert {event["request_id"] for event in events} == {
        posted["request_id"]}
    assert all(isinstance(event["duration"], float)
               and event["duration"] >= 0 for event in events)
    by_step = {event["event"]: event for event in events}
    assert (by_step["StartDomain"]["result"],
            by_step["StartDomain"]["error"]) == (
        "failure", f"InjectedFault: {INJECTED}")
    assert {event["error"] for name, event in by_step.items()
            if name != "StartDomain"} == {None}
    assert "traceback" not in by_step["StartDomain"]
    long = as_json(cli("server", "event-list", "vm1", "--long", "-f",
                       "json"))
    start_domain, = [event for event in long
                     if event["event"] == "StartDomain"]
    assert "Traceback (most recent call last):" in start_domain["traceback"]
    assert start_domain["error"] == f"InjectedFault: {INJECTED}"
