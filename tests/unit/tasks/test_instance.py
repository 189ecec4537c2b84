import pytest
import sqlalchemy
from taskflow.types import failure as ft

from vmflow import exception, instances
from vmflow.persistence import models
from vmflow.tasks import base
from vmflow.tasks.claims import ClaimResources
from vmflow.tasks.instance import (FindInstanceHosts, MarkInstanceActive,
                                   MarkInstanceDeleted, MarkInstanceDeleting,
                                   MarkInstanceErrorOnRevert)


def faults(cloud, uuid):
    with cloud.session() as session:
        return list(session.scalars(
            sqlalchemy.select(models.InstanceFault.message)
            .where(models.InstanceFault.instance_uuid == uuid)))


def raised(error):
    """A Failure of ``error`` as the task wrapper leaves it (ordered)."""
    try:
        raise error
    except Exception as caught:
        setattr(caught, base.FAILURE_ORDER, next(base._FAILURE_COUNTER))
        return ft.Failure()


def test_sentinel_reverts_to_error_with_one_fault(cloud, uuid):
    task = MarkInstanceErrorOnRevert((instances.SCHEDULING,))
    assert task.execute(instance_uuid=uuid) is None
    failures = {"DefineDomain": raised(exception.InvalidInput(reason="x"))}
    for _ in range(2):
        task.revert(None, instance_uuid=uuid, flow_failures=failures)
    state = cloud.instance(uuid)
    assert (state["vm_state"], state["task_state"]) == ("error", None)
    assert faults(cloud, uuid) == ["DefineDomain failed: invalid input: x"]


def test_sentinel_names_the_failure_raised_last(cloud, uuid):
    # In-process, TaskFlow keeps a stale failure of a task that failed on
    # one host and succeeded on the next: the order tells them apart.
    stale = raised(RuntimeError("define failed on host1"))
    last = raised(RuntimeError("not running on host2"))
    failures = {"WaitForDomainRunning": last, "DefineDomain": stale}
    MarkInstanceErrorOnRevert((instances.SCHEDULING,)).revert(
        None, instance_uuid=uuid, flow_failures=failures)
    assert faults(cloud, uuid) == [
        "WaitForDomainRunning failed: not running on host2"]


def test_latest_failure_of_reloaded_failures_is_the_last_in_flow_order():
    first = ft.Failure.from_exception(RuntimeError("a"))
    second = ft.Failure.from_exception(RuntimeError("b"))
    name, _failure = base.latest_failure({"A": first, "B": second})
    assert name == "B"
    assert base.latest_failure({}) == (None, None)


def test_sentinel_refuses_an_unexpected_task_state(cloud, uuid):
    MarkInstanceDeleting().execute(instance_uuid=uuid)
    with pytest.raises(exception.UnexpectedTaskState) as caught:
        MarkInstanceErrorOnRevert((instances.SCHEDULING,)).revert(
            None, instance_uuid=uuid, flow_failures={})
    assert "task_state 'deleting', expected 'scheduling'" in str(caught.value)


def test_mark_instance_active_twice_and_revert_twice(cloud, uuid):
    task = MarkInstanceActive()
    args = dict(instance_uuid=uuid, host_name="host1", power_state="running")
    first = task.execute(**args)
    assert task.execute(**args) == first
    assert (first["vm_state"], first["task_state"], first["host"],
            first["power_state"]) == ("active", None, "host1", "running")
    task.revert(first, **args)
    task.revert(first, **args)
    state = cloud.instance(uuid)
    assert (state["vm_state"], state["task_state"], state["host"]) == (
        "building", "scheduling", None)


def test_mark_instance_active_is_a_compare_and_swap(cloud, uuid):
    MarkInstanceDeleting().execute(instance_uuid=uuid)
    with pytest.raises(exception.UnexpectedTaskState):
        MarkInstanceActive().execute(instance_uuid=uuid, host_name="host1",
                                     power_state="running")
    assert cloud.instance(uuid)["vm_state"] == "building"


def test_mark_deleting_and_deleted_twice_and_revert_twice(cloud, uuid):
    for task in (MarkInstanceDeleting(), MarkInstanceDeleted()):
        first = task.execute(instance_uuid=uuid)
        assert task.execute(instance_uuid=uuid) == first
        task.revert(first, instance_uuid=uuid)
        task.revert(first, instance_uuid=uuid)
    state = cloud.instance(uuid)
    assert (state["vm_state"], state["task_state"]) == ("deleted", None)
    assert MarkInstanceDeleting().execute(instance_uuid=uuid)[
        "vm_state"] == "deleted"
    with cloud.session() as session:
        row = session.scalar(sqlalchemy.select(models.Instance).where(
            models.Instance.uuid == uuid))
        assert row.deleted_at is not None


def test_mark_deleted_needs_deleting(cloud, uuid):
    with pytest.raises(exception.UnexpectedTaskState):
        MarkInstanceDeleted().execute(instance_uuid=uuid)


def test_find_instance_hosts_from_host_and_claims(cloud, uuid):
    cloud.add_host("host2", uri=None)
    task = FindInstanceHosts()
    assert task.execute(instance_uuid=uuid) == []
    ClaimResources().execute(instance_uuid=uuid, host_name="host2")
    MarkInstanceActive().execute(instance_uuid=uuid, host_name="host1",
                                 power_state="running")
    assert task.execute(instance_uuid=uuid) == ["host1", "host2"]
    assert task.execute(instance_uuid=uuid) == ["host1", "host2"]
    task.revert(["host1", "host2"], instance_uuid=uuid)
