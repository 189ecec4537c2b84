"""The embedded SQL job board on SQLite, PostgreSQL and MariaDB."""
import datetime
import socket
import subprocess
import threading
import time

import pytest
from taskflow import exceptions as tf_exc
from taskflow import states
from taskflow.jobs import base
from taskflow.persistence import models as tf_models
from taskflow.types import entity

from tests.functional.engine import helpers, sample_flows
from vmflow.engine import jobboard, jobboard_sql, posting, runner
from vmflow.persistence import api, models

CLAIM_RACE_JOBS = 50
CLAIM_RACE_THREADS = 4


def make_board(conf, engine, namespace=None):
    board = jobboard_sql.SQLJobBoard(
        "test", {"namespace": namespace or conf.jobboard.namespace,
                 "claim_expiry_seconds": 5}, engine=engine)
    board.connect()
    return board


@pytest.fixture
def sql_board(conf, any_db):
    board = make_board(conf, any_db)
    yield board
    board.close()


def test_post_lists_jobs_in_priority_then_posting_order(sql_board):
    book = tf_models.LogBook("book")
    low = sql_board.post("low", details={"n": 1},
                         priority=base.JobPriority.LOW)
    first = sql_board.post("first", book=book, details={"n": 2})
    second = sql_board.post("second")
    high = sql_board.post("high", priority=base.JobPriority.VERY_HIGH)
    assert [job.name for job in sql_board.iterjobs()] == [
        "high", "first", "second", "low"]
    assert sql_board.job_count == 4
    listed = {job.uuid: job for job in sql_board.iterjobs()}
    assert listed[first.uuid].details == {"n": 2}
    assert listed[first.uuid].book_uuid == book.uuid
    assert listed[first.uuid].book_name == "book"
    assert listed[low.uuid].priority == base.JobPriority.LOW
    assert listed[high.uuid].state == states.UNCLAIMED
    assert second.created_on is not None and second.last_modified


def test_post_with_a_given_uuid(sql_board):
    job = sql_board.post("fixed", uuid="0" * 8 + "-0000-0000-0000-" + "0" * 12)
    assert sql_board.find_job(job.uuid).name == "fixed"


def test_claim_consume(sql_board):
    job = sql_board.post("job")
    sql_board.claim(job, "runner-a")
    assert sql_board.find_owner(job) == "runner-a"
    assert job.state == states.CLAIMED
    assert list(sql_board.iterjobs(only_unclaimed=True)) == []
    assert [j.uuid for j in sql_board.iterjobs()] == [job.uuid]
    with pytest.raises(tf_exc.UnclaimableJob, match="runner-a"):
        sql_board.claim(job, "runner-b")
    with pytest.raises(tf_exc.JobFailure, match="claimed by runner-a"):
        sql_board.consume(job, "runner-b")
    sql_board.consume(job, "runner-a")
    assert job.state == states.COMPLETE
    assert sql_board.job_count == 0
    assert sql_board.find_job(job.uuid) is None
    assert job.wait(timeout=0.1)
    with pytest.raises(tf_exc.NotFound):
        sql_board.claim(job, "runner-b")
    with pytest.raises(tf_exc.NotFound):
        sql_board.consume(job, "runner-a")


def test_abandon_makes_the_job_claimable_again(sql_board):
    job = sql_board.post("job")
    with pytest.raises(tf_exc.NotFound, match="not claimed"):
        sql_board.abandon(job, "runner-a")
    sql_board.claim(job, "runner-a")
    with pytest.raises(tf_exc.JobFailure):
        sql_board.abandon(job, "runner-b")
    sql_board.abandon(job, "runner-a")
    assert sql_board.find_owner(job) is None
    assert [j.uuid for j in sql_board.iterjobs(only_unclaimed=True)] == [
        job.uuid]
    sql_board.claim(job, "runner-b")
    assert sql_board.find_owner(job) == "runner-b"


def test_trash_removes_the_job_and_keeps_its_row(sql_board, any_db):
    job = sql_board.post("job")
    sql_board.claim(job, "runner-a")
    sql_board.trash(job, "runner-a")
    assert sql_board.job_count == 0
    assert job.state == states.COMPLETE
    assert sql_board.fetch_row(job.uuid).state == jobboard_sql.TRASH


def test_an_expired_claim_is_taken_over(sql_board):
    job = sql_board.post("job")
    sql_board.claim(job, "dead-runner", expiry=2)
    with pytest.raises(tf_exc.UnclaimableJob):
        sql_board.claim(job, "runner-b")
    time.sleep(2.1)
    assert job.state == states.UNCLAIMED
    assert sql_board.find_owner(job) is None
    assert [j.uuid for j in sql_board.iterjobs(only_unclaimed=True)] == [
        job.uuid]
    sql_board.claim(job, "runner-b")
    assert sql_board.find_owner(job) == "runner-b"
    assert not sql_board.extend_claim(job, "dead-runner")
    with pytest.raises(tf_exc.JobFailure):
        sql_board.consume(job, "dead-runner")
    sql_board.consume(job, "runner-b")


