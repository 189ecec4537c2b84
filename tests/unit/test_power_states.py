"""Power states are hypervisor-neutral: libvirt's words stay in its driver,
and the neutral names are spelled in vmflow.power_states alone."""
import ast
import os

from tests.conftest import REPO_ROOT
from vmflow import power_states

PACKAGE = os.path.join(REPO_ROOT, "vmflow")
LIBVIRT_DRIVER = os.path.join(PACKAGE, "drivers", "libvirt")
# Migrations spell what they convert (they must not change with the code).
MIGRATIONS = os.path.join(PACKAGE, "persistence", "migrations")
LIBVIRT_WORDS = {"shutoff", "blocked", "pmsuspended"}


def source_files(exclude=()):
    for folder, _dirs, files in os.walk(PACKAGE):
        if any(folder.startswith(path) for path in exclude):
            continue
        for name in files:
            if name.endswith(".py"):
                yield os.path.join(folder, name)


def string_literals(path):
    with open(path) as source:
        tree = ast.parse(source.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def places(words, exclude=()):
    return [f"{os.path.relpath(path, REPO_ROOT)}:{line}: {value!r}"
            for path in source_files(exclude)
            for line, value in string_literals(path) if value in words]


def test_the_neutral_states_are_novas():
    assert power_states.ALL == ("nostate", "running", "paused", "shutdown",
                                "crashed", "suspended")


def test_nostate_is_spelled_in_one_place():
    found = places({power_states.NOSTATE}, exclude=(MIGRATIONS,))
    assert found == [f"vmflow/power_states.py:{line}: 'nostate'"
                     for line, value in string_literals(power_states.__file__)
                     if value == "nostate"]


def test_libvirt_state_words_stay_in_the_libvirt_driver():
    assert places(LIBVIRT_WORDS, exclude=(LIBVIRT_DRIVER, MIGRATIONS)) == []


def test_libvirt_words_are_found_where_they_are():
    # The two checks above see what they look for.
    assert places(LIBVIRT_WORDS, exclude=(MIGRATIONS,)) == []
    assert len(places(LIBVIRT_WORDS, exclude=(LIBVIRT_DRIVER,))) == 3


def test_libvirt_domain_states_are_not_read_outside_the_driver():
    readers = []
    for path in source_files(exclude=(LIBVIRT_DRIVER,)):
        with open(path) as source:
            if "VIR_DOMAIN_" in source.read():
                readers.append(os.path.relpath(path, REPO_ROOT))
    assert readers == []
