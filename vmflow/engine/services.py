"""Work a runner does beside running jobs, for the hosts it serves.

A runner (:class:`vmflow.engine.runner.Runner`) starts every service of
:func:`runner_services` before it claims its first job and stops them
after its last. A service has ``start()``, which may do its first round of
work synchronously (reconciling stuck instances must happen before any
job is claimed, as Nova's ``init_host`` does before the compute service
takes requests), and ``stop()``, which returns once its threads ended.
A service must keep serving the other hosts while one host is down.
"""
import logging

from vmflow.engine import auto_confirm, host_watch, reconcile

LOG = logging.getLogger(__name__)

# Factories ``factory(conf, who) -> service``, started in this order.
SERVICE_FACTORIES = (
    # First: stuck instances are reconciled before any other service acts
    # on what the database says of them.
    reconcile.ReconcileService,
    # Hosts follow their hypervisor; power states follow the guests.
    host_watch.host_watch,
    # RESIZED servers confirmed after [DEFAULT] resize_confirm_window.
    auto_confirm.AutoConfirmService,
)


class RunnerServices:
    """The services of one runner, started and stopped together."""

    def __init__(self, conf, who, factories=None):
        self._services = [factory(conf, who) for factory in
                          (SERVICE_FACTORIES if factories is None
                           else factories)]
        self._started = []

    def start(self):
        for service in self._services:
            service.start()
            self._started.append(service)

    def stop(self):
        while self._started:
            service = self._started.pop()
            try:
                service.stop()
            except Exception:  # one failing stop must not keep the others
                LOG.exception("Stopping %r failed", service)
