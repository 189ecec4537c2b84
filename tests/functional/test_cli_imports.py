"""What ``vmflow`` commands import: a read-only command starts without the
machinery of the commands that post, wait, draw, audit or serve (cliff
imports only the module of the command that runs; those modules import
the heavy parts when a command needs them). benchmarks/cli_latency.py
measures the time this saves; this checks the structure, run by run."""
import shutil

import pytest

# Each takes from a tenth of a second to most of one to import.
HEAVY = ("taskflow", "networkx", "alembic", "rich", "flask", "pydot",
         "libvirt", "paramiko", "lxml", "vmflow.audit", "vmflow.visual",
         "vmflow.compute", "vmflow.flows", "vmflow.engine.posting",
         "vmflow.cli.progress")
READ_ONLY = (("server", "show", "vm1"), ("server", "list"),
             ("server", "event-list", "vm1"), ("flavor", "list"),
             ("host", "show", "local"), ("image", "list"),
             ("quota", "show", "demo"), ("migration", "list"))
# Posting a build needs TaskFlow and the flows, not the rest.
POST_ONLY_HEAVY = ("rich", "flask", "pydot", "libvirt", "paramiko", "lxml",
                   "vmflow.audit", "vmflow.visual", "vmflow.cli.progress")


@pytest.fixture
def cloud(cli, tmp_path, populated_state):
    shutil.copytree(populated_state, tmp_path / "state")
    cli("server", "create", "vm1", "--flavor", "tiny", "--image", "cirros")
    return cli


def imported_modules(cli, *args):
    """Every module the command imported (python -X importtime's list)."""
    result = cli(*args, env={"PYTHONPROFILEIMPORTTIME": "1"})
    return {line.rsplit("|", 1)[1].strip()
            for line in result.stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


def heavy_among(modules, heavy):
    return sorted(name for name in heavy if name in modules)


def test_read_only_commands_import_none_of_the_heavy_modules(cloud):
    found = {}
    for args in READ_ONLY:
        modules = imported_modules(cloud, *args)
        # the list is real: the command's own module and the ORM are in it
        assert {"vmflow.cli.base", "sqlalchemy.orm"} <= modules, args
        found[" ".join(args)] = heavy_among(modules, HEAVY)
    assert found == {" ".join(args): [] for args in READ_ONLY}


def test_posting_a_build_imports_taskflow_but_not_the_rest(cloud):
    modules = imported_modules(cloud, "server", "create", "vm2", "--flavor",
                               "tiny", "--image", "cirros")
    # the check sees a heavy import when there is one
    assert {"taskflow", "vmflow.compute"} <= modules
    assert heavy_among(modules, POST_ONLY_HEAVY) == []
