"""TaskFlow's Redis job board with what vmflow's runners rely on.

:class:`RedisJobBoard` is TaskFlow's board (``impl_redis``) plus:

* claims expire by default (``claim_expiry_seconds``): TaskFlow's conductor
  calls ``claim(job, who)`` and a claim without expiry would outlive a dead
  runner forever;
* :meth:`extend_claim` renews a claim only while ``who`` still holds it
  (one Lua script, so a runner cannot renew a claim another took over);
* :meth:`find_job` looks a job up by uuid;
* :meth:`find_owner` returns None for a job without owner (TaskFlow 6.5's
  raises TypeError decoding the missing owner);
* :meth:`claim_expires_at` tells when a job's claim expires;
* runners register as keys that expire one claim expiry after their last
  heartbeat, so :meth:`alive_entities` can tell whether any runner is up.

TaskFlow private names used here, and why: :mod:`.taskflow_private`.
"""
import datetime
import json

from oslo_utils import timeutils
from oslo_utils import uuidutils
from taskflow import exceptions as tf_exc
from taskflow.jobs import base
from taskflow.jobs.backends import impl_redis

from vmflow.engine import jobboard_sql

EXTEND_IF_OWNER = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("pexpire", KEYS[1], ARGV[2])
end
return 0
"""
ENTITIES_KEY = b"entities"


class RedisJobBoard(impl_redis.RedisJobBoard):

    def __init__(self, name, conf, client=None, persistence=None):
        super().__init__(name, conf, client=client, persistence=persistence)
        self._claim_expiry = float(conf.get(
            "claim_expiry_seconds", jobboard_sql.DEFAULT_CLAIM_EXPIRY))
        self._board_namespace = conf.get("namespace",
                                         self.DEFAULT_NAMESPACE)
        self._extend_script = None

    @property
    def claim_expiry(self):
        return self._claim_expiry

    @property
    def namespace(self):
        """The namespace of the board's keys (as the SQL board's)."""
        namespace = self._board_namespace
        return namespace.decode() if isinstance(namespace, bytes) else namespace

    def connect(self):
        super().connect()
        self._extend_script = self._client.register_script(EXTEND_IF_OWNER)

    def post(self, name, book=None, details=None,
             priority=base.JobPriority.NORMAL, uuid=None):
        """TaskFlow's post, plus ``uuid`` (an extension) to fix the job's
        uuid, as the SQL board's post has."""
        return self._post(name, book, details, priority,
                          uuid or uuidutils.generate_uuid())

    def post_claimed(self, job, who, expiry=None):
        """Post ``job`` (lost by the board) again, already claimed by
        ``who``: the owner key is set before the job is listed, so no
        other claim (of another runner, or of ``who``'s own claim loop)
        can come between. UnclaimableJob if another owner holds it."""
        expiry = self._claim_expiry if expiry is None else expiry
        owner = self._encode_owner(who)
        with impl_redis._translate_failures():
            if not self._client.set(job.owner_key, owner, nx=True,
                                    px=int(expiry * 1000)):
                if self._client.get(job.owner_key) != owner:
                    raise tf_exc.UnclaimableJob(
                        f"job {job.uuid} is claimed by another runner")
        return self._post(job.name, job.book, job.details, job.priority,
                          job.uuid)

    def _post(self, name, book, details, priority, job_uuid):
        job_priority = base.JobPriority.convert(priority)
        posting = base.format_posting(
            job_uuid, name, created_on=timeutils.utcnow(), book=book,
            details=details, priority=job_priority)
        raw_job_uuid = job_uuid.encode("latin-1")
        with impl_redis._translate_failures():
            posting["sequence"] = self._client.incr(self.sequence_key)
            posted = self._client.hsetnx(self.listings_key, raw_job_uuid,
                                         self._dumps(posting))
        if not posted:
            raise tf_exc.JobFailure(
                f"job {job_uuid} could not be posted at "
                f"{self.listings_key!r}: that uuid is already listed")
        return impl_redis.RedisJob(
            self, name, posting["sequence"], raw_job_uuid, uuid=job_uuid,
            details=details, created_on=posting["created_on"], book=book,
            book_data=posting.get("book"), backend=self._persistence,
            priority=job_priority)

    def claim(self, job, who, expiry=None):
        super().claim(job, who,
                      expiry=self._claim_expiry if expiry is None else expiry)

    def extend_claim(self, job, who, expiry=None):
        """Renew ``who``'s claim on ``job``; False if ``who`` lost it."""
        expiry = self._claim_expiry if expiry is None else expiry
        with impl_redis._translate_failures():
            renewed = self._extend_script(
                keys=[job.owner_key],
                args=[self._encode_owner(who), int(expiry * 1000)])
        return bool(renewed)

    def find_owner(self, job):
        """Who holds the claim on ``job``; None when it is unclaimed (or
        its claim expired), where TaskFlow's version raises TypeError."""
        with impl_redis._translate_failures():
            raw_owner = self._client.get(job.owner_key)
        return None if raw_owner is None else self._decode_owner(raw_owner)

    def claim_expires_at(self, job):
        """When the current claim on ``job`` expires (naive UTC, as the SQL
        board's), from its owner key's time to live; None when it is
        unclaimed (or its claim never expires)."""
        with impl_redis._translate_failures():
            milliseconds = self._client.pttl(job.owner_key)
        if milliseconds < 0:  # -2: no owner key; -1: no expiry
            return None
        return timeutils.utcnow() + datetime.timedelta(
            milliseconds=milliseconds)

    def find_job(self, job_uuid):
        """The job ``job_uuid`` if it is still on the board, else None."""
        with impl_redis._translate_failures():
            present = self._client.hexists(self.listings_key,
                                           job_uuid.encode("latin-1"))
        if not present:
            return None
        for job in self._fetch_jobs():
            if job.uuid == job_uuid:
                return job
        return None

    def _entity_key(self, name):
        return self.join(ENTITIES_KEY, name)

    def register_entity(self, entity):
        """Record (or refresh) ``entity`` as alive for one claim expiry."""
        with impl_redis._translate_failures():
            self._client.set(self._entity_key(entity.name),
                             json.dumps(entity.to_dict()),
                             px=int(self._claim_expiry * 1000))

    def unregister_entity(self, entity):
        with impl_redis._translate_failures():
            self._client.delete(self._entity_key(entity.name))

    def alive_entities(self):
        prefix = self._entity_key("")
        with impl_redis._translate_failures():
            keys = list(self._client.scan_iter(match=prefix + b"*"))
        return sorted(key[len(prefix):].decode() for key in keys)
