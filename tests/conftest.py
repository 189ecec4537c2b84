"""Fixtures shared by every test layer."""
import os
import re
import subprocess
import sys
import time

import pytest

from vmflow import conf as vmflow_conf
from vmflow.persistence import api, migration

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIR = os.path.dirname(sys.executable)
# A plain --wait line of a step, "build vm1: [4/11] CreateDisks running
# (3.2 s)", not the last line ("... [0/11] failed at CreateDisks (3.3 s)").
STEP_LINE = re.compile(
    r"(?P<label>.+?): \[(?P<done>\d+)/(?P<total>\d+)\] "
    r"(?!failed at |failed \(|succeeded \()(?P<step>\S+) (?P<what>.+) "
    r"\((?P<seconds>\d+\.\d) s\)")


def progress_lines(stderr):
    """The plain ``--wait`` progress lines of ``stderr``, as dicts of
    :data:`STEP_LINE`'s groups."""
    return [match.groupdict() for match in map(STEP_LINE.fullmatch,
                                               stderr.splitlines()) if match]


def started_steps(stderr):
    """The steps ``--wait`` showed starting (``running``, or ``done`` when
    a runner ended it between two polls), in order."""
    return [line["step"] for line in progress_lines(stderr)
            if line["what"] in ("running", "done")]


@pytest.fixture
def conf(tmp_path):
    """The global CONF reset to defaults with a private state_path."""
    conf = vmflow_conf.CONF
    vmflow_conf.parse(config_files=[])
    conf.set_override("state_path", str(tmp_path / "state"))
    yield conf
    api.dispose_engines()
    conf.reset()
    conf.clear_override("state_path")


@pytest.fixture
def db_engine(conf):
    """An SQLite database at the current schema."""
    engine = api.get_engine(conf)
    migration.db_sync(engine)
    return engine


@pytest.fixture
def session(db_engine):
    with api.session_scope(db_engine) as session:
        yield session


def write_config(path, sections):
    lines = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in options.items())
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def wait_until(predicate, timeout, what, interval=0.05):
    """Poll ``predicate`` until it returns a true value (returned), at most
    ``timeout`` seconds; then raise AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for "
                                 f"{what}")
        time.sleep(interval)


class Cli:
    """Runs the installed ``vmflow`` console script with a config file."""

    def __init__(self, config_file):
        self.config_file = config_file

    def __call__(self, *args, check=True, env=None, timeout=120):
        result = subprocess.run(
            [os.path.join(BIN_DIR, "vmflow"), "--config-file",
             self.config_file, *args],
            capture_output=True, text=True, timeout=timeout, check=False,
            env=dict(os.environ, **env) if env else None)
        if check and result.returncode != 0:
            raise AssertionError(
                f"vmflow {' '.join(args)} exited {result.returncode}: "
                f"{result.stderr}")
        return result


@pytest.fixture
def cli(tmp_path):
    config_file = write_config(tmp_path / "vmflow.conf", {
        "DEFAULT": {"state_path": tmp_path / "state"}})
    return Cli(config_file)
