import pytest

from vmflow import exception
from vmflow.persistence import models
from vmflow.scheduler import manager


def add_host(session, name, vcpus=8, memory_mb=8192, disk_gb=100,
             enabled=True, reason=None):
    host = models.Host(name=name, uri="test:///default", vcpus=vcpus,
                       memory_mb=memory_mb, disk_gb=disk_gb,
                       instances_path="/srv/" + name, enabled=enabled,
                       disabled_reason=reason)
    session.add(host)
    session.flush()
    return host


def claim(session, host, vcpus=1, memory_mb=512, disk_gb=1):
    session.add(models.Allocation(consumer_uuid=models.new_uuid(),
                                  host_id=host.id, vcpus=vcpus,
                                  memory_mb=memory_mb, disk_gb=disk_gb))
    session.flush()


def request(vcpus=1, memory_mb=512, disk_gb=1, **extra):
    return dict(vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb, **extra)


def test_most_free_ram_wins_and_alternates_follow(session, conf):
    conf.set_override("max_alternates", 1, "scheduler")
    add_host(session, "small", memory_mb=2048)
    add_host(session, "big", memory_mb=16384)
    add_host(session, "medium", memory_mb=4096)
    assert manager.select_destinations(session, request()) == [
        "big", "medium"]


def test_current_allocations_count_against_capacity(session):
    busy = add_host(session, "busy", memory_mb=4096)
    add_host(session, "idle", memory_mb=2048)
    claim(session, busy, memory_mb=3072)
    assert manager.select_destinations(session, request())[0] == "idle"


def test_no_valid_host_names_why_each_host_failed(session):
    add_host(session, "off", enabled=False, reason="maintenance")
    add_host(session, "tiny", memory_mb=256)
    full = add_host(session, "full", vcpus=1)
    claim(session, full, vcpus=4, memory_mb=0, disk_gb=0)
    add_host(session, "nodisk", disk_gb=1)
    with pytest.raises(exception.NoValidHost) as caught:
        manager.select_destinations(session, request(disk_gb=2))
    reasons = caught.value.reasons
    assert reasons["off"] == "disabled (maintenance)"
    assert reasons["tiny"] == ("needs 512 memory_mb, 256 free at ratio 1")
    assert reasons["full"] == "needs 1 vcpus, 0 free at ratio 4"
    assert reasons["nodisk"] == "needs 2 disk_gb, 1 free at ratio 1"
    assert "off: disabled (maintenance)" in str(caught.value)


def test_allocation_ratios_allow_overcommit(session, conf):
    host = add_host(session, "h", vcpus=2)
    claim(session, host, vcpus=7, memory_mb=0, disk_gb=0)
    assert manager.select_destinations(session, request()) == ["h"]
    conf.set_override("cpu_allocation_ratio", 1.0, "scheduler")
    with pytest.raises(exception.NoValidHost):
        manager.select_destinations(session, request())


def test_forced_and_ignored_hosts(session):
    add_host(session, "a", memory_mb=16384)
    add_host(session, "b")
    assert manager.select_destinations(session, request(host="b")) == ["b"]
    assert manager.select_destinations(
        session, request(ignore_hosts=["a"])) == ["b"]
    with pytest.raises(exception.NotFound, match="'nope'"):
        manager.select_destinations(session, request(host="nope"))
    with pytest.raises(exception.NoValidHost, match="a: ignored"):
        manager.select_destinations(session, request(ignore_hosts=["a", "b"]))


def test_empty_inventory_says_so(session):
    with pytest.raises(exception.NoValidHost, match="no hosts are registered"):
        manager.select_destinations(session, request())


def test_bad_request_is_refused(session):
    with pytest.raises(exception.InvalidInput, match="vcpus -1"):
        manager.select_destinations(session, request(vcpus=-1))
