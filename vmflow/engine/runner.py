"""The runner: a TaskFlow conductor that claims jobs and runs their flows.

:class:`VmflowConductor` is TaskFlow's non-blocking (thread pool) conductor
with vmflow's additions:

* each job's engine is loaded from its persisted flow detail (factory by
  dotted name) with the project-database persistence backend, so atom
  states are saved as they change and a job run again continues from the
  last saved step;
* every engine gets an :class:`~.listeners.ActionEventListener` and a
  :class:`~.listeners.ClaimKeepAlive`;
* when a job ends (consumed or trashed) its instance action is finished and
  its instance lock released (:func:`.outcome.record_job_end`) first;
* a storage error while loading a job abandons it (tried again later)
  instead of trashing it.

:meth:`VmflowConductor.stop` (SIGTERM) stops claiming; the engines running
suspend after their current step and their jobs are abandoned for another
runner. :class:`Runner` adds the board connection, the runner heartbeat
(``register_entity`` every third of the claim expiry, so ``--wait`` can tell
whether any runner is alive) and the ``--max-jobs``/``--once`` limits. On
the SQL board it takes over at once, when it starts and at each heartbeat,
the jobs claimed by a runner of this machine that no longer exists
(:func:`owner_is_dead`): a runner restarted after SIGKILL resumes its jobs
without waiting for their claims to expire. The Redis board keeps the
expiry-only behaviour.
:func:`run_job_inline` runs one job in the calling process.

TaskFlow private names used here, and why: :mod:`.taskflow_private`.
"""
import contextlib
from concurrent import futures
import logging
import os
import signal
import socket
import threading
import time

import futurist
from taskflow import exceptions as tf_exc
from taskflow.conductors.backends import impl_nonblocking
from taskflow.types import entity as tf_entity
from taskflow.types import timing as tf_timing

from vmflow import conf as vmflow_conf
from vmflow import exception, flows
from vmflow.engine import jobboard, listeners, outage, outcome, recovery
from vmflow.engine import services as runner_services
from vmflow.engine import persistence as engine_persistence

LOG = logging.getLogger(__name__)
IDLE_WAIT_SECONDS = 0.2
STORAGE_RETRY_DELAY = 1.0
ENGINES = {"serial": "serial", "threaded": "parallel"}


def runner_identity(name):
    """The claim owner name of this process: ``name@host:pid``."""
    return f"{name}@{socket.gethostname()}:{os.getpid()}"


def owner_is_dead(owner):
    """True when claim owner ``owner`` (``name@host:pid``, see
    :func:`runner_identity`) is a process of this machine that no longer
    exists. An owner on another machine, an owner in another form, and a
    process this one may not signal (alive) are not dead; a pid reused by
    a new process, or a dead runner its parent has not reaped yet, only
    delays the takeover until the claim expires. Runners that share a host
    name must share a pid namespace (not so: containers given the host's
    name), else one would take a live runner's jobs over.
    """
    _name, at, place = (owner or "").rpartition("@")
    host, _colon, pid = place.rpartition(":")
    if (not at or host != socket.gethostname() or not pid.isdigit()
            or int(pid) <= 0):
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's process
        pass
    return False


def engine_options(conf, task_pool=None):
    """(engine kind, engine options) from ``[engine]``.

    The threaded executor runs tasks on ``task_pool``, one thread pool the
    conductor shares between its jobs: an engine that made its own would
    shut it down at the end of every job, which takes futurist a second.
    """
    kind = ENGINES[conf.engine.executor]
    if kind == "parallel":
        return kind, dict(flows.ENGINE_OPTIONS, executor=task_pool)
    return kind, dict(flows.ENGINE_OPTIONS)


class _StopWhenIdle(tf_timing.Timeout):
    """The conductor's idle wait, which stops it instead when nothing is
    running (the conductor waits only after a round that claimed nothing).
    """

    def __init__(self, value, is_idle):
        super().__init__(value)
        self._is_idle = is_idle

    def wait(self):
        if self._is_idle():
            self.interrupt()
        else:
            super().wait()


class _CountingExecutor:
    """An executor that counts the jobs submitted to it."""

    def __init__(self, executor, on_submit):
        self._executor = executor
        self._on_submit = on_submit

    def submit(self, fn, *args, **kwargs):
        future = self._executor.submit(fn, *args, **kwargs)
        self._on_submit()
        return future

    def __enter__(self):
        self._executor.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self._executor.__exit__(*exc_info)


