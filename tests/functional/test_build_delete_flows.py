"""Whole build and delete flows on libvirt's test driver and SQLite, run
by a real TaskFlow engine with TaskFlow's SQL persistence, with faults
injected at every task (the task list comes from the flows themselves)."""
import pytest
import sqlalchemy
from taskflow import states

from tests.cloud import cloud, image_file  # noqa: F401 (fixtures)
from vmflow import exception
from vmflow.drivers.libvirt import driver as libvirt_driver
from vmflow.flows import build, delete, iter_tasks
from vmflow.inventory import flavors, quotas, servers
from vmflow.persistence import models
from vmflow.tasks import base, hooks


BUILD_TASKS = [task.name for task in iter_tasks(build.get_build_flow())]
DELETE_TASKS = [task.name for task in iter_tasks(delete.get_delete_flow())]


def fault(cloud, uuid):
    with cloud.session() as session:
        return servers.latest_fault(session, uuid)


def assert_audit_ok(cloud):
    report = cloud.audit()
    assert report["ok"], report


def leftovers(cloud, uuid, host_name):
    """What the instance still has on the host: claim, domain, disks."""
    driver = base.get_driver(host_name)
    with cloud.session() as session:
        claimed = session.scalar(
            sqlalchemy.select(sqlalchemy.func.count(models.Allocation.id))
            .join(models.Host, models.Host.id == models.Allocation.host_id)
            .where(models.Allocation.consumer_uuid == uuid,
                   models.Host.name == host_name))
    return {"claim": bool(claimed), "domain": driver.domain_exists(uuid),
            "disks": driver.instance_dir_exists(uuid)}


NOTHING_LEFT = {"claim": False, "domain": False, "disks": False}


def assert_nothing_left(cloud, uuid, *host_names):
    for host_name in host_names:
        assert leftovers(cloud, uuid, host_name) == NOTHING_LEFT
    assert_audit_ok(cloud)


def usage(cloud):
    with cloud.session() as session:
        return quotas.get_usage(session, "demo")


def build_on_two_hosts(cloud, monkeypatch, fail_at):
    """Build with a second host (its own hypervisor) and VMFLOW_FAIL_AT."""
    cloud.add_host("host2", uri=None)
    monkeypatch.setenv(hooks.FAIL_AT, fail_at)
    uuid = cloud.create_instance()["uuid"]
    return uuid, cloud.run(build.get_build_flow, uuid)


def delete_and_check(cloud, uuid):
    """Run delete: DELETED, nothing left, no quota, audit passes."""
    run = cloud.run(delete.get_delete_flow, uuid)
    assert run.state == states.SUCCESS, run.error
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"]) == (
        "deleted", None)
    assert leftovers(cloud, uuid, "host1") == NOTHING_LEFT
    assert usage(cloud) == {"instances": 0, "cores": 0, "ram": 0}
    assert_audit_ok(cloud)


def built(cloud, name="vm1"):
    uuid = cloud.create_instance(name)["uuid"]
    run = cloud.run(build.get_build_flow, uuid)
    assert run.state == states.SUCCESS, run.error
    return uuid


def test_the_task_lists_come_from_the_flows():
    assert BUILD_TASKS == [
        "MarkInstanceErrorOnRevert", "ReserveQuota", "SelectHosts",
        "ClaimResources", "CreateDisks", "GenerateDomainXml", "DefineDomain",
        "StartDomain", "WaitForDomainRunning", "CommitQuota",
        "MarkInstanceActive"]
    assert DELETE_TASKS == [
        "MarkInstanceErrorOnRevert", "MarkInstanceDeleting",
        "FindInstanceHosts", "DestroyDomain", "UndefineDomain",
        "RemoveDisks", "DropClaims", "ReleaseQuota", "EndInstanceMigrations",
        "MarkInstanceDeleted"]


def test_build_ends_active_and_delete_gives_everything_back(cloud):
    uuid = built(cloud)
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"], instance["host"],
            instance["power_state"]) == ("active", None, "host1", "running")
    assert leftovers(cloud, uuid, "host1") == {
        "claim": True, "domain": True, "disks": True}
    assert usage(cloud) == {"instances": 1, "cores": 1, "ram": 64}
    assert base.get_driver("host1").get_power_state(uuid) == "running"
    assert_audit_ok(cloud)

    delete_and_check(cloud, uuid)
    delete_and_check(cloud, uuid)  # the second run finds nothing to do


