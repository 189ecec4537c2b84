"""``server create``/``server delete`` with and without ``--wait``, ``job
list``/``job show`` and the errors they give, through the installed CLI
and a real ``vmflow-engine``, on SQLite and libvirt's test driver."""
import json
import os
import re
import signal
import subprocess
import sys

import pytest
import sqlalchemy

from tests.cloud import image_file  # noqa: F401 (fixture)
from tests.conftest import progress_lines, started_steps, wait_until
from vmflow import flows
from vmflow.flows import build, delete
from vmflow.persistence import api, models

ENGINE_BIN = os.path.join(os.path.dirname(sys.executable), "vmflow-engine")


def seed_cloud(cli, tmp_path, image_file, instances=1):
    """Through ``cli``: the schema, host h1 on test:///default, flavor
    tiny, image img and a quota of ``instances`` servers."""
    cli("db", "sync")
    (tmp_path / "instances").mkdir()
    cli("host", "add", "h1", "--uri", "test:///default", "--vcpus", "4",
        "--memory-mb", "4096", "--disk-gb", "20", "--instances-path",
        str(tmp_path / "instances"))
    cli("flavor", "create", "tiny", "--vcpus", "1", "--ram", "64", "--disk",
        "1")
    cli("image", "add", "img", "--file", image_file)
    cli("quota", "set", "demo", "--instances", str(instances), "--cores",
        "4", "--ram", "1024")


@pytest.fixture
def cloud_cli(cli, tmp_path, image_file):  # noqa: F811
    seed_cloud(cli, tmp_path, image_file)
    return cli


def table_rows(tmp_path, model):
    engine = api.create_engine(f"sqlite:///{tmp_path}/state/vmflow.sqlite")
    try:
        with api.session_scope(engine) as session:
            return session.scalars(sqlalchemy.select(model)).all()
    finally:
        engine.dispose()


def _runner_registered(cli):
    engine = api.create_engine(
        f"sqlite:///{os.path.dirname(cli.config_file)}/state/vmflow.sqlite")
    try:
        with api.session_scope(engine) as session:
            return session.scalar(sqlalchemy.select(models.Job.uuid).where(
                models.Job.state == "REGISTERED")) is not None
    finally:
        engine.dispose()


def as_json(result):
    return json.loads(result.stdout)


def test_posted_build_waits_for_a_runner_and_refuses_a_second_operation(
        cloud_cli, tmp_path):
    cli = cloud_cli
    result = cli("server", "create", "vm1", "--flavor", "tiny", "--image",
                 "img", "-f", "json")
    posted = as_json(result)
    assert result.stderr == (
        f"vmflow: note: no vmflow-engine is running; job {posted['job']} "
        "waits until one runs (or use --wait to run it here)\n")
    tasks = [task.name for task in flows.iter_tasks(build.get_build_flow())]
    jobs = as_json(cli("job", "list", "-f", "json"))
    assert [(job["uuid"], job["action"], job["server"], job["state"],
             job["owner"], job["claim_expires_at"], job["progress"],
             job["failing"]) for job in jobs] == [
        (posted["job"], "build", "vm1", "UNCLAIMED", None, None,
         f"0/{len(tasks)}", None)]
    shown = as_json(cli("job", "show", posted["job"], "-f", "json"))
    assert shown["state"] == "UNCLAIMED"
    assert shown["steps"].splitlines()[:2] == [
        "MarkInstanceErrorOnRevert: PENDING", "ReserveQuota: PENDING"]

    busy = cli("server", "delete", "vm1", check=False)
    assert busy.returncode == 1
    assert busy.stderr.startswith(
        f"vmflow: error: instance {posted['instance_uuid']} is busy: build "
        f"is running (job {posted['job']}")
    again = cli("server", "create", "vm1", "--flavor", "tiny", "--image",
                "img", check=False)
    assert (again.returncode, again.stderr) == (
        1, "vmflow: error: server 'vm1' already exists\n")

    subprocess.run([ENGINE_BIN, "--config-file", cli.config_file, "--once"],
                   check=True, capture_output=True, timeout=120)
    assert as_json(cli("job", "list", "-f", "json")) == []
    ended = as_json(cli("job", "show", posted["job"], "-f", "json"))
    assert (ended["state"], ended["result"]) == ("ENDED", "success")
    assert ended["progress"] == f"{len(tasks)}/{len(tasks)}"
    steps = dict(line.split(": ", 1) for line in ended["steps"].splitlines())
    # Tasks say how long they took (from their events); retries do not.
    assert all(re.fullmatch(r"SUCCESS \(\d+\.\d\d s\)", steps[name])
               for name in tasks), steps
    assert set(steps.values()) - {steps[name] for name in tasks} == {
        "SUCCESS"}
    server = as_json(cli("server", "show", "vm1", "-f", "json"))
    assert (server["vm_state"], server["host"]) == ("active", "h1")
    assert table_rows(tmp_path, models.InstanceLock) == []


