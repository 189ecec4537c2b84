"""Read-side server commands: list, show, event-list."""
import datetime
import json

from tests import databases
from vmflow.persistence import api, models

START = datetime.datetime(2026, 1, 2, 10, 0, 0)
# What the event listener writes: TaskFlow's Failure.pformat(traceback=True).
DEFINE_TRACEBACK = (
    "Failure: vmflow.exception.DomainDefineFailed: cannot define the domain"
    "\nsecond line of the message\nTraceback (most recent call last):\n"
    '  File "guest.py", line 1, in define\n'
    "vmflow.exception.DomainDefineFailed: cannot define the domain")


def at(**offset):
    return START + datetime.timedelta(**offset)


def seed(state_dir):
    engine = api.create_engine(f"sqlite:///{state_dir}/vmflow.sqlite")
    with api.session_scope(engine) as session:
        common = dict(databases.add_flavor_and_image(session),
                      project="demo", vcpus=1, memory_mb=128, disk_gb=1)
        session.add_all([
            models.Instance(uuid="u-active", name="web", host="h1",
                            vm_state="active", power_state="running",
                            **common),
            models.Instance(uuid="u-error", name="db", vm_state="error",
                            **common),
            models.Instance(uuid="u-gone", name="old", vm_state="deleted",
                            **common)])
        session.flush()
        create, delete, reboot = (
            models.InstanceAction(request_id=f"req-{name}", action=name,
                                  instance_uuid="u-error", project="demo",
                                  start_time=at(minutes=minutes))
            for minutes, name in enumerate(("create", "delete", "reboot")))
        session.add_all([create, delete, reboot])
        session.flush()
        session.add_all([
            models.InstanceActionEvent(
                action_id=create.id, event="ReserveQuota", result="success",
                start_time=at(), finish_time=at(seconds=1.234567)),
            models.InstanceActionEvent(
                action_id=create.id, event="DefineDomain", result="failure",
                start_time=at(seconds=2), finish_time=at(seconds=4),
                traceback=DEFINE_TRACEBACK),
            models.InstanceActionEvent(
                action_id=reboot.id, event="RebootDomain",
                start_time=at(minutes=2)),
            models.InstanceFault(instance_uuid="u-error", code=500,
                                 message="DefineDomain failed: boom"),
            models.InstanceLock(instance_uuid="u-active", action="reboot",
                                job_uuid="j-1", request_id="req-2")])
    engine.dispose()


def test_server_list_show_and_events(cli, tmp_path):
    cli("db", "sync")
    seed(tmp_path / "state")
    listed = json.loads(cli("server", "list", "-f", "json").stdout)
    assert [(s["name"], s["vm_state"], s["flavor"]) for s in listed] == [
        ("web", "active", "tiny"), ("db", "error", "tiny")]
    with_deleted = cli("server", "list", "--deleted", "-f", "value").stdout
    assert "old" in with_deleted

    active = json.loads(cli("server", "show", "web", "-f", "json").stdout)
    assert active["running_action"] == "reboot (job j-1)"
    assert active["fault"] is None
    failed = json.loads(cli("server", "show", "u-error", "-f",
                            "json").stdout)
    assert failed["fault"] == "DefineDomain failed: boom"

    events = json.loads(cli("server", "event-list", "db", "-f",
                            "json").stdout)
    assert [(e["action"], e["event"], e["result"], e["duration"],
             e["error"]) for e in events] == [
        ("create", "ReserveQuota", "success", 1.23, None),
        # The error: the exception's class and its message's first line.
        ("create", "DefineDomain", "failure", 2.0,
         "DomainDefineFailed: cannot define the domain"),
        # No step ran yet.
        ("delete", None, None, None, None),
        # Still running: no duration yet.
        ("reboot", "RebootDomain", None, None, None)]
    assert "traceback" not in events[0]
    long = json.loads(cli("server", "event-list", "db", "--long", "-f",
                          "json").stdout)
    assert long[1]["traceback"] == DEFINE_TRACEBACK

    missing = cli("server", "show", "old", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "vmflow: error: server 'old' not found"
