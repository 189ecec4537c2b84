"""Store keys are used through vmflow.flows.constants, never spelled."""
import ast
import os

from tests.conftest import REPO_ROOT
from vmflow.flows import constants

PACKAGE = os.path.join(REPO_ROOT, "vmflow")
USERS = [os.path.join(PACKAGE, "tasks"), os.path.join(PACKAGE, "flows"),
         os.path.join(PACKAGE, "engine", "listeners.py")]
STORE_KEYS = {value for name, value in vars(constants).items()
              if name.isupper() and not name.endswith("_FLOW")}


def python_files():
    for place in USERS:
        if place.endswith(".py"):
            yield place
            continue
        for name in sorted(os.listdir(place)):
            if name.endswith(".py") and name != "constants.py":
                yield os.path.join(place, name)


def test_store_keys_are_known():
    assert {"instance_uuid", "host_name", "power_state"} <= STORE_KEYS


def test_no_store_key_is_spelled_as_a_string():
    spelled = []
    for path in python_files():
        with open(path) as source:
            tree = ast.parse(source.read(), path)
        spelled.extend(
            f"{os.path.relpath(path, REPO_ROOT)}:{node.lineno}: {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in STORE_KEYS)
    assert spelled == []
