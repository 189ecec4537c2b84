import pytest
from taskflow import retry
from taskflow.types import failure as ft

from vmflow import exception
from vmflow.inventory import flavors
from vmflow.tasks.scheduling import RetryOnNextHost, SelectHosts


def test_select_hosts_twice(cloud, uuid):
    cloud.add_host("host2", uri=None, memory_mb=8192)
    task = SelectHosts()
    assert task.execute(instance_uuid=uuid) == ["host2", "host1"]
    assert task.execute(instance_uuid=uuid) == ["host2", "host1"]
    assert task.execute(instance_uuid=uuid, requested_host="host1") == [
        "host1"]
    task.revert(["host2", "host1"], instance_uuid=uuid)
    task.revert(["host2", "host1"], instance_uuid=uuid)


def test_select_hosts_without_room_is_no_valid_host(cloud):
    with cloud.session() as session:
        flavors.create_flavor(session, "huge", 1, 999999, 1)
    uuid = cloud.create_instance("big", flavor="huge")["uuid"]
    with pytest.raises(exception.NoValidHost, match="host1: needs 999999"):
        SelectHosts().execute(instance_uuid=uuid)


def history_of(*attempts):
    return retry.History([(host, {"DefineDomain":
                                  ft.Failure.from_exception(error)})
                          for host, error in attempts])


def test_retry_on_next_host_decisions():
    controller = RetryOnNextHost()
    hosts = ["host1", "host2"]
    host_level = exception.GuestOperationFailed(operation="define",
                                                ident="u", reason="x")
    fatal = exception.InvalidInput(reason="x")
    assert controller.execute(hosts, retry.History([])) == "host1"
    assert controller.on_failure(
        hosts, history_of(("host1", host_level))) == retry.RETRY
    assert controller.execute(
        hosts, history_of(("host1", host_level))) == "host2"
    assert controller.on_failure(
        hosts, history_of(("host1", fatal))) == retry.REVERT_ALL
    assert controller.on_failure(
        hosts, history_of(("host1", host_level),
                          ("host2", host_level))) == retry.REVERT_ALL