class _ClaimableJobsView:
    """The board as the conductor's claim loop should see it: only jobs it
    can claim (unclaimed, or whose claim expired), not every job other
    runners hold -- each of those would cost a failed claim per poll.

    While the board fails (its server or database is down) the loop sees
    no jobs and waits with back-off (:class:`.outage.OutageLog`), instead
    of TaskFlow's retry with a traceback every fraction of a second.

    Nor does it see the jobs this conductor runs (``running``, from their
    claim to their end): when this runner's own claim on one lapsed (a
    stall longer than the claim expiry) it would claim it again under the
    same name, and both claims would renew -- the job would run twice at
    once here.
    """

    def __init__(self, board):
        self._board = board
        self._outage = outage.OutageLog(LOG, "The job board")
        self.stopped = threading.Event()
        self.running = set()

    def iterjobs(self, only_unclaimed=True, ensure_fresh=False):
        try:
            jobs = list(self._board.iterjobs(only_unclaimed=True,
                                             ensure_fresh=ensure_fresh))
        except tf_exc.JobFailure as error:
            self.stopped.wait(self._outage.failed(error))
            return iter(())
        self._outage.succeeded()
        return iter([job for job in jobs if job.uuid not in self.running])

    def claim(self, job, who, *args, **kwargs):
        try:
            claimed = self._board.claim(job, who, *args, **kwargs)
            self.running.add(job.uuid)
            return claimed
        except tf_exc.UnclaimableJob:
            raise  # another runner was first: no outage
        except tf_exc.JobFailure as error:
            self.stopped.wait(self._outage.failed(error))
            raise tf_exc.UnclaimableJob(
                f"job {job.uuid} could not be claimed: {error}") from error

    def __getattr__(self, name):
        return getattr(self._board, name)


class VmflowConductor(impl_nonblocking.NonBlockingConductor):
    """``max_jobs``: claim no more than that many jobs, and stop once they
    ended (TaskFlow's ``run(max_dispatches=N)`` dispatches N + 1)."""

    def __init__(self, name, board, persistence, db_engine, engine="serial",
                 engine_options=None, max_simultaneous_jobs=1,
                 wait_timeout=IDLE_WAIT_SECONDS, listener_factories=(),
                 max_jobs=None):
        super().__init__(name, _ClaimableJobsView(board),
                         persistence=persistence, engine=engine,
                         engine_options=engine_options,
                         wait_timeout=wait_timeout,
                         max_simultaneous_jobs=max_simultaneous_jobs)
        # The standard library's pool: futurist's takes a second to shut
        # down (its idle workers poll their queue every second).
        self._executor_factory = lambda: _CountingExecutor(
            futures.ThreadPoolExecutor(self._max_simultaneous_jobs),
            self._count_submission)
        self.task_pool = (engine_options or {}).get("executor")
        self._max_jobs = max_jobs
        self._submitted = 0
        self._db = db_engine
        self._listener_factories = tuple(listener_factories)
        self._keepalives = {}
        self._dispatch_errors = {}
        self._entity = tf_entity.Entity(
            self.ENTITY_KIND, name,
            {"hostname": socket.gethostname(), "pid": os.getpid()})
        self.finished_jobs = []

    @property
    def conductor(self):
        # The name already carries host and pid (see runner_identity).
        return self._entity

    @property
    def idle(self):
        return not self._dispatched

    def stop(self):
        self._jobboard.stopped.set()
        super().stop()

    def _count_submission(self):
        self._submitted += 1

    def _job_limit_reached(self):
        return self._max_jobs is not None and self._submitted >= self._max_jobs

    def _can_claim_more_jobs(self, job):
        if self._job_limit_reached():
            return False
        return super()._can_claim_more_jobs(job)

    def _on_job_done(self, job, fut):
        try:
            super()._on_job_done(job, fut)
        finally:
            self._jobboard.running.discard(job.uuid)
            if self._job_limit_reached() and not self._dispatched:
                self.stop()

    def _engine_from_job(self, job):
        # Loading can outlast a claim expiry on a loaded machine, and the
        # claim keep-alive starts only once the engine exists.
        with _renewing_claim(self._jobboard, job, self._name):
            return super()._engine_from_job(job)

    def _listeners_from_job(self, job, engine):
        found = super()._listeners_from_job(job, engine)
        keepalive = listeners.ClaimKeepAlive(engine, self._jobboard, job,
                                             self._name)
        self._keepalives[job.uuid] = keepalive
        info = outcome.job_info(job)
        if info is not None:
            found.append(listeners.ActionEventListener(
                engine, info["action_id"], self._db, claim=keepalive))
        found.append(keepalive)
        found.extend(factory(job, engine)
                     for factory in self._listener_factories)
        return found

    def _dispatch_job(self, job):
        try:
            return super()._dispatch_job(job)
        except tf_exc.StorageFailure:
            LOG.exception("Loading job %s failed on a storage error; "
                          "abandoning it to be tried again", job.uuid)
            time.sleep(STORAGE_RETRY_DELAY)
            return False
        except Exception as error:
            self._dispatch_errors[job.uuid] = (
                f"{type(error).__name__}: {error}")
            raise

    def _try_finish_job(self, job, consume, trash=False):
        keepalive = self._keepalives.pop(job.uuid, None)
        if keepalive is not None and keepalive.lost:
            super()._try_finish_job(job, consume, trash)
            return
        # The keep-alive stopped with the engine; recording the end can
        # outlast a claim expiry on a loaded machine.
        with _renewing_claim(self._jobboard, job, self._name):
            if consume or trash:
                try:
                    result = outcome.record_job_end(
                        job, self._persistence, self._db,
                        dispatch_error=self._dispatch_errors.pop(job.uuid,
                                                                 None))
                except Exception:  # the database failed: run the job again
                    LOG.exception("Recording the end of job %s failed; "
                                  "abandoning it so that it ends again (its "
                                  "flow is finished: nothing runs twice)",
                                  job.uuid)
                    consume = trash = False
                else:
                    self.finished_jobs.append((job.uuid, result))
            super()._try_finish_job(job, consume, trash)

    def close_task_pool(self):
        """Shut the shared task pool of the threaded executor down."""
        if self.task_pool is not None:
            self.task_pool.shutdown(wait=True)

    def run_claimed_job(self, job):
        """Run a job this conductor's name has claimed, here and now, and
        consume, abandon or trash it as :meth:`run` would."""
        future = futurist.SynchronousExecutor().submit(self._dispatch_job,
                                                       job)
        self._on_job_done(job, future)