def test_build_on_a_requested_host(cloud):
    cloud.add_host("host2", uri=None, memory_mb=8192)
    uuid = cloud.create_instance()["uuid"]
    run = cloud.run(build.get_build_flow, uuid, requested_host="host1")
    assert run.state == states.SUCCESS, run.error
    assert cloud.instance(uuid)["host"] == "host1"


@pytest.mark.parametrize("task_name", BUILD_TASKS)
def test_a_failure_at_any_build_task_reverts_everything(cloud, monkeypatch,
                                                        task_name):
    monkeypatch.setenv(hooks.FAIL_AT, task_name)
    uuid = cloud.create_instance()["uuid"]
    run = cloud.run(build.get_build_flow, uuid)
    assert run.state == states.REVERTED
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"], instance["host"]) \
        == ("error", None, None)
    assert fault(cloud, uuid) == (
        f"{task_name} failed: injected fault in {task_name} execute")
    assert leftovers(cloud, uuid, "host1") == NOTHING_LEFT
    assert usage(cloud) == {"instances": 0, "cores": 0, "ram": 0}
    assert_audit_ok(cloud)

    monkeypatch.delenv(hooks.FAIL_AT)
    delete_and_check(cloud, uuid)  # an instance whose build failed


@pytest.mark.parametrize("task_name", DELETE_TASKS)
def test_a_failure_at_any_delete_task_can_be_run_again(cloud, monkeypatch,
                                                       task_name):
    uuid = built(cloud)
    monkeypatch.setenv(hooks.FAIL_AT, task_name)
    run = cloud.run(delete.get_delete_flow, uuid)
    assert run.state == states.REVERTED
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["task_state"]) == ("error", None)
    assert fault(cloud, uuid) == (
        f"{task_name} failed: injected fault in {task_name} execute")
    assert_audit_ok(cloud)

    monkeypatch.delenv(hooks.FAIL_AT)
    delete_and_check(cloud, uuid)


def test_a_host_failure_moves_the_build_to_the_next_host(cloud,
                                                         monkeypatch):
    uuid, run = build_on_two_hosts(cloud, monkeypatch, "DefineDomain@host1")
    assert run.state == states.SUCCESS, run.error
    assert run.executed("DefineDomain") == ["DefineDomain"] * 2
    instance = cloud.instance(uuid)
    assert (instance["vm_state"], instance["host"]) == ("active", "host2")
    assert leftovers(cloud, uuid, "host1") == NOTHING_LEFT
    assert leftovers(cloud, uuid, "host2") == {
        "claim": True, "domain": True, "disks": True}
    assert fault(cloud, uuid) is None
    assert_audit_ok(cloud)


def test_when_every_host_fails_the_fault_names_the_last_step(cloud,
                                                            monkeypatch):
    uuid, run = build_on_two_hosts(cloud, monkeypatch,
                                   "DefineDomain@host1,StartDomain@host2")
    assert run.state == states.REVERTED
    assert run.executed("ClaimResources") == ["ClaimResources"] * 2
    assert fault(cloud, uuid) == (
        "StartDomain failed: injected fault in StartDomain execute")
    assert_nothing_left(cloud, uuid, "host1", "host2")


def test_a_domain_that_never_runs_times_out_and_reverts(cloud, monkeypatch):
    monkeypatch.setattr(libvirt_driver.LibvirtDriver, "start",
                        lambda self, instance_uuid, paused=False: "started")
    uuid = cloud.create_instance()["uuid"]
    run = cloud.run(build.get_build_flow, uuid)
    assert run.state == states.REVERTED
    # "Not yet" was polled again (about every 200 ms here), then timed out.
    assert len(run.executed("WaitForDomainRunning")) >= 2
    assert fault(cloud, uuid).startswith(
        f"WaitForDomainRunning failed: domain {uuid} on host host1 is "
        "shutdown, not running, after 1 s")
    assert leftovers(cloud, uuid, "host1") == NOTHING_LEFT
    assert_audit_ok(cloud)


