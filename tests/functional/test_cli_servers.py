"""Read-side server commands: list, show, event-list."""
import json

from tests import databases
from vmflow.persistence import api, models


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
        action = models.InstanceAction(request_id="req-1", action="create",
                                       instance_uuid="u-error",
                                       project="demo")
        session.add(action)
        session.flush()
        session.add_all([
            models.InstanceActionEvent(action_id=action.id,
                                       event="ReserveQuota",
                                       result="success"),
            models.InstanceActionEvent(action_id=action.id,
                                       event="DefineDomain", result="error",
                                       traceback="Traceback: boom"),
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
    assert [(e["action"], e["event"], e["result"]) for e in events] == [
        ("create", "ReserveQuota", "success"),
        ("create", "DefineDomain", "error")]
    assert events[1]["traceback"] == "Traceback: boom"

    missing = cli("server", "show", "old", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "vmflow: error: server 'old' not found"
