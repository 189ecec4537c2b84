"""One lazily opened, self-healing libvirt connection per URI.

:class:`LibvirtConnection` opens its URI on first use. Its ``get()``
checks ``isAlive()`` each time and reopens a connection that broke (for
example because libvirtd restarted), up to ``[libvirt] connection_retries``
extra attempts, before raising
:class:`~vmflow.exception.HypervisorUnavailable`.

libvirt's default event loop runs in one daemon thread per process, so the
client notices a closed socket (and keepalive timeouts) on its own and
``isAlive()`` turns False without waiting for the next call to fail.

Listeners (:meth:`LibvirtConnection.add_listener`) hear of the domain
lifecycle events and of the loss of the connection. libvirt allows one
close callback per connection, so each ``virConnect`` gets one close and
one lifecycle callback that fan out to every listener, registered again
on every connection ``get()`` opens. The callbacks run on the event loop
thread: listeners must only queue what they hear.
"""
import logging
import threading
import time

import libvirt

from vmflow import conf as vmflow_conf
from vmflow import exception

LOG = logging.getLogger(__name__)
CONF = vmflow_conf.CONF

_CONNECTION_ERROR_CODES = (libvirt.VIR_ERR_NO_CONNECT,
                           libvirt.VIR_ERR_INVALID_CONN)
_CONNECTION_ERROR_DOMAINS = (libvirt.VIR_FROM_REMOTE, libvirt.VIR_FROM_RPC)

_setup_lock = threading.Lock()
_setup_done = False


def _ignore_libvirt_error(_context, error):
    """libvirt reports each error to stderr unless a handler is set; the
    error is raised as a libvirtError anyway, so only keep a debug trace."""
    LOG.debug("libvirt: %s", error[2] if len(error) > 2 else error)


def _run_event_loop():
    while True:
        libvirt.virEventRunDefaultImpl()


def setup_libvirt():
    """Once per process: error handler and default event loop thread.

    The event loop must be registered before the first connection is
    opened, so every open goes through here.
    """
    global _setup_done
    with _setup_lock:
        if _setup_done:
            return
        libvirt.registerErrorHandler(_ignore_libvirt_error, None)
        libvirt.virEventRegisterDefaultImpl()
        threading.Thread(target=_run_event_loop, name="libvirt-event-loop",
                         daemon=True).start()
        _setup_done = True


def is_connection_error(exc):
    """True when ``exc`` means the connection itself is broken or absent."""
    code = exc.get_error_code()
    if code in _CONNECTION_ERROR_CODES:
        return True
    return (code in (libvirt.VIR_ERR_SYSTEM_ERROR,
                     libvirt.VIR_ERR_INTERNAL_ERROR)
            and exc.get_error_domain() in _CONNECTION_ERROR_DOMAINS)


def error_text(exc):
    """libvirt's own message for ``exc`` on one line."""
    text = exc.get_error_message() or str(exc)
    return " ".join(text.split())


# Why libvirt closed a connection, in words; closing it ourselves
# (VIR_CONNECT_CLOSE_REASON_CLIENT) is no loss.
_CLOSE_REASONS = {
    libvirt.VIR_CONNECT_CLOSE_REASON_ERROR: "connection error",
    libvirt.VIR_CONNECT_CLOSE_REASON_EOF: "the hypervisor closed the "
                                          "connection",
    libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE: "keepalive timed out",
}


def _version_text(number):
    major, rest = divmod(number, 1000000)
    minor, micro = divmod(rest, 1000)
    return f"{major}.{minor}.{micro}"


