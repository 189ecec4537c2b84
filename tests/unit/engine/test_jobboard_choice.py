"""get_jobboard picks the board [jobboard] backend names."""
import sys

import pytest
from taskflow.jobs import backends as taskflow_boards

from vmflow import engine as engine_package
from vmflow import exception
from vmflow.engine import jobboard, jobboard_redis, jobboard_sql
from vmflow.persistence import api


def test_default_is_the_embedded_sql_board(conf, db_engine):
    board = jobboard.get_jobboard(conf)
    assert isinstance(board, jobboard_sql.SQLJobBoard)
    assert board.connected
    assert (board.namespace, board.claim_expiry) == ("vmflow", 30)
    board.close()
    assert not board.connected


def test_redis_board_gets_host_password_and_expiry(conf):
    conf.set_override("backend", "redis", group="jobboard")
    conf.set_override("hosts", ["10.0.0.5:6380"], group="jobboard")
    conf.set_override("password", "pw", group="jobboard")
    conf.set_override("claim_expiry_seconds", 12, group="jobboard")
    board = jobboard.get_jobboard(conf, connect=False)
    assert isinstance(board, jobboard_redis.RedisJobBoard)
    assert board.claim_expiry == 12
    kwargs = board._client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["password"]) == (
        "10.0.0.5", 6380, "pw")


def test_redis_backend_without_the_redis_package_names_the_extra(
        conf, monkeypatch):
    # As on a plain `pip install .`: the redis package cannot be imported.
    monkeypatch.setitem(sys.modules, "redis", None)
    for package, module in ((engine_package, "jobboard_redis"),
                            (taskflow_boards, "impl_redis")):
        monkeypatch.delitem(sys.modules, f"{package.__name__}.{module}")
        monkeypatch.delattr(package, module)
    conf.set_override("backend", "redis", group="jobboard")
    with pytest.raises(exception.MissingExtra) as raised:
        jobboard.get_jobboard(conf, connect=False)
    assert str(raised.value) == (
        "[jobboard] backend = redis needs the Python package redis, which "
        "is not installed: pip install 'vmflow[redis]'")


def test_database_server_without_its_driver_names_the_extra(
        conf, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    with pytest.raises(exception.MissingExtra) as raised:
        api.create_engine("postgresql+psycopg2://u:secret@127.0.0.1/x", conf)
    message = str(raised.value)
    assert "pip install 'vmflow[postgresql]'" in message
    assert "secret" not in message
