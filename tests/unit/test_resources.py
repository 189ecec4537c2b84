"""Quota and claims under concurrency: the check and the write are one
transaction holding a lock, so parallel writers never overshoot."""
import threading

import pytest
import sqlalchemy

from tests.cloud import cloud, image_file  # noqa: F401 (fixtures)
from vmflow import exception
from vmflow.persistence import api, models
from vmflow.resources import claims, locks, quota


def run_concurrently(count, function):
    """Call ``function(i)`` from ``count`` threads at once; return the
    outcomes (result or exception) in order."""
    barrier = threading.Barrier(count)
    outcomes = [None] * count

    def worker(index):
        barrier.wait()
        try:
            outcomes[index] = function(index)
        except Exception as error:  # collected for the assertions
            outcomes[index] = error

    threads = [threading.Thread(target=worker, args=(i,))
               for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def assert_ten_of_twenty(outcomes, error_class):
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(refused) == 10
    assert all(isinstance(o, error_class) for o in refused), refused


def test_concurrent_reservations_never_exceed_the_quota(cloud, conf):
    conf.set_override("instances", 10, group="quota")

    def reserve(index):
        with api.session_scope(cloud.engine) as session:
            return quota.reserve(session, f"consumer-{index}", "demo",
                                 {"instances": 1, "cores": 1, "ram": 64})

    assert_ten_of_twenty(run_concurrently(20, reserve),
                         exception.QuotaExceeded)
    with cloud.session() as session:
        assert session.scalar(sqlalchemy.select(
            sqlalchemy.func.count(models.QuotaHold.id))) == 10


def test_concurrent_claims_never_exceed_the_host(cloud):
    cloud.add_host("ten", vcpus=10, memory_mb=640, disk_gb=100)
    wanted = {"vcpus": 1, "memory_mb": 64, "disk_gb": 1}

    def claim(index):
        with api.session_scope(cloud.engine) as session:
            return claims.claim(session, f"consumer-{index}", "ten", wanted)

    assert_ten_of_twenty(run_concurrently(20, claim), exception.ClaimFailed)
    with cloud.session() as session:
        assert session.scalar(sqlalchemy.select(
            sqlalchemy.func.sum(models.Allocation.memory_mb))) == 640


@pytest.mark.filterwarnings("ignore:Connection is already established")
def test_begin_write_must_come_first(cloud):
    with pytest.raises(RuntimeError, match="before any other statement"):
        with cloud.session() as session:
            session.execute(sqlalchemy.text("SELECT 1"))
            locks.begin_write(session)


def test_reserve_is_idempotent_and_release_twice(cloud):
    wanted = {"instances": 1, "cores": 2, "ram": 128}
    for _ in range(2):
        with cloud.session() as session:
            hold = quota.reserve(session, "c1", "demo", wanted)
    assert hold == dict(wanted, consumer_uuid="c1", project="demo",
                        state="reserved")
    with cloud.session() as session:
        assert quota.release(session, "c1") == "released"
        assert quota.release(session, "c1") == "absent"
