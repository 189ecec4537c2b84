"""``vmflow web``, the read-only web view, as a person sees it: a real
``vmflow web`` process on a cloud the CLI made (test:///default, SQLite),
a real ``vmflow-engine`` running the jobs, headless Chromium loading the
pages, plain HTTP requests for what a browser would not send."""
import json
import shutil
import socket
import sqlite3

import pytest
from taskflow import states

from tests.conftest import Cli, wait_until, write_config
from tests.functional.engine import helpers
from tests.functional.web_pages import (PNG_HEADER, Browser, WebServer,
                                        request)
from vmflow import flows
from vmflow.flows import build
from vmflow.tasks import hooks
from vmflow.visual import render

PAUSED_STEP = "CreateDisks"
PAUSE_POINT = f"{PAUSED_STEP}:before-execute"
OTHER_METHODS = ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")
DB_PASSWORD = "hunter2"
BOARD_PASSWORD = "b0ardpass"
STORE_SECRET = "s3cret-value"
# Text of a real fault: the instances path is in CreateDisks's error.
MARKUP_DIR = 'inst<b>&"q"'


def fill_of(state):
    return render.STATE_COLOURS[state][0]


def as_json(result):
    return json.loads(result.stdout)


@pytest.fixture
def populated(cli, tmp_path, populated_state):
    shutil.copytree(populated_state, tmp_path / "state")
    return cli


@pytest.fixture
def browser(tmp_path):
    return Browser(tmp_path)


@pytest.fixture
def web(populated, tmp_path):
    server = WebServer(populated.config_file, tmp_path)
    yield server
    assert server.stop() == 0, server.errors.read_text()


@pytest.fixture
def paused_runner(populated, tmp_path):
    """A ``vmflow-engine`` that stops before CreateDisks until released."""
    folder = tmp_path / "pauses"
    folder.mkdir()
    process = helpers.start_runner(
        populated.config_file, log_path=tmp_path / "runner.log",
        env={hooks.PAUSE_AT: PAUSE_POINT, hooks.PAUSE_DIR: str(folder)})
    yield folder
    (folder / "release").touch()
    assert helpers.stop_process(process) == 0, (
        tmp_path / "runner.log").read_text()


def build_steps():
    return [task.name for task in flows.iter_tasks(build.get_build_flow())]


def test_a_running_build_is_followed_until_it_ends(
        populated, web, paused_runner, browser, tmp_path):
    cli = populated
    job = as_json(cli("server", "create", "vm1", "--flavor", "tiny",
                      "--image", "cirros", "-f", "json"))["job"]
    wait_until((paused_runner / f"{PAUSE_POINT}.paused").exists, 60,
               f"the runner to pause at {PAUSE_POINT}")
    steps = build_steps()
    done = steps.index(PAUSED_STEP)

    jobs = browser.page(web.page_url())
    assert jobs.row(job)[:4] == ["CLAIMED", "build", "vm1",
                                 f"{done}/{len(steps)} {PAUSED_STEP}"]
    assert jobs.refresh is not None
    running = browser.page(web.page_url(job))
    assert running.refresh is not None
    assert running.text_of("state").startswith("CLAIMED")
    assert running.text_of("progress") == (
        f"{done}/{len(steps)} steps done; running: {PAUSED_STEP}")
    assert running.fills[PAUSED_STEP] == fill_of(states.RUNNING)
    assert running.fills[steps[done - 1]] == fill_of(states.SUCCESS)
    assert running.fills[steps[done + 1]] == fill_of(states.PENDING)
    shot = browser.screenshot(web.page_url(job), tmp_path / "job-running.png")
    assert shot.startswith(PNG_HEADER)

    (paused_runner / "release").touch()
    wait_until(lambda: as_json(cli("job", "show", job, "-f", "json"))[
        "result"] == "success", 60, "the build to end")
    ended = browser.page(web.page_url(job))
    assert ended.refresh is None
    assert ended.text_of("state") == "ENDED"
    assert ended.text_of("result") == "success"
    assert ended.text_of("progress") == f"{len(steps)}/{len(steps)} steps done"
    assert ended.fills[PAUSED_STEP] == fill_of(states.SUCCESS)
    assert set(ended.fills.values()) == {fill_of(states.SUCCESS)}
    assert browser.screenshot(web.page_url(job), tmp_path / "job-ended.png"
                              ).startswith(PNG_HEADER)
    jobs = browser.page(web.page_url())
    assert jobs.refresh is None
    row = jobs.row(job)
    assert row[:4] + row[5:] == ["ENDED", "build", "vm1",
                                 f"{len(steps)}/{len(steps)}", "success",
                                 job]


