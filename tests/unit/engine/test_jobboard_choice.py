"""get_jobboard picks the board [jobboard] backend names."""
from vmflow.engine import jobboard, jobboard_redis, jobboard_sql


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
