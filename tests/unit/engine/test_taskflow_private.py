"""The TaskFlow private names vmflow relies on still exist, and setup.cfg
keeps TaskFlow on the minor version they were checked against."""
import configparser
import importlib
import os
from importlib import metadata

import pytest

from tests.conftest import REPO_ROOT
from vmflow.engine import jobboard, runner, taskflow_private


def resolve(dotted):
    parts = dotted.split(".")
    for index in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:index]))
        except ImportError:
            continue
        for part in parts[index:]:
            value = getattr(value, part)
        return value
    raise ImportError(dotted)


@pytest.mark.parametrize("owner, name", taskflow_private.PRIVATE_NAMES,
                         ids=lambda value: value)
def test_each_listed_private_name_exists(owner, name):
    assert hasattr(resolve(owner), name)


def test_each_listed_private_attribute_is_set(conf, db_engine):
    conductor = runner.build_conductor("unit", conf)
    conf.set_override("backend", "redis", group="jobboard")
    redis_board = jobboard.get_jobboard(conf, connect=False)
    for label, owner in (("conductor", conductor),
                         ("redis_board", redis_board)):
        for attribute in taskflow_private.PRIVATE_ATTRIBUTES[label]:
            assert hasattr(owner, attribute), (label, attribute)


def test_taskflow_is_capped_below_its_next_minor_version():
    parser = configparser.ConfigParser()
    parser.read(os.path.join(REPO_ROOT, "setup.cfg"))
    requirement, = [line.strip() for line in
                    parser["options"]["install_requires"].splitlines()
                    if line.strip().startswith("taskflow")]
    major, minor = metadata.version("taskflow").split(".")[:2]
    assert requirement == f"taskflow>={major}.{minor},<{major}.{int(minor) + 1}"
