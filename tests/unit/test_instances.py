import pytest

from tests.cloud import cloud, image_file  # noqa: F401 (fixtures)
from vmflow import exception, instances


def test_create_instance_record(cloud):
    record = cloud.create_instance("web", project="demo")
    assert {key: record[key] for key in (
        "name", "project", "flavor", "image", "vcpus", "memory_mb",
        "disk_gb", "host", "vm_state", "task_state")} == {
        "name": "web", "project": "demo", "flavor": "tiny", "image": "tiny",
        "vcpus": 1, "memory_mb": 64, "disk_gb": 1, "host": None,
        "vm_state": "building", "task_state": "scheduling"}
    assert cloud.instance(record["uuid"])["name"] == "web"


@pytest.mark.parametrize("kwargs, error, message", [
    ({"name": "bad/name"}, exception.InvalidName, "must not contain"),
    ({"project": ""}, exception.InvalidName, "project name is empty"),
    ({"flavor": "nope"}, exception.NotFound, "flavor 'nope' not found"),
    ({"image": "nope"}, exception.NotFound, "image 'nope' not found"),
])
def test_create_instance_record_validates(cloud, kwargs, error, message):
    with pytest.raises(error, match=message):
        cloud.create_instance(**kwargs)


def test_a_live_name_is_taken_in_its_project(cloud):
    cloud.create_instance("web")
    with pytest.raises(exception.AlreadyExists, match="server 'web'"):
        cloud.create_instance("web")
    cloud.create_instance("web", project="other")


def test_update_instance_reports_a_lost_race(cloud):
    uuid = cloud.create_instance()["uuid"]
    with cloud.session() as session:
        with pytest.raises(exception.UnexpectedTaskState):
            instances.update_instance(session, uuid, (None,),
                                      vm_state="active")
        updated = instances.update_instance(session, uuid, instances.ANY,
                                            task_state=None)
    assert updated["task_state"] is None