def test_only_get_and_head_are_answered(populated, web):
    cli = populated
    job = as_json(cli("server", "create", "vm1", "--flavor", "tiny",
                      "--image", "cirros", "-f", "json"))["job"]
    for path in (web.page_url(), web.page_url(job), web.url + "nowhere"):
        for method in OTHER_METHODS:
            status, headers, body = request(path, method)
            assert (status, headers["Allow"]) == (405, "GET, HEAD"), (
                method, path)
            assert "405 Method Not Allowed" in body
    for path in (web.page_url(), web.page_url(job)):
        status, _headers, body = request(path, "HEAD")
        assert (status, body) == (200, "")
    status, _headers, body = request(web.page_url(job))
    assert status == 200
    assert "UNCLAIMED" in body and "<svg" in body
    assert request(web.url + "nowhere")[0] == 404
    assert request(web.page_url("not-a-job"))[0] == 404
    # Nothing was done by any of them: the job still waits, unclaimed.
    assert as_json(cli("job", "list", "-f", "json"))[0]["state"] == (
        "UNCLAIMED")


@pytest.fixture
def failed_build(tmp_path, disk_files):
    """A build that failed in CreateDisks with the instances path in its
    error, on a database named by URL with a board password configured;
    its action message and store then get credentials (crafted: the CLI
    refuses them)."""
    state = tmp_path / "state"
    database_url = f"sqlite:///{state}/vmflow.sqlite"
    cli = Cli(write_config(tmp_path / "vmflow.conf", {
        "DEFAULT": {"state_path": state},
        "database": {"connection": database_url},
        "jobboard": {"password": BOARD_PASSWORD}}))
    instances = tmp_path / MARKUP_DIR
    instances.mkdir()
    image = tmp_path / "gone.qcow2"
    shutil.copy(disk_files["qcow2"], image)
    cli("db", "sync")
    cli("host", "add", "local", "--uri", "test:///default", "--vcpus", "4",
        "--memory-mb", "4096", "--disk-gb", "40", "--instances-path",
        str(instances))
    cli("flavor", "create", "tiny", "--vcpus", "1", "--ram", "64", "--disk",
        "1")
    cli("image", "add", "gone", "--file", str(image))
    image.unlink()
    assert cli("server", "create", "vm1", "--flavor", "tiny", "--image",
               "gone", "--wait", check=False).returncode == 1
    assert as_json(cli("job", "list", "-f", "json")) == []  # it ended
    job = _craft_credentials(state / "vmflow.sqlite", database_url)
    return cli, job, database_url


def _craft_credentials(path, database_url):
    with sqlite3.connect(path) as db:
        (job,), = db.execute("SELECT uuid FROM logbooks").fetchall()
        db.execute(
            "UPDATE instance_actions SET message = message || ? ",
            (f" (seen at postgresql://vmflow:{DB_PASSWORD}@db.example/vmflow"
             f" and {database_url})",))
        (flow_uuid, meta), = db.execute(
            "SELECT uuid, meta FROM flowdetails").fetchall()
        meta = json.loads(meta)
        meta["vmflow_store"].update(
            api_token=STORE_SECRET,
            endpoint=f"https://admin:{STORE_SECRET}@api.example/v1")
        db.execute("UPDATE flowdetails SET meta = ? WHERE uuid = ?",
                   (json.dumps(meta), flow_uuid))
    return job


def test_failure_text_is_escaped_and_no_credential_is_shown(
        failed_build, tmp_path, browser):
    cli, job, database_url = failed_build
    server = WebServer(cli.config_file, tmp_path)
    try:
        pages = {url: request(url)[2] for url in (
            server.page_url(), server.page_url(job), server.url + "nowhere")}
        page = browser.page(server.page_url(job))
        browser.screenshot(server.page_url(job), tmp_path / "job-failed.png")
    finally:
        assert server.stop() == 0, server.errors.read_text()
    for body in pages.values():
        for secret in (DB_PASSWORD, BOARD_PASSWORD, STORE_SECRET,
                       database_url):
            assert secret not in body
    body = pages[server.page_url(job)]
    assert 'inst&lt;b&gt;&amp;&#34;q&#34;/_base/' in body
    assert MARKUP_DIR not in body
    # What the browser made of it: text, not elements.
    assert "b" not in page.tags and "script" not in page.tags
    assert page.refresh is None
    assert page.text_of("failing").startswith(
        f"{PAUSED_STEP}: disk operation failed: copy {tmp_path}/{MARKUP_DIR}"
        "/_base/")
    assert f"{tmp_path}/{MARKUP_DIR}/_base/" in page.text_of(
        f"atom-{PAUSED_STEP}")
    assert page.fills[PAUSED_STEP] == fill_of(states.REVERTED)
    assert page.text_of("message").endswith(
        "(seen at postgresql://vmflow:***@db.example/vmflow and ***)")
    assert page.text_of("store-api_token") == '"***"'
    assert page.text_of("store-endpoint") == (
        '"https://admin:***@api.example/v1"')


def test_a_port_in_use_is_refused_in_one_line(populated):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = populated("web", "--port", str(port), check=False)
    assert result.returncode == 1
    assert result.stderr == (
        f"vmflow: error: cannot listen on http://127.0.0.1:{port}/: "
        "Address already in use\n")
    assert result.stdout == ""
