"""``vmflow flow show`` on real jobs, through the installed CLI on SQLite
and libvirt's test driver: a build that succeeded, a build that failed on
both hosts and was reverted, a soft reboot that fell back to hard, and a
build whose runner was SIGKILLed, drawn before and after it resumed.

Each drawing (text, SVG, PNG) is checked against TaskFlow's persisted
atom states (:mod:`tests.functional.flowdraw`); the plan views of every
operation against their factories.
"""
import json
import os
import re
import shutil

import pytest

from tests.cloud import NODE_XML, image_file  # noqa: F401 (fixture)
from tests.conftest import Cli, wait_until, write_config
from tests.functional import flowdraw
from tests.functional.engine import helpers
from tests.functional.test_cli_operations import seed_cloud
from vmflow.flows import build, reboot
from vmflow.tasks import disks
from vmflow.visual import plans, render


CLAIM_EXPIRY = 5


@pytest.fixture(scope="module")
def seeded_state(tmp_path_factory, image_file):  # noqa: F811
    """A state folder seeded once by seed_cloud (each test copies it)."""
    folder = tmp_path_factory.mktemp("seeded")
    seed_cloud(Cli(write_config(folder / "vmflow.conf", {
        "DEFAULT": {"state_path": folder / "state"}})), folder, image_file,
        instances=3)
    return folder


@pytest.fixture
def cloud_cli(tmp_path, seeded_state):
    shutil.copytree(seeded_state / "state", tmp_path / "state")
    return Cli(write_config(tmp_path / "vmflow.conf", {
        "DEFAULT": {"state_path": tmp_path / "state"},
        "jobboard": {"claim_expiry_seconds": CLAIM_EXPIRY}}))


def database_url(cli):
    folder = os.path.dirname(cli.config_file)
    return f"sqlite:///{folder}/state/vmflow.sqlite"


def created(cli, name, *args, env=None, check=True):
    result = cli("server", "create", name, "--flavor", "tiny", "--image",
                 "img", *args, "-f", "json", env=env, check=check)
    return result


def latest_job(cli, name):
    """The job of the server's latest operation, as flow show finds it,
    checked against the server's events (their request id)."""
    text = cli("flow", "show", "--server", name).stdout
    return text.splitlines()[0].rsplit("job ", 1)[1]


def test_a_succeeded_build_is_drawn_with_every_step_succeeded(
        cloud_cli, tmp_path):
    created(cloud_cli, "vm1", "--wait")
    job = latest_job(cloud_cli, "vm1")
    states, svg, text = flowdraw.check_drawing(
        cloud_cli, job, build.get_build_flow, database_url(cloud_cli),
        tmp_path)
    assert set(states.values()) == {"SUCCESS"}
    assert text.splitlines()[0].startswith("build of vm1 — SUCCESS — 11/11")
    # Durations come from the action's events: every task has one.
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] in states:
            # a task's runs, a retry's: its subflow's first to last step
            assert re.search(r" \d+\.\d\d s( on h1)?$", line), line
    assert re.search(r"^  build-on-host \(linear flow\) · \d+\.\d\d s$",
                     text, re.M), text
    nodes = flowdraw.svg_nodes(svg)
    first_paragraph = " ".join(
        disks.CreateDisks.__doc__.strip().split("\n\n")[0].split())
    assert nodes["CreateDisks"][1] == first_paragraph


def test_a_build_rescheduled_then_reverted_shows_both_hosts(
        cloud_cli, tmp_path):
    node = tmp_path / "h2-node.xml"
    node.write_text(NODE_XML)
    (tmp_path / "h2-instances").mkdir()
    cloud_cli("host", "add", "h2", "--uri", f"test://{node}", "--vcpus",
              "4", "--memory-mb", "4096", "--disk-gb", "20",
              "--instances-path", str(tmp_path / "h2-instances"))
    result = created(cloud_cli, "vm1", "--wait", check=False,
                     env={"VMFLOW_FAIL_AT": "DefineDomain"})
    assert result.returncode == 1, result.stderr
    job = latest_job(cloud_cli, "vm1")
    states, svg, text = flowdraw.check_drawing(
        cloud_cli, job, build.get_build_flow, database_url(cloud_cli),
        tmp_path)
    assert states["DefineDomain"] == "REVERTED"
    assert states["MarkInstanceErrorOnRevert"] == "REVERTED"
    # The host retry lists both tries, each on its host, each failed.
    tries = [line.strip() for line in text.splitlines()
             if line.strip().startswith("try ")]
    assert [line.split()[:3] for line in tries] == [
        ["try", "1:", "h1"], ["try", "2:", "h2"]] or [
        line.split()[:3] for line in tries] == [
        ["try", "1:", "h2"], ["try", "2:", "h1"]], text
    assert all("InjectedFault" in line for line in tries), tries
    define = next(line for line in text.splitlines()
                  if line.split()[:1] == ["DefineDomain"])
    assert "2 runs" in define and "h1" in define and "h2" in define
    svg_words = flowdraw.svg_text(svg)
    assert "try 2:" in svg_words and "InjectedFault" in svg_words
    assert "failing step: DefineDomain: injected fault" in text


