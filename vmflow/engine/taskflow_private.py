"""Every place vmflow relies on a TaskFlow name that is not public API.

TaskFlow's public API (engines, flows, retries, listeners' receivers,
``JobBoard``/``Job`` interfaces, persistence ``Backend``/``Connection``)
covers most of what vmflow does; these do not, and an upstream change to
any of them can break a runner without an import error. setup.cfg caps
``taskflow`` below its next minor version, and
``tests/unit/engine/test_taskflow_private.py`` checks that each name below
still exists in the installed TaskFlow. Raise the cap only after the whole
suite (crash matrices included) passed on the new version.

No upstream bug is linked: TaskFlow tracks bugs on Launchpad, which this
project cannot reach from its machines; each reason below is written so it
can be filed as it stands.

Persistence (:mod:`vmflow.engine.persistence`)
    ``impl_sqlalchemy._Alchemist`` (subclassed, ``convert_atom_detail``):
        TaskFlow 6.5's ``RetryDetail.from_dict`` reuses one variable for an
        attempt's value and its failures, so a retry history loaded from the
        database has every failed attempt's value replaced by its failure;
        a resumed build would revert its tasks with a failure as host name.
    ``impl_sqlalchemy.Connection.__init__`` (replaced, not called):
        the stock connection rebuilds its ``MetaData`` and tables on every
        ``get_connection()`` (about four times a task): 46 ms a task on
        SQLite instead of 5 ms.

Redis job board (:mod:`vmflow.engine.jobboard_redis`)
    ``RedisJobBoard.post`` (overridden), ``post_claimed``,
    ``impl_redis._translate_failures``,
    ``RedisJobBoard._client``, ``._dumps``, ``._encode_owner``,
    ``._decode_owner``, ``._fetch_jobs``, ``impl_redis.RedisJob``:
        TaskFlow's ``post`` cannot be given the job's uuid (vmflow's job
        uuid is its logbook's uuid), its board has no owner-checked claim
        renewal, no lookup by uuid, no re-posting of a lost job already
        claimed and no runner registry; these are built on the board's
        client and its error translation.
    ``RedisJobBoard.find_owner`` (overridden), ``._decode_owner``:
        TaskFlow 6.5's ``find_owner`` decodes the owner key's value even
        when the key is missing, so it raises TypeError for every
        unclaimed job (``vmflow job list`` with an unclaimed job) instead
        of returning None as ``JobBoard.find_owner`` promises.

Conductor (:mod:`vmflow.engine.runner`)
    ``NonBlockingConductor._dispatch_job`` (overridden):
        a storage error while loading a job trashes it upstream; vmflow
        abandons it to be tried again.
    ``._try_finish_job`` (overridden):
        the instance action and lock must be recorded *before* the job is
        consumed, and not at all when the claim was lost.
    ``._listeners_from_job`` (overridden, the hook TaskFlow's conductor
    offers subclasses): the action-event listener and claim keep-alive.
    ``._on_job_done``, ``._can_claim_more_jobs`` (overridden),
    ``._dispatched``, ``._max_simultaneous_jobs``:
        ``run(max_dispatches=N)`` dispatches N + 1 jobs; ``--max-jobs``
        needs an exact limit and to stop once those jobs ended.
    ``._engine_from_job`` (overridden, wrapped): the claim is renewed
        while the engine loads (it can outlast a claim expiry on a loaded
        machine; the keep-alive listener starts only once the engine exists).
    ``._executor_factory`` (replaced):
        futurist's thread pool takes a second to shut down after each run.
    ``._jobboard``, ``._persistence``, ``._name``:
        the conductor's board, backend and name, which it does not expose.
"""
# (owner, attribute) pairs named above, checked by the unit test.
PRIVATE_NAMES = (
    ("taskflow.persistence.backends.impl_sqlalchemy", "_Alchemist"),
    ("taskflow.persistence.backends.impl_sqlalchemy._Alchemist",
     "convert_atom_detail"),
    ("taskflow.persistence.backends.impl_sqlalchemy.Connection",
     "__init__"),
    ("taskflow.jobs.backends.impl_redis", "_translate_failures"),
    ("taskflow.jobs.backends.impl_redis", "RedisJob"),
    ("taskflow.jobs.backends.impl_redis.RedisJobBoard", "_dumps"),
    ("taskflow.jobs.backends.impl_redis.RedisJobBoard", "_encode_owner"),
    ("taskflow.jobs.backends.impl_redis.RedisJobBoard", "_decode_owner"),
    ("taskflow.jobs.backends.impl_redis.RedisJobBoard", "_fetch_jobs"),
    ("taskflow.conductors.backends.impl_nonblocking.NonBlockingConductor",
     "_dispatch_job"),
    ("taskflow.conductors.backends.impl_nonblocking.NonBlockingConductor",
     "_try_finish_job"),
    ("taskflow.conductors.backends.impl_nonblocking.NonBlockingConductor",
     "_listeners_from_job"),
    ("taskflow.conductors.backends.impl_nonblocking.NonBlockingConductor",
     "_on_job_done"),
    ("taskflow.conductors.backends.impl_nonblocking.NonBlockingConductor",
     "_can_claim_more_jobs"),
    ("taskflow.conductors.backends.impl_nonblocking.NonBlockingConductor",
     "_engine_from_job"),
)
# Instance attributes the conductor and the Redis board set in __init__.
PRIVATE_ATTRIBUTES = {
    "conductor": ("_dispatched", "_max_simultaneous_jobs",
                  "_executor_factory", "_jobboard", "_persistence", "_name"),
    "redis_board": ("_client",),
}