def test_quota_exceeded_fails_at_once(cloud, conf):
    conf.set_override("instances", 0, group="quota")
    cloud.add_host("host2", uri=None)
    uuid = cloud.create_instance()["uuid"]
    run = cloud.run(build.get_build_flow, uuid)
    assert run.state == states.REVERTED
    assert run.executed("SelectHosts") == []
    assert run.executed("ClaimResources") == []
    assert fault(cloud, uuid) == (
        "ReserveQuota failed: quota exceeded for instances in project demo: "
        "limit 0, in use 0, requested 1")
    assert_audit_ok(cloud)


def test_no_valid_host_fails_at_once(cloud, conf):
    conf.set_override("ram", -1, group="quota")
    cloud.add_host("host2", uri=None)
    with cloud.session() as session:
        flavors.create_flavor(session, "huge", 1, 999999, 1)
    uuid = cloud.create_instance(flavor="huge")["uuid"]
    run = cloud.run(build.get_build_flow, uuid)
    assert run.state == states.REVERTED
    assert run.executed("ClaimResources") == []
    assert fault(cloud, uuid).startswith(
        "SelectHosts failed: no valid host was found (host1: needs 999999")
    assert usage(cloud) == {"instances": 0, "cores": 0, "ram": 0}
    assert_audit_ok(cloud)


def test_a_failure_no_host_can_fix_does_not_try_the_next(cloud,
                                                        monkeypatch):
    def define_domain(self, xml):
        raise exception.InvalidInput(reason="bad domain XML")

    monkeypatch.setattr(libvirt_driver.LibvirtDriver, "define_domain",
                        define_domain)
    cloud.add_host("host2", uri=None)
    uuid = cloud.create_instance()["uuid"]
    run = cloud.run(build.get_build_flow, uuid)
    assert run.state == states.REVERTED
    assert run.executed("DefineDomain") == ["DefineDomain"]
    assert fault(cloud, uuid) == (
        "DefineDomain failed: invalid input: bad domain XML")
    assert_nothing_left(cloud, uuid, "host1", "host2")


def test_a_revert_that_cannot_clean_up_is_loud(cloud, monkeypatch):
    monkeypatch.setenv(hooks.FAIL_AT, "StartDomain")
    monkeypatch.setenv(hooks.FAIL_REVERT_AT, "CreateDisks")
    uuid = cloud.create_instance()["uuid"]
    run = cloud.run(build.get_build_flow, uuid)
    # TaskFlow ends the flow FAILURE; the atom whose revert raised is
    # REVERT_FAILURE and the reverts before it in the flow never ran.
    assert run.state == states.FAILURE
    storage = run.engine.storage
    assert storage.get_atom_state("CreateDisks") == states.REVERT_FAILURE
    assert storage.get_atom_state("ClaimResources") == states.SUCCESS
    assert isinstance(run.error, exception.InjectedFault)
    report = cloud.audit()
    assert not report["ok"]
    broken = {name for name, check in report["checks"].items()
              if not check["ok"]}
    # The disks leaked, and so did what the reverts after it would have
    # given back: the claim, the quota hold, the task_state.
    assert broken == {"disks", "claims", "quota", "task_states"}
    assert uuid in report["checks"]["disks"]["problems"][0]

    # Delete cleans up after it, finding the host by its claim.
    monkeypatch.delenv(hooks.FAIL_AT)
    monkeypatch.delenv(hooks.FAIL_REVERT_AT)
    delete_and_check(cloud, uuid)


def test_flow_timings(cloud):
    """Not an assertion on speed: prints where a build's time goes."""
    uuid = cloud.create_instance()["uuid"]
    run = cloud.run(build.get_build_flow, uuid)
    assert run.state == states.SUCCESS
    spent = run.durations()
    print(f"\nbuild {run.seconds * 1000:.0f} ms; per atom (ms): " + ", ".join(
        f"{name} {seconds * 1000:.1f}" for name, seconds in spent.items()))
    run = cloud.run(delete.get_delete_flow, uuid)
    print(f"delete {run.seconds * 1000:.0f} ms; per atom (ms): " + ", ".join(
        f"{name} {seconds * 1000:.1f}"
        for name, seconds in run.durations().items()))
    assert set(BUILD_TASKS) <= set(spent)