class LibvirtConnection:
    """A libvirt URI and the live ``virConnect`` opened from it."""

    def __init__(self, uri, retries=None):
        self.uri = uri
        self.retries = (CONF.libvirt.connection_retries
                        if retries is None else retries)
        self._conn = None
        self._lock = threading.Lock()
        self._listeners = {}
        self._listening_on = None  # the virConnect with our callbacks
        self._event_callback_id = None

    def __repr__(self):
        return f"LibvirtConnection({self.uri!r})"

    def get(self):
        """Return a live ``virConnect``, reopening a broken one."""
        with self._lock:
            if self._conn is not None and self._alive(self._conn):
                return self._conn
            if self._conn is not None:
                LOG.warning("libvirt connection to %s broke; reopening",
                            self.uri)
                self._close_quietly(self._conn)
                self._conn = None
            self._conn = self._open_with_retries()
            if self._listeners:
                self._register_callbacks(self._conn)
            return self._conn

    # -- listeners --------------------------------------------------------

    def add_listener(self, key, on_domain_event, on_closed):
        """Call ``on_domain_event(domain_uuid, event, detail)`` (libvirt's
        lifecycle event numbers) and ``on_closed(reason)`` (a sentence)
        from now on, on this connection and on every one reopened later.
        Opens the connection now (HypervisorUnavailable when it does not
        answer). Adding ``key`` again replaces its callbacks."""
        self._listeners[key] = (on_domain_event, on_closed)
        conn = self.get()
        with self._lock:
            # get() registered them if it opened a connection; another
            # thread may have reopened it since.
            if self._conn is conn and self._listening_on is not conn:
                self._register_callbacks(conn)

    def remove_listener(self, key):
        """Stop calling ``key``'s callbacks (the connection's stay: they
        fan out to nobody)."""
        self._listeners.pop(key, None)

    def _register_callbacks(self, conn):
        """Hold ``self._lock``."""
        try:
            conn.registerCloseCallback(self._closed, None)
            self._event_callback_id = conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                self._domain_event, None)
        except libvirt.libvirtError as exc:
            raise exception.HypervisorUnavailable(
                uri=self.uri, reason=error_text(exc)) from None
        self._listening_on = conn

    def _domain_event(self, _conn, domain, event, detail, _opaque):
        try:
            uuid = domain.UUIDString()
        except libvirt.libvirtError:
            return  # the domain is gone: the periodic sync sees it
        for on_domain_event, _on_closed in list(self._listeners.values()):
            on_domain_event(uuid, event, detail)

    def _closed(self, _conn, reason, _opaque):
        words = _CLOSE_REASONS.get(reason)
        if words is None:
            return
        LOG.debug("libvirt connection to %s closed: %s", self.uri, words)
        for _on_domain_event, on_closed in list(self._listeners.values()):
            on_closed(words)

    def _open_with_retries(self):
        setup_libvirt()
        attempts = self.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                if attempt == attempts or not is_connection_error(exc):
                    raise exception.HypervisorUnavailable(
                        uri=self.uri, reason=error_text(exc)) from None
                LOG.debug("opening %s failed (attempt %d of %d): %s",
                          self.uri, attempt, attempts, error_text(exc))
            time.sleep(CONF.libvirt.poll_interval_seconds)

    @staticmethod
    def _alive(conn):
        try:
            return conn.isAlive() == 1
        except libvirt.libvirtError:
            return False

    def _close_quietly(self, conn):
        # Closing a connection that is already broken only fails; nothing
        # leaks on our side, so a failure here is not worth reporting.
        if self._listening_on is conn:
            # The callbacks hold a reference: without this the connection
            # (and test:///default's state) would outlive close().
            self._listening_on = None
            for step in (conn.unregisterCloseCallback,
                         lambda: conn.domainEventDeregisterAny(
                             self._event_callback_id)):
                try:
                    step()
                except libvirt.libvirtError as exc:
                    LOG.debug("unregistering callbacks: %s", error_text(exc))
        try:
            conn.close()
        except libvirt.libvirtError as exc:
            LOG.debug("closing a broken libvirt connection: %s",
                      error_text(exc))

    def health_check(self):
        """Hostname, libvirt and hypervisor versions as a dict.

        Raises HypervisorUnavailable with libvirt's reason on one line.
        """
        conn = self.get()
        try:
            return {
                "uri": conn.getURI(),
                "hostname": conn.getHostname(),
                "libvirt_version": _version_text(conn.getLibVersion()),
                "hypervisor_type": conn.getType(),
                "hypervisor_version": _version_text(conn.getVersion()),
            }
        except libvirt.libvirtError as exc:
            raise exception.HypervisorUnavailable(
                uri=self.uri, reason=error_text(exc)) from None

    def close(self):
        with self._lock:
            if self._conn is not None:
                self._close_quietly(self._conn)
                self._conn = None


_cache_lock = threading.Lock()
_cache = {}


def get_connection(uri):
    """The process-wide :class:`LibvirtConnection` for ``uri``."""
    with _cache_lock:
        connection = _cache.get(uri)
        if connection is None:
            connection = _cache[uri] = LibvirtConnection(uri)
        return connection


def close_all():
    """Close and forget every cached connection (tests, shutdown)."""
    with _cache_lock:
        connections = list(_cache.values())
        _cache.clear()
    for connection in connections:
        connection.close()
