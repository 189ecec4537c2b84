"""Logging and pacing retries while a dependency (the job board, the
database) is down: one warning when it fails, one when it works again,
exponential back-off with a cap in between, so a long outage costs a few
log lines instead of one traceback per retry. ``vmflow-engine`` puts
:class:`RepeatedOutageTracebacks` on its log handlers: of all the
warnings one outage causes (the board, the heartbeat, every job's
keep-alive, TaskFlow's conductor), one shows the traceback."""
import logging
import time

INITIAL_DELAY = 0.2
MAX_DELAY = 10.0
# One outage fails the board, the heartbeat and every job's keep-alive at
# once: an outage's traceback is shown once an hour per process.
TRACEBACK_EVERY_SECONDS = 3600.0
_last_traceback = {"at": None}


class OutageLog:
    """Tracks one dependency's outage; ``what`` names it in the log."""

    def __init__(self, log, what, initial_delay=INITIAL_DELAY,
                 max_delay=MAX_DELAY):
        self._log = log
        self._what = what
        self._initial = initial_delay
        self._max = max_delay
        self._delay = None
        self._since = None
        self._failures = 0

    @property
    def down(self):
        return self._since is not None

    def failed(self, error):
        """Record a failed attempt; returns how long to wait before the
        next one (doubling up to the cap)."""
        self._failures += 1
        if self._since is None:
            self._since = time.monotonic()
            self._delay = self._initial
            self._log.warning("%s failed: %s; retrying with back-off (at "
                              "most every %.0f s) until it works again",
                              self._what, _first_line(error), self._max,
                              exc_info=error)
        else:
            self._delay = min(self._delay * 2, self._max)
            self._log.debug("%s failed again: %s", self._what,
                            _first_line(error))
        return self._delay

    def succeeded(self):
        if self._since is None:
            return
        self._log.warning("%s works again after %.1f s (%d failed "
                          "attempts)", self._what,
                          time.monotonic() - self._since, self._failures)
        self._since = self._delay = None
        self._failures = 0


def _traceback_due(error):
    """``error`` if no outage traceback was shown lately, else None (one
    outage surfaces as the board's JobFailure, SQLAlchemy's errors and
    TaskFlow's wrappings of them, each with a different chain)."""
    now = time.monotonic()
    shown = _last_traceback["at"]
    if shown is not None and now - shown < TRACEBACK_EVERY_SECONDS:
        return None
    _last_traceback["at"] = now
    return error


def _first_line(error):
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def is_outage(error):
    """True when ``error`` (or what caused it) is a dependency that does
    not answer: a database error, a job board failure, a broken
    connection."""
    from sqlalchemy import exc as sa_exc
    from taskflow import exceptions as tf_exc
    while error is not None:
        if isinstance(error, (sa_exc.DBAPIError, tf_exc.JobFailure,
                              tf_exc.StorageFailure, ConnectionError)):
            return True
        error = error.__cause__ or error.__context__
    return False


class RepeatedOutageTracebacks(logging.Filter):
    """A handler filter that keeps the line of a record but drops its
    traceback when it is an outage whose type's traceback was shown in
    the last hour (TaskFlow's conductor and notifier log one per failed
    job and listener call)."""

    def filter(self, record):
        error = record.exc_info[1] if record.exc_info else None
        if is_outage(error) and _traceback_due(error) is None:
            record.exc_info = record.exc_text = None
        return True
