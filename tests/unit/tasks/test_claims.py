import pytest
import sqlalchemy

from vmflow import exception
from vmflow.inventory import hosts
from vmflow.persistence import models
from vmflow.tasks.claims import ClaimResources, DropClaims


def allocations(cloud, uuid):
    with cloud.session() as session:
        return session.execute(
            sqlalchemy.select(models.Host.name, models.Allocation.vcpus,
                              models.Allocation.memory_mb,
                              models.Allocation.disk_gb)
            .join(models.Host, models.Host.id == models.Allocation.host_id)
            .where(models.Allocation.consumer_uuid == uuid)
            .order_by(models.Host.name)).all()


def test_claim_resources_twice_claims_once_and_revert_twice(cloud, uuid):
    task = ClaimResources()
    first = task.execute(instance_uuid=uuid, host_name="host1")
    assert task.execute(instance_uuid=uuid, host_name="host1") == first
    assert first == {"consumer_uuid": uuid, "host": "host1", "vcpus": 1,
                     "memory_mb": 64, "disk_gb": 1}
    assert allocations(cloud, uuid) == [("host1", 1, 64, 1)]
    task.revert(first, instance_uuid=uuid, host_name="host1")
    task.revert(first, instance_uuid=uuid, host_name="host1")
    assert allocations(cloud, uuid) == []


def test_revert_drops_only_the_claim_on_its_host(cloud, uuid):
    cloud.add_host("host2", uri=None)
    task = ClaimResources()
    claimed = task.execute(instance_uuid=uuid, host_name="host1")
    task.execute(instance_uuid=uuid, host_name="host2")
    task.revert(claimed, instance_uuid=uuid, host_name="host1")
    assert allocations(cloud, uuid) == [("host2", 1, 64, 1)]


def test_a_full_host_fails_the_claim_naming_the_host(cloud, conf, uuid):
    cloud.add_host("small", vcpus=1, memory_mb=100)
    ClaimResources().execute(instance_uuid=uuid, host_name="small")
    other = cloud.create_instance("vm2")["uuid"]
    with pytest.raises(exception.ClaimFailed) as caught:
        ClaimResources().execute(instance_uuid=other, host_name="small")
    assert isinstance(caught.value, exception.RescheduleableError)
    assert str(caught.value) == (
        "cannot claim resources on host small: needs 64 memory_mb, 36 free "
        "at ratio 1")
    assert allocations(cloud, other) == []


def test_a_full_last_candidate_means_no_valid_host(cloud, conf, uuid):
    cloud.add_host("small", vcpus=1, memory_mb=100)
    ClaimResources().execute(instance_uuid=uuid, host_name="small")
    other = cloud.create_instance("vm2")["uuid"]
    # Not the last candidate: a host-level failure, the next host is tried.
    with pytest.raises(exception.ClaimFailed):
        ClaimResources().execute(instance_uuid=other, host_name="small",
                                 host_candidates=["small", "host1"])
    with pytest.raises(exception.NoValidHost) as caught:
        ClaimResources().execute(instance_uuid=other, host_name="small",
                                 host_candidates=["host1", "small"])
    assert not isinstance(caught.value, exception.RescheduleableError)
    assert "host1: already tried" in str(caught.value)
    assert "small: needs 64 memory_mb, 36 free" in str(caught.value)
    assert allocations(cloud, other) == []


def test_a_claim_uses_the_scheduler_allocation_ratios(cloud, conf, uuid):
    cloud.add_host("small", vcpus=1, memory_mb=64)
    conf.set_override("ram_allocation_ratio", 2.0, group="scheduler")
    ClaimResources().execute(instance_uuid=uuid, host_name="small")
    other = cloud.create_instance("vm2")["uuid"]
    ClaimResources().execute(instance_uuid=other, host_name="small")
    assert allocations(cloud, other) == [("small", 1, 64, 1)]


def test_a_claim_on_a_disabled_or_unknown_host_fails(cloud, uuid):
    with pytest.raises(exception.ClaimFailed, match="no such host"):
        ClaimResources().execute(instance_uuid=uuid, host_name="nowhere")
    with cloud.session() as session:
        hosts.set_host_enabled(session, "host1", False, "maintenance")
    with pytest.raises(exception.ClaimFailed, match="disabled"):
        ClaimResources().execute(instance_uuid=uuid, host_name="host1")


def test_drop_claims_twice_and_revert_twice(cloud, uuid):
    cloud.add_host("host2", uri=None)
    for host in ("host1", "host2"):
        ClaimResources().execute(instance_uuid=uuid, host_name=host)
    task = DropClaims()
    assert task.execute(instance_uuid=uuid) == {"dropped": 2}
    assert task.execute(instance_uuid=uuid) == {"dropped": 0}
    task.revert({"dropped": 0}, instance_uuid=uuid)
    task.revert({"dropped": 0}, instance_uuid=uuid)
    assert allocations(cloud, uuid) == []
