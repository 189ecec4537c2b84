"""An outage costs a warning when it starts and one when it ends, with
exponential back-off between retries, and one traceback per outage."""
import logging
import sys

from sqlalchemy import exc as sa_exc

from vmflow.engine import outage


def db_error():
    return sa_exc.OperationalError("SELECT 1", {}, ConnectionError("gone"))


def test_one_warning_per_state_change_and_capped_back_off(caplog,
                                                          monkeypatch):
    monkeypatch.setitem(outage._last_traceback, "at", None)
    log = logging.getLogger("vmflow.test.outage")
    tracker = outage.OutageLog(log, "The board", initial_delay=0.5,
                               max_delay=3)
    with caplog.at_level(logging.DEBUG, logger="vmflow.test.outage"):
        delays = [tracker.failed(db_error()) for _ in range(6)]
        tracker.succeeded()
        tracker.succeeded()
    assert delays == [0.5, 1, 2, 3, 3, 3]
    warnings = [record for record in caplog.records
                if record.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].getMessage().startswith(
        "The board failed: OperationalError: ")
    assert warnings[0].exc_info is not None
    assert warnings[1].getMessage().startswith("The board works again after")
    assert warnings[1].getMessage().endswith("(6 failed attempts)")
    assert not tracker.down


def test_one_outage_traceback_then_lines_only(monkeypatch):
    monkeypatch.setitem(outage._last_traceback, "at", None)
    quiet = outage.RepeatedOutageTracebacks()
    records = []
    for _ in range(3):
        try:
            raise db_error()
        except sa_exc.OperationalError:
            record = logging.LogRecord("taskflow", logging.WARNING, "x", 1,
                                       "Job execution failed", (),
                                       sys.exc_info())
            quiet.filter(record)
            records.append(record)
    assert [record.exc_info is not None for record in records] == [
        True, False, False]


def test_other_errors_keep_their_tracebacks(monkeypatch):
    monkeypatch.setitem(outage._last_traceback, "at", None)
    quiet = outage.RepeatedOutageTracebacks()
    for _ in range(2):
        error = RuntimeError("a bug")
        record = logging.LogRecord("taskflow", logging.WARNING, "x", 1,
                                   "failed", (), (RuntimeError, error, None))
        quiet.filter(record)
        assert record.exc_info is not None
