"""The runner's watch over its hosts' hypervisors (a runner service).

:class:`HostWatch` subscribes to the events of every host's hypervisor
and

* keeps ``instances.power_state`` true (:mod:`.power_sync`): from each
  power event, from a sync of every host at start and every
  ``[engine] power_sync_interval_seconds``, and from a sync of a host
  whenever its connection is (re)established (events missed while no
  runner listened);
* makes hosts follow their hypervisor: a host whose connection is lost
  (or that does not answer) is disabled with a reason starting ``AUTO: ``,
  tried again every ``[engine] host_retry_seconds``, and enabled again
  once it answers -- only if vmflow disabled it: a host an operator
  disabled stays disabled (its power states are still kept true).

Threads: the driver's callbacks (libvirt's event loop thread) only put
what they hear on a queue. One worker thread takes it off and does every
database write. A connector thread opens the subscriptions (a host that
does not answer may take a while to refuse) and reports the outcome on
the same queue, so one host that is down delays nobody else.
"""
import functools
import logging
import queue
import threading
import time

from vmflow import conf as vmflow_conf
from vmflow import drivers, exception
from vmflow.engine import jobboard, outage, power_sync
from vmflow.inventory import hosts as host_inventory
from vmflow.persistence import api

LOG = logging.getLogger(__name__)

# Queue items: (kind, host name, detail).
POWER_EVENT = "power"          # detail: (instance uuid, power state)
CONNECTION_LOST = "lost"       # detail: reason
HOST_UP = "up"                 # detail: the host's driver
HOST_DOWN = "down"             # detail: the error
STOP = "stop"


