"""``vmflow server reboot|stop|start|pause|unpause|suspend|resume``: every
(state, operation) pair through the real CLI, on SQLite and libvirt's
test driver.

The expected table is written here from Nova's rules, independently of
:mod:`vmflow.server_actions`: soft reboot only from active; hard reboot
from active, stopped, paused, suspended, error; stop from active and
error; start from stopped; pause from active; unpause from paused;
suspend from active; resume from suspended; nothing while a task_state is
set, nothing on a server without a host, and nothing while another
operation holds the server's lock.

A refused pair must print exactly one stderr line naming the state, exit
1, print nothing on stdout and leave every row of every table (instances,
actions, events, locks, jobs, TaskFlow's logbooks ...) as it was -- both
through the whole command and with the early check skipped, so that the
check at the door (in the transaction that takes the instance's lock)
refuses on its own. An allowed pair must succeed with ``--wait``, end in
the operation's vm_state with no task_state, and record an instance
action with one event per step that ran.

libvirt's test driver lives in the process that opened it, so the CLI
runs in this process (cliff's app with captured streams): the domains a
``--wait`` build made are there for the next command.
"""
import contextlib
import io
import json
import shutil

import pytest
import sqlalchemy

from tests.cloud import image_file  # noqa: F401 (fixture)
from tests.conftest import started_steps, write_config
from tests.functional.test_cli_operations import seed_cloud
from vmflow import compute, server_actions
from vmflow import conf as vmflow_conf
from vmflow.cmd import cli as vmflow_cli
from vmflow.drivers.libvirt import connection as libvirt_connection
from vmflow.flows import constants, iter_tasks, power, reboot
from vmflow.persistence import api

# --- the expected table, from Nova's rules (not from server_actions) --------

OPERATIONS = {  # CLI arguments: (vm_states it starts from, vm_state after)
    "reboot": ({"active"}, "active"),
    "reboot --hard": ({"active", "stopped", "paused", "suspended", "error"},
                      "active"),
    "stop": ({"active", "error"}, "stopped"),
    "start": ({"stopped"}, "active"),
    "pause": ({"active"}, "paused"),
    "unpause": ({"paused"}, "active"),
    "suspend": ({"active"}, "suspended"),
    "resume": ({"suspended"}, "active"),
}
# Every state a server can be in: (vm_state, task_state) as the CLI shows
# it, and how the refusal names it.
STATES = {
    "building": ("building", "scheduling"),
    "active": ("active", None),
    "stopped": ("stopped", None),
    "paused": ("paused", None),
    "suspended": ("suspended", None),
    "error": ("error", None),
    "error-no-host": ("error", None),
    "busy": ("active", None),   # another operation posted (lock held)
    "deleted": ("deleted", None),
}

# States in which another operation's job holds the instance's lock.
LOCK_HELD_BY = {"building": "build", "busy": "reboot"}


def action_name(operation):
    return operation.split()[0]


def expected_refusal(state, operation, door_only=False):
    """None when ``operation`` may start in ``state``, else the one line
    (a prefix of it) the CLI must print."""
    vm_state, task_state = STATES[state]
    allowed, _after = OPERATIONS[operation]
    verb = action_name(operation)
    needs = " or ".join(sorted(allowed))
    if state == "deleted":
        return "vmflow: error: server 'vm1' not found"
    holder = LOCK_HELD_BY.get(state)
    if holder and (door_only or (task_state is None
                                 and vm_state in allowed)):
        # The lock is taken before the state is looked at again.
        return f"vmflow: error: instance {{uuid}} is busy: {holder} is running"
    if task_state is not None:
        return (f"vmflow: error: cannot {verb} server 'vm1': it is "
                f"{vm_state} with task_state {task_state}; {verb} needs ")
    if vm_state not in allowed:
        return (f"vmflow: error: cannot {verb} server 'vm1': it is "
                f"{vm_state}; {verb} needs ")
    if state == "error-no-host":
        return (f"vmflow: error: cannot {verb} server 'vm1': it is "
                f"{vm_state} on no host; {verb} needs a server placed on a "
                "host")
    return None