@contextlib.contextmanager
def _renewing_claim(board, job, who):
    """Renew ``who``'s claim on ``job`` every third of a claim expiry
    while the block runs."""
    stopped = threading.Event()

    def renew():
        while not stopped.wait(board.claim_expiry / 3.0):
            try:
                board.extend_claim(job, who)
            except Exception:  # the keep-alive reports outages
                LOG.debug("Renewing the claim on job %s failed", job.uuid,
                          exc_info=True)

    thread = threading.Thread(target=renew, daemon=True,
                              name=f"claim-while-loading-{job.uuid[:8]}")
    thread.start()
    try:
        yield
    finally:
        stopped.set()
        thread.join()


def build_conductor(name, conf=vmflow_conf.CONF, board=None,
                    persistence=None, drain=False, listener_factories=(),
                    max_jobs=None):
    """A :class:`VmflowConductor` configured from ``conf``."""
    persistence = persistence or engine_persistence.get_persistence(conf)
    board = board or jobboard.get_jobboard(conf, persistence)
    task_pool = None
    if ENGINES[conf.engine.executor] == "parallel":
        task_pool = futures.ThreadPoolExecutor(conf.engine.max_workers)
    kind, options = engine_options(conf, task_pool)
    conductor = None
    wait = (_StopWhenIdle(IDLE_WAIT_SECONDS, lambda: conductor.idle)
            if drain else IDLE_WAIT_SECONDS)
    conductor = VmflowConductor(
        name, board, persistence, persistence.source_engine, engine=kind,
        engine_options=options,
        max_simultaneous_jobs=conf.engine.max_workers, wait_timeout=wait,
        listener_factories=listener_factories, max_jobs=max_jobs)
    return conductor