def test_a_soft_reboot_that_fell_back_to_hard_shows_the_skipped_branch(
        cloud_cli, tmp_path):
    created(cloud_cli, "vm1", "--wait")
    cloud_cli("server", "reboot", "vm1", "--wait",
              env={"VMFLOW_FAIL_AT": "ShutdownGuestAcpi"})
    job = latest_job(cloud_cli, "vm1")
    states, svg, text = flowdraw.check_drawing(
        cloud_cli, job, reboot.get_reboot_flow, database_url(cloud_cli),
        tmp_path)
    soft = [name for name in flowdraw.atom_names(reboot.get_reboot_flow)
            if name.endswith("-soft") or name in (
                "ShutdownGuestAcpi", "MarkInstanceRebootStarted",
                "WaitForGuestReboot")]
    assert {states[name] for name in soft} == {"IGNORE"}
    assert states["MarkInstanceRebooted"] == "SUCCESS"
    assert "soft-reboot (linear flow) if runs_soft_path — skipped" in text
    assert "hard-reboot (linear flow) if runs_hard_path" in text
    assert "try 1: soft failed: InjectedFault" in text
    assert "try 2: hard ok" in text
    assert "failing step" not in text  # the soft failure was recovered
    dot = cloud_cli("flow", "show", job, "--format", "dot").stdout
    assert 'label="runs_soft_path (skipped)", style=dashed' in dot
    assert 'label="runs_hard_path", style=bold' in dot


def test_a_job_whose_runner_was_killed_is_drawn_before_and_after_resuming(
        cloud_cli, tmp_path):
    posted = json.loads(created(cloud_cli, "vm1").stdout)
    job = posted["job"]
    # Before any runner: every step pending, drawn from the factory.
    states, _svg, _text = flowdraw.check_drawing(
        cloud_cli, job, build.get_build_flow, database_url(cloud_cli),
        tmp_path, label="posted")
    assert states == {}
    log = tmp_path / "runner.log"
    killed = helpers.start_runner(
        cloud_cli.config_file, name="r1", log_path=log,
        env={"VMFLOW_CRASH_AT": "CreateDisks:after-execute"})
    assert killed.wait(timeout=120) == -9, log.read_text()
    states, _svg, text = flowdraw.check_drawing(
        cloud_cli, job, build.get_build_flow, database_url(cloud_cli),
        tmp_path, label="killed")
    # (Killed before libvirt work: the test driver's domains live in the
    # process that made them, so the resumed runner does all of it.)
    assert states["CreateDisks"] == "RUNNING"
    assert states["ClaimResources"] == "SUCCESS"
    assert states["DefineDomain"] == "PENDING"
    resumed = helpers.start_runner(cloud_cli.config_file, name="r1",
                                   log_path=log)
    try:
        wait_until(lambda: json.loads(cloud_cli(
            "server", "show", "vm1", "-f", "json").stdout)["vm_state"]
            == "active", 120, "the resumed build")
        wait_until(lambda: "SUCCESS — 11/11" in cloud_cli(
            "flow", "show", job).stdout.splitlines()[0], 60,
            "the job's end")
    finally:
        helpers.stop_process(resumed)
    states, _svg, text = flowdraw.check_drawing(
        cloud_cli, job, build.get_build_flow, database_url(cloud_cli),
        tmp_path, label="resumed")
    assert set(states.values()) == {"SUCCESS"}
    disks_line = next(line for line in text.splitlines()
                      if line.split()[:1] == ["CreateDisks"])
    assert "2 runs" in disks_line  # the interrupted run, the resumed one


@pytest.mark.parametrize("operation", sorted(plans.OPERATIONS))
def test_every_operation_has_a_plan_view(cli, tmp_path, operation):
    factory = plans.OPERATIONS[operation]
    names = flowdraw.atom_names(factory)
    text = cli("flow", "show", "--flow", operation).stdout
    drawn = [line.split()[0] for line in text.splitlines()[2:]
             if "(linear" not in line and "(graph" not in line
             and "(unordered" not in line]
    assert drawn == names
    out = tmp_path / "plan.svg"
    cli("flow", "show", "--flow", operation, "--format", "svg", "-o",
        str(out))
    nodes = flowdraw.svg_nodes(out.read_bytes())
    assert sorted(nodes) == sorted(names)
    assert {fill for fill, _tip in nodes.values()} == {
        render.STATE_COLOURS[render.PLAN][0]}
    # Each step carries its docstring's first line as its tooltip.
    assert all(tip and tip != name for name, (_fill, tip) in nodes.items())


@pytest.mark.parametrize("args, message", [
    ((), "give exactly one of JOB_UUID, --server or --flow"),
    (("--flow", "build", "--server", "vm1"),
     "give exactly one of JOB_UUID, --server or --flow (got --server, "
     "--flow)"),
    (("--action", "req-1", "--flow", "build"), "--action needs --server"),
    (("--server", "nosuch"), "server 'nosuch' not found"),
    (("6d0b5f5e-3a43-4f0b-9a43-111111111111",),
     "job '6d0b5f5e-3a43-4f0b-9a43-111111111111' not found"),
])
def test_bad_requests_are_one_line_errors(cloud_cli, args, message):
    result = cloud_cli("flow", "show", *args, check=False)
    assert result.returncode != 0
    assert result.stderr.strip().endswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_server_with_an_unknown_request_id(cloud_cli):
    created(cloud_cli, "vm1", "--wait")
    result = cloud_cli("flow", "show", "--server", "vm1", "--action",
                       "req-nope", check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "vmflow: error: action of server 'vm1' with request id 'req-nope' "
        "not found")


def test_png_goes_to_a_redirected_stdout(cli, tmp_path):
    out = tmp_path / "plan.png"
    with open(out, "wb") as handle:
        result = helpers.subprocess.run(
            [os.path.join(helpers.os.path.dirname(helpers.sys.executable),
                          "vmflow"), "--config-file", cli.config_file,
             "flow", "show", "--flow", "reboot", "--format", "png"],
            stdout=handle, stderr=helpers.subprocess.PIPE, timeout=60)
    assert result.returncode == 0, result.stderr
    assert flowdraw.png_size(out.read_bytes())[1] > 500