def test_with_a_runner_alive_the_posted_build_runs_there(cloud_cli):
    cli = cloud_cli
    runner = subprocess.Popen(
        [ENGINE_BIN, "--config-file", cli.config_file, "--name", "bg"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _runner_registered(cli), 60,
                   "the runner's heartbeat")
        result = cli("server", "create", "vm1", "--flavor", "tiny",
                     "--image", "img", "-f", "json")
        assert result.stderr == ""  # no note: a runner will run it
        job = as_json(result)["job"]
        wait_until(lambda: as_json(cli("job", "show", job, "-f", "json"))[
            "result"] == "success", 60, "the runner to build vm1")
        server = as_json(cli("server", "show", "vm1", "-f", "json"))
        assert server["vm_state"] == "active"
        # --wait while the runner does the work shows every step it ran,
        # however short (they are read from the action's events).
        deleted = cli("server", "delete", "vm1", "--wait")
    finally:
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(timeout=60) == 0
    assert started_steps(deleted.stderr) == [
        task.name for task in flows.iter_tasks(delete.get_delete_flow())]
    assert deleted.stderr.splitlines()[-1].startswith(
        "delete vm1: [10/10] succeeded (")
    # A deleted server's history stays readable: by uuid, or --deleted.
    assert cli("server", "event-list", "vm1", check=False).returncode == 1
    for name in (server["uuid"], "vm1 --deleted"):
        events = as_json(cli("server", "event-list", *name.split(),
                             "-f", "json"))
        assert {event["action"] for event in events} == {"build", "delete"}


def test_a_failed_build_exits_1_with_the_fault_and_deletes_cleanly(
        cloud_cli, tmp_path):
    cli = cloud_cli
    cli("quota", "set", "demo", "--instances", "0")
    failed = cli("server", "create", "vm1", "--flavor", "tiny", "--image",
                 "img", "--wait", check=False)
    assert failed.returncode == 1
    assert started_steps(failed.stderr) == ["MarkInstanceErrorOnRevert",
                                            "ReserveQuota"]
    assert "build vm1: [1/11] ReserveQuota failed: quota exceeded" in (
        failed.stderr)
    last_line = failed.stderr.strip().splitlines()[-1]
    assert last_line.startswith("vmflow: error: build of server vm1 failed: "
                                "ReserveQuota failed: quota exceeded")
    server = as_json(cli("server", "show", "vm1", "-f", "json"))
    assert (server["vm_state"], server["task_state"]) == ("error", None)
    assert server["fault"].startswith("ReserveQuota failed: quota exceeded")

    deleted = as_json(cli("server", "delete", "vm1", "--wait", "-f",
                          "json"))
    assert deleted["result"] == "success"
    assert cli("server", "list", "-f", "json").stdout.strip() == "[]"
    assert table_rows(tmp_path, models.QuotaHold) == []
    assert table_rows(tmp_path, models.InstanceLock) == []


def test_create_wait_runs_inline_and_shows_each_step(cloud_cli):
    result = cloud_cli("server", "create", "vm1", "--flavor", "tiny",
                       "--image", "img", "--wait", "-f", "json")
    server = as_json(result)
    assert (server["vm_state"], server["power_state"]) == ("active",
                                                          "running")
    # Each step once, in order, counted as it starts (steps done / total):
    # run here, they are not reported again from events.
    tasks = [task.name for task in flows.iter_tasks(build.get_build_flow())]
    lines = progress_lines(result.stderr)
    assert [(line["label"], line["done"], line["total"], line["step"],
             line["what"]) for line in lines] == [
        ("build vm1", str(done), str(len(tasks)), name, "running")
        for done, name in enumerate(tasks)]
    assert result.stderr.splitlines()[-1].startswith(
        f"build vm1: [{len(tasks)}/{len(tasks)}] succeeded (")
    assert "\x1b" not in result.stderr


def test_a_build_whose_revert_fails_ends_error_and_delete_cleans_up(
        cloud_cli, tmp_path):
    cli = cloud_cli
    failed = cli("server", "create", "vm1", "--flavor", "tiny", "--image",
                 "img", "--wait", check=False,
                 env={"VMFLOW_FAIL_AT": "StartDomain",
                      "VMFLOW_FAIL_REVERT_AT": "CreateDisks"})
    assert failed.returncode == 1
    assert "build vm1: [4/11] CreateDisks revert failed: injected fault" in (
        failed.stderr)
    server = as_json(cli("server", "show", "vm1", "-f", "json"))
    # The sentinel's revert never ran; the job's end put it in ERROR.
    assert (server["vm_state"], server["task_state"]) == ("error", None)
    assert server["fault"].startswith(
        "revert failed: CreateDisks (revert): injected fault")
    # What the failed revert did not give back is still there, visibly.
    assert len(table_rows(tmp_path, models.Allocation)) == 1
    assert (tmp_path / "instances" / server["uuid"]).is_dir()

    cli("server", "delete", "vm1", "--wait")
    assert table_rows(tmp_path, models.Allocation) == []
    assert table_rows(tmp_path, models.QuotaHold) == []
    assert not (tmp_path / "instances" / server["uuid"]).exists()