def test_the_table_agrees_with_server_actions():
    """The door's table (server_actions) says what Nova's rules say."""
    actions = {"reboot": server_actions.REBOOT,
               "reboot --hard": server_actions.HARD_REBOOT,
               **server_actions.POWER_ACTIONS}
    assert set(actions) == set(OPERATIONS)
    for operation, (allowed, after) in OPERATIONS.items():
        action = actions[operation]
        assert (set(action.allowed), action.vm_state) == (allowed, after), (
            operation)
        assert action.task_state is not None


# --- the CLI in this process ------------------------------------------------

class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = (returncode, stdout,
                                                     stderr)


class InProcessCli:
    """``vmflow --config-file F ARGS`` run by cliff in this process."""

    def __init__(self, config_file):
        self.config_file = config_file

    def __call__(self, *args, check=True):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            app = vmflow_cli.VmflowApp()
            app.stdout, app.stderr = out, err
            try:
                status = app.run(["--config-file", self.config_file,
                                  *args])
            except SystemExit as exit_:
                status = exit_.code
        result = Result(status, out.getvalue(), err.getvalue())
        if check and status != 0:
            raise AssertionError(f"vmflow {' '.join(args)} exited {status}: "
                                 f"{result.stderr}")
        return result

    def json(self, *args):
        return json.loads(self(*args, "-f", "json").stdout)


@pytest.fixture
def cloud_cli(tmp_path, image_file):  # noqa: F811
    config_file = write_config(tmp_path / "vmflow.conf", {
        "DEFAULT": {"state_path": tmp_path / "state"},
        "libvirt": {"virt_type": "qemu", "wait_running_seconds": 1,
                    "poll_interval_seconds": 0.05,
                    "wait_soft_reboot_seconds": 1,
                    "shutdown_timeout_seconds": 1}})
    cli = InProcessCli(config_file)
    cli.tmp_path = tmp_path
    seed_cloud(cli, tmp_path, image_file, instances=2)
    yield cli
    api.dispose_engines()
    vmflow_conf.CONF.reset()
    # test:///default lives while a connection is open: the next test
    # gets a fresh hypervisor.
    libvirt_connection.close_all()


def database(cli):
    return api.create_engine(
        f"sqlite:///{cli.tmp_path}/state/vmflow.sqlite")


def update_instance(cli, **values):
    engine = database(cli)
    try:
        with engine.begin() as connection:
            connection.execute(sqlalchemy.text(
                "UPDATE instances SET "
                + ", ".join(f"{key} = :{key}" for key in values)
                + " WHERE name = 'vm1'"), values)
    finally:
        engine.dispose()


def every_row(cli):
    """Every row of every table, by table name."""
    engine = database(cli)
    try:
        with engine.connect() as connection:
            tables = sqlalchemy.inspect(connection).get_table_names()
            return {table: sorted(
                (tuple(map(repr, row)) for row in connection.execute(
                    sqlalchemy.text(f'SELECT * FROM "{table}"'))))
                for table in tables}
    finally:
        engine.dispose()


def bring_to(cli, state):
    """vm1 in ``state`` as a user gets it there; return its uuid."""
    create = ("server", "create", "vm1", "--flavor", "tiny", "--image",
              "img")
    if state == "building":  # posted, no runner: waits for one
        return json.loads(cli(*create, "-f", "json").stdout)[
            "instance_uuid"]
    if state == "error-no-host":  # a build that failed before a host
        cli("quota", "set", "demo", "--instances", "0")
        failed = cli(*create, "--wait", check=False)
        assert failed.returncode == 1, failed.stderr
        cli("quota", "set", "demo", "--instances", "2")
        shown = cli.json("server", "show", "vm1")
        assert (shown["vm_state"], shown["host"]) == ("error", None)
        return shown["uuid"]
    uuid = cli.json(*create, "--wait")["uuid"]
    if state in ("stopped", "paused", "suspended"):
        verb = {"stopped": "stop", "paused": "pause",
                "suspended": "suspend"}[state]
        cli("server", verb, "vm1", "--wait")
    elif state == "error":   # a failed operation left it in error
        update_instance(cli, vm_state="error")
    elif state == "busy":  # a reboot posted, waiting for a runner
        cli("server", "reboot", "vm1")
    elif state == "deleted":
        cli("server", "delete", "vm1", "--wait")
    shown = cli.json("server", "show", uuid) if state != "deleted" else None
    if shown is not None:
        assert (shown["vm_state"], shown["task_state"]) == STATES[state]
    return uuid


