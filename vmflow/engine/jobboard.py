"""Choosing and opening the job board ``[jobboard] backend`` names.

Both boards offer TaskFlow's ``JobBoard`` API plus what the runner and the
posting code use: ``claim_expiry``, ``extend_claim(job, who, expiry=None)``,
``find_job(uuid)``, ``claim_expires_at(job)`` (when the current claim
expires, naive UTC; None when unclaimed), ``unregister_entity(entity)`` and
``alive_entities()``.
"""
import contextlib

from oslo_utils import netutils
from taskflow import exceptions as tf_exc

from vmflow import conf as vmflow_conf
from vmflow import exception
from vmflow.engine import jobboard_sql
from vmflow.persistence import api

BOARD_NAME = "vmflow"
SQL = "sql"
REDIS = "redis"


def _redis_conf(conf):
    group = conf.jobboard
    if len(group.hosts) != 1:
        raise exception.InvalidInput(
            reason="[jobboard] hosts must name exactly one host:port for "
                   f"the redis backend, not {len(group.hosts)}")
    host, port = netutils.parse_host_port(group.hosts[0], default_port=6379)
    board_conf = {"host": host, "port": port, "namespace": group.namespace,
                  "claim_expiry_seconds": group.claim_expiry_seconds}
    if group.password:
        board_conf["password"] = group.password
    return board_conf


def _redis_board_module():
    """:mod:`.jobboard_redis`, imported only when configured: it needs the
    optional ``redis`` package (``vmflow[redis]``)."""
    try:
        from vmflow.engine import jobboard_redis
    except ImportError as error:
        if error.name != "redis":
            raise
        raise exception.MissingExtra(
            what="[jobboard] backend = redis", package="redis",
            extra="redis") from error
    return jobboard_redis


def get_jobboard(conf=vmflow_conf.CONF, persistence=None, engine=None,
                 connect=True):
    """The configured job board (connected unless ``connect`` is False).

    ``persistence`` is the TaskFlow backend the jobs' logbooks load from;
    ``engine`` overrides the database of the SQL board.
    """
    group = conf.jobboard
    if group.backend == SQL:
        board = jobboard_sql.SQLJobBoard(
            BOARD_NAME, {"namespace": group.namespace,
                         "claim_expiry_seconds": group.claim_expiry_seconds},
            engine=engine or api.get_board_engine(conf),
            persistence=persistence)
    elif group.backend == REDIS:
        board = _redis_board_module().RedisJobBoard(
            BOARD_NAME, _redis_conf(conf), persistence=persistence)
    else:
        raise exception.InvalidInput(
            reason=f"unknown [jobboard] backend {group.backend!r}")
    if connect:
        try:
            board.connect()
        except tf_exc.JobFailure as error:
            raise exception.JobBoardUnavailable(
                board=describe(conf), reason=first_line(error)) from error
    return board


def describe(conf=vmflow_conf.CONF):
    """The configured board in words (no password)."""
    group = conf.jobboard
    if group.backend == REDIS:
        return (f"redis {', '.join(group.hosts)} (namespace "
                f"{group.namespace!r})")
    return f"{group.backend} (namespace {group.namespace!r})"


def first_line(error):
    """The innermost cause's first line (TaskFlow wraps driver errors)."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


@contextlib.contextmanager
def opened(conf=vmflow_conf.CONF, board=None, persistence=None):
    """``board`` if given (left open), else the configured board, closed
    on exit."""
    if board is not None:
        yield board
        return
    board = get_jobboard(conf, persistence)
    try:
        yield board
    finally:
        board.close()