class Runner:
    """A ``vmflow-engine`` process: claims and runs jobs until stopped.

    ``max_jobs``: return after that many jobs were dispatched and ended.
    ``drain`` (``--once``): return as soon as nothing is claimable and
    nothing runs.
    """

    def __init__(self, name, conf=vmflow_conf.CONF, max_jobs=None,
                 drain=False):
        self.who = runner_identity(name)
        self.persistence = engine_persistence.get_persistence(conf)
        self.board = jobboard.get_jobboard(conf, self.persistence)
        self.conductor = build_conductor(self.who, conf, self.board,
                                         self.persistence, drain=drain,
                                         max_jobs=max_jobs)
        self.sweeper = recovery.LostJobSweeper(self.board, self.persistence)
        self.services = runner_services.RunnerServices(conf, self.who)
        self._heartbeat_outage = outage.OutageLog(
            LOG, f"Runner {self.who}'s heartbeat")
        self._stopped = threading.Event()

    def run(self):
        heartbeat = threading.Thread(target=self._heartbeat, daemon=True,
                                     name="runner-heartbeat")
        self.board.register_entity(self.conductor.conductor)
        self._take_over_dead_claims()
        self._beat(register=False)  # registered just now: only the sweep
        heartbeat.start()
        try:
            self.services.start()
            LOG.info("Runner %s is claiming jobs", self.who)
            self.conductor.run()
        finally:
            self.services.stop()
            self._stopped.set()
            heartbeat.join()
            self.board.unregister_entity(self.conductor.conductor)
            self.board.close()
            self.conductor.close_task_pool()
        LOG.info("Runner %s stopped after %d job(s)", self.who,
                 len(self.conductor.finished_jobs))
        return self.conductor.finished_jobs

    def stop(self):
        """Stop claiming; running engines suspend after their current step
        and their jobs are abandoned (for another runner)."""
        LOG.info("Runner %s is stopping", self.who)
        self.conductor.stop()

    def _take_over_dead_claims(self):
        take_over_dead_claims(self.board)

    def _heartbeat(self):
        """Every third of a claim expiry: register, take over the claims of
        this machine's dead runners, post lost jobs again."""
        interval = self.board.claim_expiry / 3.0
        while not self._stopped.wait(interval):
            self._beat(register=True)

    def _beat(self, register):
        try:
            if register:
                self.board.register_entity(self.conductor.conductor)
                self._take_over_dead_claims()
            self.sweeper.sweep()
        except Exception as error:  # the board or database is down
            self._heartbeat_outage.failed(error)
        else:
            self._heartbeat_outage.succeeded()


def take_over_dead_claims(board):
    """End the claims of this machine's dead runners (SQL board only)."""
    expire = getattr(board, "expire_dead_claims", None)
    if expire is None:
        return
    for job_uuid in expire(owner_is_dead):
        LOG.info("Job %s was claimed by a runner of this machine that no "
                 "longer runs: it may be taken over now", job_uuid)


def live_runners(board):
    """Names of the runners whose heartbeat is current, less those of
    this machine whose process is gone."""
    return [name for name in board.alive_entities()
            if not owner_is_dead(name)]


@contextlib.contextmanager
def _suspend_on_sigint(conductor):
    """While a job runs inline in the main thread, SIGINT (Ctrl-C) stops
    the conductor: the engine suspends after the current step and the job
    is abandoned for a runner, as on a runner's SIGTERM. Yields an event
    set when that happened."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def _stop(_signum, _frame):
        interrupted.set()
        conductor.stop()

    previous = signal.signal(signal.SIGINT, _stop)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def run_job_inline(job_uuid, conf=vmflow_conf.CONF, on_progress=None,
                   name="inline"):
    """Claim job ``job_uuid`` and run it in this process (``--wait`` with
    no runner alive). Returns False when the job is no longer on the board
    (it ended); raises ``taskflow.exceptions.UnclaimableJob`` when another
    process holds its claim, and :class:`~vmflow.exception.
    OperationInterrupted` when SIGINT suspended it (left for a runner).
    ``on_progress(task_name, state)`` is called on every task transition.
    """
    persistence = engine_persistence.get_persistence(conf)
    with jobboard.opened(conf, persistence=persistence) as board:
        job = board.find_job(job_uuid)
        if job is None:
            return False
        take_over_dead_claims(board)
        who = runner_identity(name)
        board.claim(job, who)
        factories = ()
        if on_progress is not None:
            factories = (lambda _job, engine: listeners.ProgressListener(
                engine, on_progress),)
        conductor = build_conductor(who, conf, board, persistence,
                                    listener_factories=factories)
        try:
            with _suspend_on_sigint(conductor) as interrupted:
                conductor.run_claimed_job(job)
        finally:
            conductor.close_task_pool()
        if interrupted.is_set() and board.find_job(job_uuid) is not None:
            raise exception.OperationInterrupted(job=job_uuid)
        return True
