"""run_audit against hand-made inconsistencies."""
import datetime
import os

import sqlalchemy

from tests.cloud import cloud, image_file  # noqa: F401 (fixtures)
from vmflow import instances
from vmflow.engine import actions
from vmflow.flows import build
from vmflow.persistence import models
from vmflow.tasks import base

ORPHAN = "0f6c5a3e-0000-4000-8000-00000000000a"


def problems(cloud):
    report = cloud.audit()
    return {name: check["problems"] for name, check in report["checks"].items()
            if not check["ok"]}


def build_one(cloud, name="vm1"):
    uuid = cloud.create_instance(name)["uuid"]
    cloud.run(build.get_build_flow, uuid)
    assert cloud.instance(uuid)["vm_state"] == "active"
    return uuid


def set_columns(cloud, uuid, **values):
    with cloud.session() as session:
        session.execute(sqlalchemy.update(models.Instance)
                        .where(models.Instance.uuid == uuid).values(**values))


def test_an_empty_cloud_and_a_built_instance_pass(cloud):
    assert cloud.audit()["ok"]
    build_one(cloud)
    assert cloud.audit() == {"ok": True, "checks": {
        name: {"ok": True, "problems": []} for name in (
            "claims", "quota", "domains", "disks", "task_states")}}


def test_leftovers_of_no_live_instance_are_reported(cloud):
    driver = base.get_driver("host1")
    instance = {"uuid": ORPHAN, "name": "ghost"}
    image = {"uuid": ORPHAN, "name": "img", "file": "/nonexistent",
             "disk_format": "qcow2"}
    driver.define_domain(driver.generate_xml(
        instance, image, {"vcpus": 1, "ram_mb": 64, "disk_gb": 1}))
    os.makedirs(driver.images.instance_dir(ORPHAN))
    with cloud.session() as session:
        session.add(models.Allocation(consumer_uuid=ORPHAN, host_id=1,
                                      vcpus=1, memory_mb=64, disk_gb=1))
        session.add(models.QuotaHold(consumer_uuid=ORPHAN, project="demo",
                                     instances=1, cores=1, ram=64,
                                     state="committed"))
    found = problems(cloud)
    assert set(found) == {"claims", "quota", "domains", "disks"}
    assert found["domains"] == [
        f"domain vmflow-{ORPHAN} on host host1 belongs to no live instance "
        "there (no such instance)"]
    assert ORPHAN in found["disks"][0] and ORPHAN in found["claims"][0]


def test_an_active_instance_missing_everything_is_reported(cloud):
    uuid = build_one(cloud)
    driver = base.get_driver("host1")
    driver.destroy(uuid)
    driver.undefine(uuid)
    driver.remove_disks(uuid)
    with cloud.session() as session:
        session.execute(sqlalchemy.delete(models.Allocation))
        session.execute(sqlalchemy.delete(models.QuotaHold))
    found = problems(cloud)
    assert found == {
        "claims": [f"instance {uuid} on host host1 has no claim"],
        "quota": [f"instance {uuid} (project demo) holds no quota"],
        "domains": [f"instance {uuid} has no domain on host host1"],
        "disks": [f"instance {uuid} has no disk directory on host host1"]}


def test_mismatched_claim_and_uncommitted_hold(cloud):
    uuid = build_one(cloud)
    with cloud.session() as session:
        session.execute(sqlalchemy.update(models.Allocation).values(vcpus=2))
        session.execute(sqlalchemy.update(models.QuotaHold)
                        .values(state="reserved"))
    found = problems(cloud)
    assert "the instance holds" in found["claims"][0]
    assert found["quota"] == [
        f"quota hold of {uuid} is reserved, expected committed"]


def test_error_with_a_host_may_hold_things_error_without_may_not(cloud):
    uuid = build_one(cloud)
    set_columns(cloud, uuid, vm_state=instances.ERROR)
    assert cloud.audit()["ok"]
    base.get_driver("host1").remove_disks(uuid)
    assert cloud.audit()["ok"]
    set_columns(cloud, uuid, host=None)
    assert set(problems(cloud)) == {"claims", "quota", "domains"}


def test_task_state_without_a_running_job(cloud):
    uuid = cloud.create_instance()["uuid"]
    assert problems(cloud) == {"task_states": [
        f"instance {uuid} has task_state 'scheduling' but no running job"]}
    with cloud.session() as session:
        session.add(models.InstanceLock(instance_uuid=uuid, action="create",
                                        job_uuid="job-1", request_id="r"))
        action_id = actions.start_instance_action(session, uuid, "create",
                                                  "r")
    # A young lock without a job: a posting under way.
    assert cloud.audit()["ok"]
    with cloud.session() as session:
        session.add(models.Job(uuid="job-1", board="vmflow", name="create",
                               details="{}", state="CLAIMED"))
    assert cloud.audit()["ok"]
    # The job ended (its action finished) but left its lock: stale, even
    # young (posting's rule too: a new operation takes it over).
    with cloud.session() as session:
        session.execute(sqlalchemy.update(models.Job).values(
            state="COMPLETE"))
    actions.finish_instance_action(cloud.engine, action_id, actions.SUCCESS,
                                   None)
    assert set(problems(cloud)) == {"task_states"}


def test_an_old_lock_without_a_job_is_stale(cloud, conf):
    uuid = cloud.create_instance()["uuid"]
    expiry = conf.jobboard.claim_expiry_seconds
    with cloud.session() as session:
        session.add(models.InstanceLock(
            instance_uuid=uuid, action="create", job_uuid="never-posted",
            request_id="r", created_at=models.utcnow()
            - datetime.timedelta(seconds=expiry + 1)))
    assert set(problems(cloud)) == {"task_states"}


def test_an_unreachable_hypervisor_is_a_problem(cloud):
    cloud.add_host("gone", uri="test:///nonexistent/node.xml")
    found = problems(cloud)
    assert set(found) == {"domains"}  # its disks are local files
    assert found["domains"][0].startswith("host gone: cannot list domains")
