"""Every entry point in setup.cfg loads, also without the optional extras.

cliff drops a command whose module fails to import without a word, so a
command module that imports an optional package (redis, a database driver)
at import time would vanish from a plain ``pip install .``. These tests
load every entry point in a fresh interpreter in which the packages of the
optional extras cannot be imported, as on such an install.
"""
import configparser
import importlib.metadata
import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

SETUP_CFG = os.path.join(REPO_ROOT, "setup.cfg")
# Groups whose entry points vmflow itself loads (or cliff, or oslo).
GROUPS = ("console_scripts", "vmflow.cli", "vmflow.drivers",
          "oslo.config.opts")
LOAD_ALL = r"""
import importlib, json, sys

class Block:
    def __init__(self, names):
        self.names = set(names)
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ImportError(f"No module named {name!r} (blocked: optional)",
                              name=name)
        return None

request = json.loads(sys.argv[1])
sys.meta_path.insert(0, Block(request["blocked"]))
failures = {}
for ident, target in request["entry_points"].items():
    module, _, attr = target.partition(":")
    try:
        value = importlib.import_module(module)
        for part in attr.split("."):
            value = getattr(value, part)
    except Exception as error:
        failures[ident] = f"{type(error).__name__}: {error}"
print(json.dumps(failures))
"""


def declared_entry_points():
    """``{"group/name": "module:attr"}`` as setup.cfg declares them."""
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    found = {}
    for group in GROUPS:
        text = parser.get("options.entry_points", group, fallback="")
        for line in filter(None, (line.strip() for line in
                                  text.splitlines())):
            name, _, target = line.partition("=")
            found[f"{group}/{name.strip()}"] = target.strip()
    return found


def optional_modules():
    """Top-level modules of the packages only the extras (not ``test``)
    install, e.g. ``redis``, ``psycopg2``, ``pymysql``."""
    parser = configparser.ConfigParser()
    parser.read(SETUP_CFG)
    extras = parser["options.extras_require"]
    distributions = set()
    for extra, text in extras.items():
        if extra != "test":
            distributions.update(
                re.split(r"[<>=!~; \[]", line.strip())[0].lower()
                for line in text.splitlines() if line.strip())
    modules = {module for module, owners in
               importlib.metadata.packages_distributions().items()
               if {owner.lower() for owner in owners} & distributions}
    return sorted(modules)


def load_in_fresh_interpreter(entry_points, blocked):
    request = json.dumps({"entry_points": entry_points, "blocked": blocked})
    result = subprocess.run([sys.executable, "-c", LOAD_ALL, request],
                            capture_output=True, text=True, timeout=120,
                            cwd=REPO_ROOT, check=True)
    return json.loads(result.stdout)


def test_setup_cfg_declares_every_command_group():
    groups = {ident.split("/")[0] for ident in declared_entry_points()}
    assert groups == set(GROUPS)


def test_the_optional_extras_are_known():
    # The blocking below means something only if it blocks these.
    assert {"redis", "psycopg2", "pymysql"} <= set(optional_modules())


def test_every_entry_point_loads_without_the_optional_extras():
    failures = load_in_fresh_interpreter(declared_entry_points(),
                                         optional_modules())
    assert failures == {}


def test_an_unimportable_command_module_fails_the_check(tmp_path):
    # The check itself: a command whose module imports a blocked package
    # is reported, not silently skipped.
    entry_points = dict(declared_entry_points())
    entry_points["vmflow.cli/broken"] = "vmflow.engine.jobboard_redis:X"
    failures = load_in_fresh_interpreter(entry_points, optional_modules())
    assert list(failures) == ["vmflow.cli/broken"]
    assert "redis" in failures["vmflow.cli/broken"]


@pytest.mark.parametrize("group", GROUPS)
def test_the_installed_metadata_matches_setup_cfg(group):
    # A stale install (setup.cfg changed, not reinstalled) would hide new
    # commands from cliff: tools/testbed/setup.sh reinstalls on change.
    installed = {f"{group}/{ep.name}": ep.value
                 for ep in importlib.metadata.distribution(
                     "vmflow").entry_points if ep.group == group}
    declared = {ident: target for ident, target in
                declared_entry_points().items()
                if ident.startswith(group + "/")}
    assert installed == declared
