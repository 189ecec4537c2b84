"""Runner registrations of the embedded SQL job board.

Each registered entity (a runner) is a row of the ``jobs`` table on a
sibling board (``<namespace>!entities``, state ``REGISTERED``) whose
``claim_expires_at`` is its last heartbeat plus the claim expiry: it is
alive while that time is ahead. Registrations dead for a day are deleted
whenever a runner registers.
"""
import datetime
import json
import uuid as uuidlib

import sqlalchemy

from vmflow.persistence import api, models

REGISTERED = "REGISTERED"
FORGET_AFTER = datetime.timedelta(days=1)
JOBS = models.Job.__table__


class SQLEntityRegistry:

    def __init__(self, engine, board, ttl_seconds):
        self._engine = engine
        self._board = board
        self._ttl = datetime.timedelta(seconds=ttl_seconds)

    def _uuid(self, entity_name):
        return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL,
                                 f"{self._board}/{entity_name}"))

    def _writer(self):
        return api.writer_engine(self._engine).begin()

    def register(self, entity):
        now = models.utcnow()
        entity_uuid = self._uuid(entity.name)
        with self._writer() as connection:
            connection.execute(JOBS.delete().where(
                JOBS.c.board == self._board,
                JOBS.c.claim_expires_at < now - FORGET_AFTER))
            refreshed = connection.execute(
                JOBS.update()
                .where(JOBS.c.board == self._board,
                       JOBS.c.uuid == entity_uuid)
                .values(claim_expires_at=now + self._ttl,
                        updated_at=now)).rowcount
            if not refreshed:
                connection.execute(JOBS.insert().values(
                    uuid=entity_uuid, board=self._board,
                    name=entity.name[:255], owner=entity.name[:255],
                    state=REGISTERED, priority=0,
                    details=json.dumps(entity.to_dict()),
                    claim_expires_at=now + self._ttl, created_at=now,
                    updated_at=now))

    def unregister(self, entity):
        with self._writer() as connection:
            connection.execute(JOBS.delete().where(
                JOBS.c.board == self._board,
                JOBS.c.uuid == self._uuid(entity.name)))

    def alive(self):
        with self._engine.connect() as connection:
            return list(connection.scalars(
                sqlalchemy.select(JOBS.c.name)
                .where(JOBS.c.board == self._board,
                       JOBS.c.claim_expires_at > models.utcnow())
                .order_by(JOBS.c.name)))
