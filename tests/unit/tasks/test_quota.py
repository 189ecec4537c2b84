import pytest
import sqlalchemy
from taskflow.types import failure as ft

from vmflow import exception
from vmflow.inventory import quotas
from vmflow.persistence import models
from vmflow.tasks.quota import CommitQuota, ReleaseQuota, ReserveQuota


def hold_state(cloud, uuid):
    """The project's usage and the state of the instance's hold."""
    with cloud.session() as session:
        usage = quotas.get_usage(session, "demo")
        state = session.scalar(sqlalchemy.select(models.QuotaHold.state).where(
            models.QuotaHold.consumer_uuid == uuid))
    return usage, state


def test_reserve_quota_twice_holds_once_and_revert_twice(cloud, uuid):
    task = ReserveQuota()
    first = task.execute(instance_uuid=uuid)
    second = task.execute(instance_uuid=uuid)
    assert first == second
    assert first["state"] == "reserved"
    usage, state = hold_state(cloud, uuid)
    assert usage == {"instances": 1, "cores": 1, "ram": 64}
    assert state == "reserved"
    task.revert(first, instance_uuid=uuid)
    task.revert(first, instance_uuid=uuid)
    assert hold_state(cloud, uuid) == (
        {"instances": 0, "cores": 0, "ram": 0}, None)


def test_reserve_quota_over_the_limit_names_everything(cloud, conf, uuid):
    conf.set_override("ram", 100, group="quota")
    ReserveQuota().execute(instance_uuid=uuid)
    other = cloud.create_instance("vm2")["uuid"]
    with pytest.raises(exception.QuotaExceeded) as caught:
        ReserveQuota().execute(instance_uuid=other)
    assert str(caught.value) == (
        "quota exceeded for ram in project demo: limit 100, in use 64, "
        "requested 64")
    assert not isinstance(caught.value, exception.RescheduleableError)
    assert hold_state(cloud, other)[1] is None


def test_unlimited_quota_is_not_checked(cloud, conf, uuid):
    conf.set_override("instances", -1, group="quota")
    conf.set_override("cores", 0, group="quota")
    with pytest.raises(exception.QuotaExceeded, match="for cores"):
        ReserveQuota().execute(instance_uuid=uuid)
    conf.set_override("cores", -1, group="quota")
    assert ReserveQuota().execute(instance_uuid=uuid)["cores"] == 1


def test_revert_after_a_failed_reserve_does_nothing(cloud, uuid):
    ReserveQuota().execute(instance_uuid=uuid)
    failure = ft.Failure.from_exception(RuntimeError("boom"))
    ReserveQuota().revert(failure, instance_uuid=uuid)
    assert hold_state(cloud, uuid)[1] == "reserved"


def test_commit_quota_twice_and_revert_twice(cloud, uuid):
    ReserveQuota().execute(instance_uuid=uuid)
    task = CommitQuota()
    result = task.execute(instance_uuid=uuid)
    task.execute(instance_uuid=uuid)
    assert hold_state(cloud, uuid)[1] == "committed"
    task.revert(result, instance_uuid=uuid)
    task.revert(result, instance_uuid=uuid)
    assert hold_state(cloud, uuid)[1] == "reserved"


def test_commit_without_a_hold_fails_and_its_revert_is_a_no_op(cloud, uuid):
    with pytest.raises(exception.NotFound):
        CommitQuota().execute(instance_uuid=uuid)
    CommitQuota().revert({"state": "committed"}, instance_uuid=uuid)
    assert hold_state(cloud, uuid)[1] is None


def test_release_quota_twice_and_revert_twice(cloud, uuid):
    ReserveQuota().execute(instance_uuid=uuid)
    task = ReleaseQuota()
    assert task.execute(instance_uuid=uuid) == "released"
    assert task.execute(instance_uuid=uuid) == "absent"
    task.revert("absent", instance_uuid=uuid)
    task.revert("absent", instance_uuid=uuid)
    assert hold_state(cloud, uuid)[1] is None