class HostWatch:
    """One runner's subscriptions to its hosts' hypervisors."""

    def __init__(self, conf, who, db=None, board=None):
        self._conf = conf
        self._who = who
        self._db = db
        self._board = board
        self._queue = queue.Queue()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._watched = {}   # host name -> driver, while subscribed
        self._outages = {}   # host name -> OutageLog
        self._threads = []
        self._lock_check = None
        self._own_board = None
        self.key = f"host-watch:{who}:{id(self)}"

    def __repr__(self):
        return f"HostWatch({self._who!r})"

    # -- service ----------------------------------------------------------

    def start(self):
        """Subscribe to every host that answers, disable those that do not,
        sync power states, then keep at it in the background."""
        self._db = self._db or api.get_engine(self._conf)
        if self._board is None:
            self._board = self._own_board = jobboard.get_jobboard(self._conf)
        self._lock_check = power_sync.LockCheck(self._board)
        self._connect_round()
        self._drain()  # each host that answers is synced as it comes up
        for target, name in ((self._work, "host-watch-worker"),
                             (self._connect_loop, "host-watch-connector")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self):
        self._stopped.set()
        self._queue.put((STOP, None, None))
        for thread in self._threads:
            thread.join()
        with self._lock:
            watched, self._watched = self._watched, {}
        for driver in watched.values():
            driver.unwatch_events(self.key)
        if self._own_board is not None:
            self._own_board.close()

    # -- what the connector does -------------------------------------------

    def _hosts_to_watch(self):
        """Every host: a disabled one takes no new instances, but the power
        states of those it has are kept true (as Nova's power sync runs on
        a disabled compute service)."""
        with api.session_scope(self._db) as session:
            return host_inventory.list_hosts(session)

    def _connect_round(self):
        try:
            wanted = self._hosts_to_watch()
        except Exception as error:  # the database is down: next round
            self._outage("the host list").failed(error)
            return
        self._outage("the host list").succeeded()
        names = {host["name"] for host in wanted}
        with self._lock:
            gone = [name for name in self._watched if name not in names]
            watched = set(self._watched)
        for name in gone:  # deleted
            self._forget(name)
        for host in wanted:
            if host["name"] not in watched:
                self._connect(host)

    def _connect(self, host):
        driver = drivers.get_driver(host, self._conf)
        name = host["name"]
        try:
            driver.watch_events(
                self.key,
                lambda uuid, state: self._queue.put(
                    (POWER_EVENT, name, (uuid, state))),
                lambda reason: self._queue.put(
                    (CONNECTION_LOST, name, reason)))
        except exception.VmflowError as error:
            self._queue.put((HOST_DOWN, name, error))
        else:
            self._queue.put((HOST_UP, name, driver))

    def _connect_loop(self):
        while not self._stopped.wait(self._conf.engine.host_retry_seconds):
            self._connect_round()

    # -- what the worker does ----------------------------------------------

    def _work(self):
        interval = self._conf.engine.power_sync_interval_seconds
        next_sync = time.monotonic() + interval
        while True:
            timeout = max(next_sync - time.monotonic(), 0)
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                self._sync_all()
                next_sync = time.monotonic() + interval
                continue
            if item[0] == STOP:
                return
            self._handle_safely(item)

    def _drain(self):
        """Handle what is queued now (start-up, before the worker runs)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            self._handle_safely(item)

    def _handle_safely(self, item):
        kind, name, detail = item
        try:
            self._handle(kind, name, detail)
        except Exception as error:  # the database is down, most likely
            self._outage("the database").failed(error)
        else:
            self._outage("the database").succeeded()

    def _handle(self, kind, name, detail):
        if kind == POWER_EVENT:
            self._power_event(name, *detail)
        elif kind == HOST_UP:
            self._host_up(name, detail)
        elif kind == HOST_DOWN:
            self._host_down(name, detail)
        elif kind == CONNECTION_LOST:
            self._connection_lost(name, detail)

    def _power_event(self, name, instance_uuid, event_state):
        with self._lock:
            driver = self._watched.get(name)
        if driver is None:
            return  # lost meanwhile: the sync after reconnecting sees it
        try:  # the state now, not the event's: events may be late
            state = driver.get_power_state(instance_uuid)
        except exception.DomainNotFound:
            return  # undefined: not a power change (deletes are flows)
        except exception.HypervisorUnavailable:
            return  # its loss is queued too
        outcome = power_sync.sync_instance(
            self._db, self._lock_check, instance_uuid, name, state,
            functools.partial(power_sync.current_power_state, driver,
                              instance_uuid))
        LOG.debug("Power event %s (now %s) of %s on host %s: %s",
                  event_state, state, instance_uuid, name, outcome)

    def _host_up(self, name, driver):
        with self._lock:
            self._watched[name] = driver
        self._outage(f"host {name}").succeeded()
        with api.writer_scope(self._db) as session:
            enabled = host_inventory.auto_enable_host(session, name)
        if enabled:
            LOG.warning("Host %s: hypervisor answers again; enabled", name)
        self._sync_host(name, driver)

    def _host_down(self, name, error):
        self._outage(f"host {name}").failed(error)
        self._disable(name, str(error))

    def _connection_lost(self, name, reason):
        self._forget(name)
        self._outage(f"host {name}").failed(ConnectionError(reason))
        self._disable(name, reason)

    def _disable(self, name, reason):
        with api.writer_scope(self._db) as session:
            disabled = host_inventory.auto_disable_host(
                session, name, host_inventory.LOST_CONNECTION_REASON + reason)
        if disabled:
            LOG.warning("Host %s disabled: its hypervisor connection is "
                        "lost (%s); trying again every %g s", name, reason,
                        self._conf.engine.host_retry_seconds)

    def _forget(self, name):
        with self._lock:
            driver = self._watched.pop(name, None)
        if driver is not None:
            driver.unwatch_events(self.key)

    # -- power sync of whole hosts ------------------------------------------

    def _sync_all(self):
        with self._lock:
            watched = list(self._watched.items())
        for name, driver in watched:
            try:
                self._sync_host(name, driver)
            except Exception as error:  # the database is down
                self._outage("the database").failed(error)

    def _sync_host(self, name, driver):
        try:
            reported = driver.list_power_states()
        except exception.VmflowError as error:
            LOG.debug("Power sync of host %s: %s", name, error)
            return  # a lost connection is reported by its own callback
        outcomes = power_sync.sync_host(self._db, self._lock_check, name,
                                        reported, driver)
        written = sum(1 for value in outcomes.values()
                      if value == power_sync.WRITTEN)
        LOG.debug("Power sync of host %s: %d instance(s), %d written",
                  name, len(outcomes), written)

    def _outage(self, what):
        log = self._outages.get(what)
        if log is None:
            log = self._outages[what] = outage.OutageLog(
                LOG, f"Reaching {what}",
                max_delay=self._conf.engine.host_retry_seconds)
        return log


def host_watch(conf, who):
    """The runner service factory (:data:`.services.SERVICE_FACTORIES`)."""
    return HostWatch(conf, who)
