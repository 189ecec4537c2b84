import time

import pytest
from taskflow import retry
from taskflow.types import failure as ft

from vmflow import exception, power_states
from vmflow.tasks import base
from vmflow.tasks.disks import CreateDisks
from vmflow.tasks.domain import (DefineDomain, DestroyDomain,
                                 GenerateDomainXml, RetryUntilRunning,
                                 StartDomain, UndefineDomain,
                                 WaitForDomainRunning)

HOST = {"host_name": "host1"}


@pytest.fixture
def xml(uuid):
    disks = CreateDisks().execute(instance_uuid=uuid, **HOST)
    return GenerateDomainXml().execute(instance_uuid=uuid, disk_paths=disks,
                                       **HOST)


@pytest.fixture
def defined(uuid, xml):
    DefineDomain().execute(instance_uuid=uuid, domain_xml=xml, **HOST)
    return uuid


def driver():
    return base.get_driver("host1")


def test_generate_domain_xml_twice_gives_the_same_xml(uuid, xml):
    disks = CreateDisks().execute(instance_uuid=uuid, **HOST)
    again = GenerateDomainXml().execute(instance_uuid=uuid, disk_paths=disks,
                                        **HOST)
    assert again == xml
    assert f"<uuid>{uuid}</uuid>" in xml
    GenerateDomainXml().revert(xml, instance_uuid=uuid, **HOST)


def test_define_domain_twice_and_revert_twice(uuid, xml):
    task = DefineDomain()
    assert task.execute(instance_uuid=uuid, domain_xml=xml, **HOST) == uuid
    assert task.execute(instance_uuid=uuid, domain_xml=xml, **HOST) == uuid
    assert driver().get_power_state(uuid) == power_states.SHUTDOWN
    task.revert(uuid, instance_uuid=uuid, **HOST)
    task.revert(uuid, instance_uuid=uuid, **HOST)
    assert not driver().domain_exists(uuid)


def test_define_domain_revert_removes_a_running_domain(uuid, defined):
    StartDomain().execute(instance_uuid=uuid, **HOST)
    DefineDomain().revert(uuid, instance_uuid=uuid, **HOST)
    assert not driver().domain_exists(uuid)


def test_start_domain_twice_and_revert_twice(uuid, defined):
    task = StartDomain()
    assert task.execute(instance_uuid=uuid, **HOST) == "started"
    assert task.execute(instance_uuid=uuid, **HOST) == "already-running"
    task.revert("started", instance_uuid=uuid, **HOST)
    task.revert("started", instance_uuid=uuid, **HOST)
    assert driver().get_power_state(uuid) == power_states.SHUTDOWN


def test_start_domain_revert_after_its_own_failure_does_nothing(uuid,
                                                                defined):
    StartDomain().execute(instance_uuid=uuid, **HOST)
    failure = ft.Failure.from_exception(RuntimeError("boom"))
    StartDomain().revert(failure, instance_uuid=uuid, **HOST)
    assert driver().get_power_state(uuid) == power_states.RUNNING


def test_wait_for_domain_running(uuid, defined):
    task = WaitForDomainRunning()
    later = time.time() + 60
    with pytest.raises(exception.DomainNotRunningYet):
        task.execute(instance_uuid=uuid, wait_deadline=later, **HOST)
    with pytest.raises(exception.DomainStartTimeout) as caught:
        task.execute(instance_uuid=uuid, wait_deadline=time.time() - 1,
                     **HOST)
    assert isinstance(caught.value, exception.RescheduleableError)
    assert "is shutdown, not running, after 1 s" in str(caught.value)
    StartDomain().execute(instance_uuid=uuid, **HOST)
    for _ in range(2):
        assert task.execute(instance_uuid=uuid, wait_deadline=later,
                            **HOST) == power_states.RUNNING
        task.revert("running", instance_uuid=uuid, **HOST)


def history_of(*errors):
    return retry.History([(time.time(), {"WaitForDomainRunning":
                                         ft.Failure.from_exception(error)})
                          for error in errors])


def test_retry_until_running_retries_only_on_not_yet(conf):
    controller = RetryUntilRunning()
    not_yet = exception.DomainNotRunningYet(ident="u", host="h",
                                            state=power_states.SHUTDOWN)
    timeout = exception.DomainStartTimeout(ident="u", host="h",
                                           state=power_states.SHUTDOWN,
                                           seconds=1)
    assert controller.on_failure(history_of(not_yet)) == retry.RETRY
    assert controller.on_failure(history_of(not_yet, timeout)) == (
        retry.REVERT)
    assert controller.on_failure(history_of(RuntimeError("x"))) == (
        retry.REVERT)


def test_retry_until_running_keeps_its_first_deadline(conf):
    controller = RetryUntilRunning()
    started = time.time()
    deadline = controller.execute(retry.History([]))
    assert deadline == pytest.approx(
        started + conf.libvirt.wait_running_seconds, abs=1)
    history = retry.History([(deadline, {})])
    assert controller.execute(history) == deadline


def test_destroy_and_undefine_domain_twice_and_revert_twice(uuid, defined):
    StartDomain().execute(instance_uuid=uuid, **HOST)
    hosts = {"instance_hosts": ["host1"]}
    assert DestroyDomain().execute(instance_uuid=uuid, **hosts) == {
        "host1": "destroyed"}
    assert DestroyDomain().execute(instance_uuid=uuid, **hosts) == {
        "host1": "already-off"}
    assert UndefineDomain().execute(instance_uuid=uuid, **hosts) == {
        "host1": "undefined"}
    assert UndefineDomain().execute(instance_uuid=uuid, **hosts) == {
        "host1": "already-undefined"}
    for task in (DestroyDomain(), UndefineDomain()):
        task.revert(None, instance_uuid=uuid, **hosts)
        task.revert(None, instance_uuid=uuid, **hosts)
    assert not driver().domain_exists(uuid)
    assert DestroyDomain().execute(instance_uuid=uuid, **hosts) == {
        "host1": "not-found"}
