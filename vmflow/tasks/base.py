"""The base class of vmflow's tasks and the helpers they share.

:class:`VmflowTask` names each task after its class (``ReserveQuota``),
which is also the name of its action event, and runs every subclass's
``execute`` and ``revert`` through the test hooks of :mod:`hooks`
(wrapped once, here, when the subclass is defined; TaskFlow still sees
the subclass's own signature through ``functools.wraps``).
"""
import functools
import itertools

from taskflow import task
from taskflow.types import failure as ft

from vmflow import drivers
from vmflow.flows import constants
from vmflow.inventory import hosts
from vmflow.persistence import api
from vmflow.tasks import hooks

# Failures are numbered as they are raised, so the sentinel can tell which
# one came last: TaskFlow's in-memory failure cache still holds a failure
# of a task that failed on one host and then succeeded on the next.
_FAILURE_COUNTER = itertools.count(1)
FAILURE_ORDER = "vmflow_failure_order"


def _task_hosts(kwargs):
    """The hosts a task acts on, for the hooks' ``@<host name>``."""
    return {kwargs.get(constants.HOST_NAME), kwargs.get(constants.DEST_HOST)}


def _hooked_execute(execute):
    @functools.wraps(execute)
    def wrapper(self, *args, **kwargs):
        hooks.crash_point(self.name, "before-execute")
        try:
            hooks.inject_fault(hooks.FAIL_AT, self.name, "execute",
                               _task_hosts(kwargs))
            result = execute(self, *args, **kwargs)
        except Exception as error:
            setattr(error, FAILURE_ORDER, next(_FAILURE_COUNTER))
            raise
        hooks.crash_point(self.name, "after-execute")
        return result
    return wrapper


def _hooked_revert(revert):
    @functools.wraps(revert)
    def wrapper(self, *args, **kwargs):
        hooks.inject_fault(hooks.FAIL_REVERT_AT, self.name, "revert",
                           _task_hosts(kwargs))
        result = revert(self, *args, **kwargs)
        hooks.crash_point(self.name, "during-revert")
        return result
    return wrapper


class VmflowTask(task.Task):
    """A task named after its class, run through the test hooks.

    Reversion strategy (default): nothing to undo.
    """

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name or type(self).__name__, **kwargs)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for method, hook in (("execute", _hooked_execute),
                             ("revert", _hooked_revert)):
            if method in cls.__dict__:
                setattr(cls, method, hook(cls.__dict__[method]))

    def revert(self, result, **kwargs):
        """Nothing to undo."""


VmflowTask.revert = _hooked_revert(VmflowTask.revert)


def failed(result):
    """True when ``result`` is the Failure of the task's own execute."""
    return isinstance(result, ft.Failure)


def latest_failure(failures):
    """The ``(atom name, Failure)`` raised last among ``failures``.

    Failures raised in this process carry their order; ones loaded from
    the logbook after a restart do not and count as older (TaskFlow only
    keeps the current failure of each atom there), latest in flow order.
    """
    if not failures:
        return None, None
    ranked = [(getattr(failure.exception, FAILURE_ORDER, 0), index, name,
               failure)
              for index, (name, failure) in enumerate(failures.items())]
    _order, _index, name, failure = max(ranked, key=lambda item: item[:2])
    return name, failure


def get_driver(host_name):
    """The driver of the registered host ``host_name``."""
    with api.session_scope() as session:
        host = hosts.show_host(session, host_name)
    return drivers.get_driver(host)


def on_each_host(host_names, operation):
    """``{host: operation(driver)}`` for every host, in order."""
    return {name: operation(get_driver(name)) for name in host_names}
