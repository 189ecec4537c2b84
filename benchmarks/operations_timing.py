"""Timing posted operations from their instance actions (shared by the
benchmarks that post through the runner)."""
import datetime

import sqlalchemy

from tests.functional.engine import helpers
from vmflow.engine import actions
from vmflow.persistence import models

SECOND = datetime.timedelta(seconds=1)
ACTIONS = models.InstanceAction.__table__


def seconds_until_all_end(db_engine, request_ids, started, timeout,
                          check=lambda: None, context=lambda: ""):
    """Seconds from ``started`` (naive UTC, as the actions' times) to the
    finish of the last of the instance actions of ``request_ids``, once
    all of them finished; AssertionError (with ``context()``) when one did
    not succeed. ``check()`` runs at every poll (raise to stop waiting)."""
    request_ids = list(request_ids)
    done = sqlalchemy.select(
        sqlalchemy.func.count(), sqlalchemy.func.max(ACTIONS.c.finish_time)
    ).where(ACTIONS.c.request_id.in_(request_ids),
            ACTIONS.c.finish_time.is_not(None))

    def finished():
        check()
        with db_engine.connect() as connection:
            count, last = connection.execute(done).one()
        return last if count == len(request_ids) else None

    last = helpers.wait_until(finished, timeout, "every operation to end",
                              interval=0.1)
    with db_engine.connect() as connection:
        failed = connection.execute(sqlalchemy.select(ACTIONS).where(
            ACTIONS.c.request_id.in_(request_ids),
            ACTIONS.c.result != actions.SUCCESS)).all()
    if failed:
        raise AssertionError(f"{len(failed)} operations failed, first: "
                             f"{failed[0]}\n{context()}")
    return (last - started) / SECOND
