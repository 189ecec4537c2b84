"""TaskFlow's Redis job board as vmflow configures it (Redis on
127.0.0.1:6379), in a private namespace whose keys are deleted after."""
import datetime
import time
import uuid

import pytest
import redis
from oslo_utils import timeutils
from taskflow import exceptions as tf_exc
from taskflow import states
from taskflow.types import entity

from tests.functional.engine import helpers
from vmflow import exception
from vmflow.engine import jobboard, jobboard_redis, operations


@pytest.fixture
def redis_board(conf):
    namespace = "vmflow-test-" + uuid.uuid4().hex[:10]
    conf.set_override("backend", "redis", group="jobboard")
    conf.set_override("hosts", ["127.0.0.1:6379"], group="jobboard")
    conf.set_override("namespace", namespace, group="jobboard")
    conf.set_override("claim_expiry_seconds", 5, group="jobboard")
    board = jobboard.get_jobboard(conf)
    yield board
    board.close()
    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(client.scan_iter(match=namespace.encode() + b"*"))
    if keys:
        client.delete(*keys)
    assert not list(client.scan_iter(match=namespace.encode() + b"*"))
    client.close()


def test_get_jobboard_gives_the_redis_board(redis_board):
    assert isinstance(redis_board, jobboard_redis.RedisJobBoard)
    assert redis_board.connected
    assert redis_board.claim_expiry == 5


def test_post_claim_with_expiry_extend_consume(redis_board):
    job = redis_board.post("job", details={"store": {"n": 1}},
                           uuid=str(uuid.uuid4()))
    assert redis_board.find_job(job.uuid).details == {"store": {"n": 1}}
    redis_board.claim(job, "runner-a")
    assert redis_board.find_owner(job) == "runner-a"
    assert 0 < job.expires_in() <= 5
    with pytest.raises(tf_exc.UnclaimableJob):
        redis_board.claim(job, "runner-b")
    assert not redis_board.extend_claim(job, "runner-b", 60)
    assert job.expires_in() <= 5
    assert redis_board.extend_claim(job, "runner-a", 60)
    assert job.expires_in() > 5
    redis_board.consume(job, "runner-a")
    assert job.state == states.COMPLETE
    assert redis_board.find_job(job.uuid) is None
    assert redis_board.job_count == 0


def test_claim_expires_at_comes_from_the_owner_key(redis_board):
    job = redis_board.post("job")
    assert redis_board.claim_expires_at(job) is None
    before = timeutils.utcnow()
    redis_board.claim(job, "runner-a")
    expires_at = redis_board.claim_expires_at(job)
    # Redis counts the time to live in whole milliseconds.
    assert (before + datetime.timedelta(seconds=5, milliseconds=-1)
            <= expires_at <= timeutils.utcnow() + datetime.timedelta(
                seconds=5))
    assert redis_board.extend_claim(job, "runner-a", 60)
    assert redis_board.claim_expires_at(job) > expires_at + \
        datetime.timedelta(seconds=50)
    redis_board.consume(job, "runner-a")
    assert redis_board.claim_expires_at(job) is None


def test_job_list_shows_a_claim_on_the_redis_board(conf, db, redis_board,
                                                   trace_file):
    job_uuid = helpers.post_sample(conf, db, trace_file)
    before = timeutils.utcnow()
    redis_board.claim(redis_board.find_job(job_uuid), "runner-a")
    listed, = operations.list_jobs(conf)
    assert (listed["uuid"], listed["state"], listed["owner"],
            listed["progress"], listed["failing"]) == (
        job_uuid, "CLAIMED", "runner-a", "0/2", None)
    assert before < listed["claim_expires_at"] <= (
        timeutils.utcnow() + datetime.timedelta(seconds=5))


def test_job_list_shows_an_unclaimed_job_on_the_redis_board(
        conf, db, redis_board, trace_file):
    job_uuid = helpers.post_sample(conf, db, trace_file)
    job = redis_board.find_job(job_uuid)
    assert redis_board.find_owner(job) is None
    listed, = operations.list_jobs(conf)
    assert (listed["uuid"], listed["state"], listed["owner"],
            listed["claim_expires_at"]) == (job_uuid, "UNCLAIMED", None, None)
    redis_board.claim(job, "runner-a", expiry=0.5)
    time.sleep(0.7)
    assert redis_board.find_owner(job) is None  # the claim expired


def test_an_expired_claim_is_taken_over(redis_board):
    job = redis_board.post("job")
    redis_board.claim(job, "dead-runner", expiry=0.5)
    time.sleep(0.7)
    assert job.state == states.UNCLAIMED
    redis_board.claim(job, "runner-b")
    assert not redis_board.extend_claim(job, "dead-runner")
    redis_board.abandon(job, "runner-b")
    assert [j.uuid for j in redis_board.iterjobs(only_unclaimed=True)] == [
        job.uuid]


def test_a_posted_uuid_cannot_be_posted_twice(redis_board):
    job_uuid = str(uuid.uuid4())
    redis_board.post("job", uuid=job_uuid)
    with pytest.raises(tf_exc.JobFailure, match="already listed"):
        redis_board.post("again", uuid=job_uuid)


def test_runner_entities_expire(conf, redis_board):
    runner = entity.Entity("conductor", "runner-1@host:1", {})
    redis_board.register_entity(runner)
    assert redis_board.alive_entities() == ["runner-1@host:1"]
    redis_board.unregister_entity(runner)
    assert redis_board.alive_entities() == []


def test_more_than_one_redis_host_is_refused(conf):
    conf.set_override("backend", "redis", group="jobboard")
    conf.set_override("hosts", ["a:1", "b:2"], group="jobboard")
    with pytest.raises(exception.InvalidInput, match="exactly one host"):
        jobboard.get_jobboard(conf)
