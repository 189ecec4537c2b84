"""Flow pieces compose: two waits in one flow run, each with its own
retry controller and deadline, on libvirt's test driver."""
from taskflow import states
from taskflow.patterns import linear_flow

from tests.cloud import cloud, image_file  # noqa: F401 (fixtures)
from vmflow.flows import build, pieces


def get_two_waits_flow():
    return linear_flow.Flow("two-waits").add(
        pieces.wait_until_running(), pieces.wait_until_running("again"))


def test_two_waits_in_one_flow_both_run(cloud):  # noqa: F811
    uuid = cloud.create_instance()["uuid"]
    assert cloud.run(build.get_build_flow, uuid).state == states.SUCCESS
    run = cloud.run(get_two_waits_flow, uuid, host_name="host1")
    assert run.state == states.SUCCESS
    assert run.executed() == [
        "RetryUntilRunning", "WaitForDomainRunning",
        "RetryUntilRunning-again", "WaitForDomainRunning-again"]
    storage = run.engine.storage
    assert storage.get("WaitForDomainRunning-again") == "running"
    assert (storage.get("RetryUntilRunning-again")
            >= storage.get("RetryUntilRunning"))