def dead_pid():
    """The pid of a process of this machine that exited and was reaped."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_claims_of_dead_local_runners_are_taken_over_at_once(sql_board):
    here = socket.gethostname()
    pid = dead_pid()
    owners = {"dead": f"runner@{here}:{pid}",
              "alive": runner.runner_identity("runner"),
              "elsewhere": f"runner@not-{here}:{pid}",
              "not-a-runner": "runner-a"}
    jobs = {}
    for what, owner in owners.items():
        jobs[what] = sql_board.post(what)
        sql_board.claim(jobs[what], owner)
    assert list(sql_board.iterjobs(only_unclaimed=True)) == []
    assert runner.owner_is_dead(owners["dead"])
    assert not any(runner.owner_is_dead(owners[what])
                   for what in ("alive", "elsewhere", "not-a-runner"))
    assert not runner.owner_is_dead(f"runner@{here}:0")

    assert sql_board.expire_dead_claims(runner.owner_is_dead) == [
        jobs["dead"].uuid]
    assert sql_board.expire_dead_claims(runner.owner_is_dead) == []
    assert [job.uuid for job in sql_board.iterjobs(only_unclaimed=True)] \
        == [jobs["dead"].uuid]
    assert jobs["dead"].state == states.UNCLAIMED
    assert sql_board.find_owner(jobs["dead"]) is None
    sql_board.claim(jobs["dead"], "runner-b")
    assert sql_board.find_owner(jobs["dead"]) == "runner-b"
    for what in ("alive", "elsewhere", "not-a-runner"):
        assert sql_board.find_owner(jobs[what]) == owners[what]
        with pytest.raises(tf_exc.UnclaimableJob):
            sql_board.claim(jobs[what], "runner-b")


def test_a_starting_runner_runs_at_once_the_jobs_of_a_dead_local_runner(
        conf, any_db, sql_board, tmp_path):
    instance = helpers.add_instance(any_db)
    job_uuid = posting.post_operation(
        sample_flows.SAMPLE_ACTION, instance, sample_flows.QUICK,
        {"trace_file": str(tmp_path / "trace")}, conf=conf)
    dead = f"runner@{socket.gethostname()}:{dead_pid()}"
    sql_board.claim(sql_board.find_job(job_uuid), dead)
    started = time.monotonic()
    finished = runner.Runner("restarted", conf, drain=True).run()
    assert [uuid for uuid, _result in finished] == [job_uuid]
    assert time.monotonic() - started < sql_board.claim_expiry
    row = sql_board.fetch_row(job_uuid)
    assert row.state == states.COMPLETE
    assert row.owner.startswith("restarted@")


def test_extend_claim_keeps_the_claim_alive(sql_board):
    job = sql_board.post("job")
    sql_board.claim(job, "runner-a", expiry=2)
    for _ in range(3):
        time.sleep(1)
        assert job.extend_expiry(2)
    assert sql_board.find_owner(job) == "runner-a"
    assert sql_board.extend_claim(job, "runner-a", 1)
    assert not sql_board.extend_claim(job, "runner-b", 60)


def assert_expires_in(expires_at, seconds, before, after):
    """``expires_at`` is ``seconds`` after a moment between ``before`` and
    ``after`` (to the microsecond, on every database)."""
    delta = datetime.timedelta(seconds=seconds)
    assert before + delta <= expires_at <= after + delta


def test_claim_expires_at_follows_the_claim(sql_board):
    job = sql_board.post("job")
    assert sql_board.claim_expires_at(job) is None
    before = models.utcnow()
    sql_board.claim(job, "runner-a")
    assert_expires_in(sql_board.claim_expires_at(job), 5, before,
                      models.utcnow())
    before = models.utcnow()
    assert sql_board.extend_claim(job, "runner-a", 60)
    assert_expires_in(sql_board.claim_expires_at(job), 60, before,
                      models.utcnow())
    # An ended claim is no claim, though the row keeps its owner.
    assert sql_board.expire_dead_claims(lambda owner: True) == [job.uuid]
    assert sql_board.claim_expires_at(job) is None
    sql_board.claim(job, "runner-b")
    sql_board.consume(job, "runner-b")
    assert sql_board.claim_expires_at(job) is None


def test_a_sub_second_claim_holds_for_its_expiry_then_lapses(sql_board):
    """MariaDB's plain DATETIME dropped the fraction of a second: a claim
    of 0.5 s was often over the moment it was made."""
    job = sql_board.post("job")
    before = models.utcnow()
    sql_board.claim(job, "runner-a", expiry=0.5)
    assert_expires_in(sql_board.claim_expires_at(job), 0.5, before,
                      models.utcnow())
    assert sql_board.find_owner(job) == "runner-a"
    assert job.state == states.CLAIMED
    assert list(sql_board.iterjobs(only_unclaimed=True)) == []
    time.sleep(0.6)
    assert job.state == states.UNCLAIMED
    assert [j.uuid for j in sql_board.iterjobs(only_unclaimed=True)] == [
        job.uuid]


def test_an_owner_may_consume_after_its_claim_expired(sql_board):
    job = sql_board.post("job")
    sql_board.claim(job, "slow-runner", expiry=1)
    time.sleep(1.1)
    sql_board.consume(job, "slow-runner")
    assert job.state == states.COMPLETE


def test_wait_returns_posted_jobs_or_times_out(sql_board):
    with pytest.raises(tf_exc.NotFound):
        sql_board.wait(timeout=0.2)
    threading.Timer(0.2, sql_board.post, args=("late",)).start()
    jobs = list(sql_board.wait(timeout=5))
    assert [job.name for job in jobs] == ["late"]


def test_boards_are_separated_by_namespace(conf, any_db, sql_board):
    other = make_board(conf, any_db, namespace="elsewhere-" + conf.jobboard
                       .namespace)
    sql_board.post("mine")
    assert other.job_count == 0 and list(other.iterjobs()) == []
    other.close()


def test_registered_entities_are_alive_until_their_heartbeat_expires(
        conf, any_db):
    board = jobboard_sql.SQLJobBoard(
        "test", {"namespace": conf.jobboard.namespace,
                 "claim_expiry_seconds": 1}, engine=any_db)
    board.connect()
    runner = entity.Entity("conductor", "runner-1@host:1", {"pid": 1})
    assert board.alive_entities() == []
    board.register_entity(runner)
    board.register_entity(runner)
    assert board.alive_entities() == ["runner-1@host:1"]
    assert board.job_count == 0
    time.sleep(1.1)
    assert board.alive_entities() == []
    board.register_entity(runner)
    assert board.alive_entities() == ["runner-1@host:1"]
    board.unregister_entity(runner)
    assert board.alive_entities() == []


def test_a_closed_board_refuses_work(sql_board):
    sql_board.close()
    with pytest.raises(tf_exc.JobFailure, match="not connected"):
        sql_board.post("job")


def test_racing_claimers_never_claim_a_job_twice(conf, any_db):
    """Threads with their own engines (own connections) race for every
    job: each job is claimed exactly once."""
    url = any_db.url
    poster = make_board(conf, any_db)
    posted = [poster.post(f"job-{n}").uuid for n in range(CLAIM_RACE_JOBS)]
    claims = {}
    lock = threading.Lock()
    start = threading.Barrier(CLAIM_RACE_THREADS)

    def claimer(number):
        engine = api.create_engine(url, conf)
        board = make_board(conf, engine)
        start.wait()
        for job in board.iterjobs():
            try:
                board.claim(job, f"claimer-{number}")
            except (tf_exc.UnclaimableJob, tf_exc.NotFound):
                continue
            with lock:
                claims.setdefault(job.uuid, []).append(number)
        board.close()
        engine.dispose()

    threads = [threading.Thread(target=claimer, args=(n,))
               for n in range(CLAIM_RACE_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claims) == sorted(posted)
    assert {uuid: len(who) for uuid, who in claims.items()} == {
        uuid: 1 for uuid in posted}
    owners = {poster.find_owner(poster.find_job(uuid)) for uuid in posted}
    assert owners <= {f"claimer-{n}" for n in range(CLAIM_RACE_THREADS)}
    poster.close()


def test_database_errors_are_job_failures(conf, tmp_path):
    """What TaskFlow's conductor logs and backs off from."""
    engine = api.create_engine(f"sqlite:///{tmp_path}/empty.sqlite", conf)
    board = jobboard_sql.SQLJobBoard("test", {}, engine=engine)
    with pytest.raises(tf_exc.JobFailure, match="no such table: jobs"):
        board.connect()
    engine.dispose()


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_claims_renew_while_the_jobs_hold_every_pooled_connection(
        conf, tmp_path, kind):
    """A runner's jobs may hold every connection of the process's pool
    (some waiting for row locks): the board has a pool of its own, so a
    claim renewal does not wait behind them while the claim expires."""
    with helpers.private_database(kind, tmp_path) as url:
        conf.set_override("connection", url, group="database")
        conf.set_override("pool_size", 1, group="database")
        board = jobboard.get_jobboard(conf)
        main = api.get_engine(conf)
        # pool_size + QueuePool's default max_overflow (10): all of them
        held = [main.connect() for _ in range(1 + 10)]
        try:
            job = board.post("job")
            board.claim(job, "runner-a")
            renewed = []
            renewal = threading.Thread(target=lambda: renewed.append(
                board.extend_claim(job, "runner-a")), daemon=True)
            renewal.start()
            renewal.join(10)  # the main pool would make it wait 30 s
            assert renewed == [True]
        finally:
            for connection in held:
                connection.close()
            board.close()
