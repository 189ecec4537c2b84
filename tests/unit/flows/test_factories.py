"""What every flow factory and flow piece requires and provides, so that
new operations can be made from the same pieces (and a change to what a
flow needs from its store is a visible change here)."""
from taskflow.patterns import linear_flow

from vmflow import flows
from vmflow.flows import build, constants as keys, delete, pieces, power
from vmflow.flows import reboot


def optional_inputs(flow):
    """Optional arguments the store may give (not provided in the flow)."""
    return set().union(*(task.optional for task in flows.iter_tasks(flow))
                       ) - set(flow.provides)


def atom_names(flow):
    return [node.name for node, _meta in flow.iter_nodes()]


def test_build_flow():
    flow = build.get_build_flow()
    assert flow.name == keys.BUILD_FLOW
    assert set(flow.requires) == {keys.INSTANCE_UUID}
    assert optional_inputs(flow) == {keys.REQUESTED_HOST}
    assert set(flow.provides) == {
        keys.HOST_CANDIDATES, keys.HOST_NAME, keys.DISK_PATHS,
        keys.DOMAIN_XML, keys.WAIT_DEADLINE, keys.POWER_STATE}


def test_delete_flow():
    flow = delete.get_delete_flow()
    assert flow.name == keys.DELETE_FLOW
    assert set(flow.requires) == {keys.INSTANCE_UUID}
    assert optional_inputs(flow) == set()
    assert set(flow.provides) == {keys.INSTANCE_HOSTS}


def test_reboot_flow():
    flow = reboot.get_reboot_flow()
    assert flow.name == "reboot"
    assert set(flow.requires) == {keys.INSTANCE_UUID, keys.HOST_NAME,
                                  keys.REBOOT_TYPE}
    assert optional_inputs(flow) == set()
    assert set(flow.provides) == {
        keys.REBOOT_METHOD, keys.ACPI_SHUTDOWN, keys.SHUTDOWN_DEADLINE,
        keys.GUEST_WENT_DOWN, keys.WAIT_DEADLINE, keys.POWER_STATE,
        keys.DISK_PATHS, keys.DOMAIN_XML}


def test_power_flows():
    for name, factory in power.FACTORIES.items():
        flow = factory()
        assert flow.name == name
        assert set(flow.requires) == {keys.INSTANCE_UUID, keys.HOST_NAME}
        assert optional_inputs(flow) == set()
    assert set(power.get_stop_flow().provides) == {
        keys.ACPI_SHUTDOWN, keys.SHUTDOWN_DEADLINE, keys.CLEAN_SHUTDOWN}
    assert set(power.get_pause_flow().provides) == set()


def test_wait_until_shut_off_piece():
    wait = pieces.wait_until_shut_off(
        reboot.power.WaitForCleanShutdown(), "shutdown_timeout_seconds")
    assert wait.name == keys.WAIT_SHUTDOWN_FLOW
    assert wait.retry.name == "RetryUntilShutOff"
    assert set(wait.provides) == {keys.SHUTDOWN_DEADLINE,
                                  keys.CLEAN_SHUTDOWN}


def test_wait_until_running_piece():
    wait = pieces.wait_until_running()
    assert wait.name == keys.WAIT_RUNNING_FLOW
    assert wait.retry.name == "RetryUntilRunning"
    assert atom_names(wait) == ["WaitForDomainRunning"]
    assert set(wait.requires) == {keys.INSTANCE_UUID, keys.HOST_NAME}
    assert set(wait.provides) == {keys.WAIT_DEADLINE, keys.POWER_STATE}


def test_try_on_each_host_piece():
    wait = pieces.wait_until_running()
    on_host = pieces.try_on_each_host(wait)
    assert on_host.name == keys.BUILD_ON_HOST_FLOW
    assert on_host.retry.name == "RetryOnNextHost"
    assert set(on_host.requires) == {keys.INSTANCE_UUID,
                                     keys.HOST_CANDIDATES}
    assert set(on_host.provides) == {keys.HOST_NAME, keys.WAIT_DEADLINE,
                                     keys.POWER_STATE}


def test_two_pieces_of_a_kind_fit_in_one_flow():
    flow = linear_flow.Flow("twice").add(
        pieces.wait_until_running(), pieces.wait_until_running("again"))
    names = [atom.name for atom in flows.iter_atoms(flow)]
    assert names == ["RetryUntilRunning", "WaitForDomainRunning",
                     "RetryUntilRunning-again", "WaitForDomainRunning-again"]
    assert len(set(names)) == len(names)