PAIRS = [(state, operation) for state in STATES for operation in OPERATIONS]
REFUSED = [pytest.param(state, operation, id=f"{state}-{operation}")
           for state, operation in PAIRS
           if expected_refusal(state, operation) is not None]
ALLOWED = [pytest.param(state, operation, id=f"{state}-{operation}")
           for state, operation in PAIRS
           if expected_refusal(state, operation) is None]


def assert_refused(cli, uuid, state, operation, door_only=False):
    before = every_row(cli)
    result = cli("server", *operation.split(), "vm1", check=False)
    expected = expected_refusal(state, operation, door_only).format(
        uuid=uuid)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(expected), result.stderr
    assert every_row(cli) == before


@pytest.mark.parametrize("state", list(STATES))
def test_refused_pairs_change_nothing(cloud_cli, state, monkeypatch):
    """Every pair refused in ``state``: through the whole command, then
    with the early check skipped (the door alone refuses)."""
    cli = cloud_cli
    uuid = bring_to(cli, state)
    refused = [op for op in OPERATIONS
               if expected_refusal(state, op) is not None]
    assert refused  # every state refuses something
    for operation in refused:
        assert_refused(cli, uuid, state, operation)

    real_check = compute._check_action
    calls = []

    def door_only(*args):
        calls.append(args)
        if len(calls) > 1:   # the first call is the early one
            real_check(*args)

    monkeypatch.setattr(compute, "_check_action", door_only)
    for operation in refused:
        if state == "deleted":
            continue   # never found: nothing to check at the door
        calls.clear()
        assert_refused(cli, uuid, state, operation, door_only=True)
        # The door was reached, or the lock refused before it.
        assert len(calls) == (1 if state in LOCK_HELD_BY else 2), operation


def steps_that_run(operation):
    """The flow's tasks an operation runs when nothing fails, in order: a
    soft reboot the soft path, a hard reboot the hard path."""
    if action_name(operation) == "reboot":
        flow = reboot.get_reboot_flow()
        skipped = (constants.SOFT_REBOOT_FLOW if "--hard" in operation
                   else constants.HARD_REBOOT_FLOW)
        return [task.name for task in iter_tasks(flow)
                if task.name not in subflow_task_names(flow, skipped)]
    return [task.name for task in iter_tasks(power.FACTORIES[operation]())]


def subflow_task_names(flow, name):
    for node, _meta in flow.iter_nodes():
        if node.name == name:
            return {task.name for task in iter_tasks(node)}
        if hasattr(node, "iter_nodes"):
            found = subflow_task_names(node, name)
            if found:
                return found
    return set()


@pytest.mark.parametrize("state,operation", ALLOWED)
def test_allowed_pairs_succeed(cloud_cli, state, operation):
    cli = cloud_cli
    uuid = bring_to(cli, state)
    result = cli("server", *operation.split(), "vm1", "--wait", "-f",
                 "json")
    server = json.loads(result.stdout)
    after = OPERATIONS[operation][1]
    assert (server["vm_state"], server["task_state"]) == (after, None)
    assert cli.json("server", "show", uuid)["vm_state"] == after
    verb = action_name(operation)
    assert started_steps(result.stderr) == steps_that_run(operation), (
        result.stderr)
    events = [event for event in cli.json("server", "event-list", "vm1")
              if event["action"] == verb]
    assert [(event["event"], event["result"]) for event in events] == [
        (step, "success") for step in steps_that_run(operation)]
    assert every_row(cli)["instance_locks"] == []
