"""Tasks that write the instance's own row: its states and faults."""
from vmflow import instances, migrations, power_states, server_actions
from vmflow.flows import constants
from vmflow.persistence import api, models
from vmflow.resources import claims
from vmflow.tasks import base


class MarkInstanceErrorOnRevert(base.VmflowTask):
    """Revert-only sentinel: the first task of every flow.

    ``task_states`` are the task_states the flow may leave the instance in
    (:data:`vmflow.instances.ANY` for delete, which starts from any).

    Reversion strategy: put the instance in ERROR, clear its task_state and
    record a fault naming the step that failed last and its message. Unlike
    other tasks it acts even when its own execute failed: it is the flow's
    failure handler, not an undo. Safe twice: an instance already in ERROR
    without task_state is left alone, and the same fault is not recorded
    twice.
    """

    def __init__(self, task_states, **kwargs):
        super().__init__(**kwargs)
        self.task_states = task_states

    def execute(self, instance_uuid):
        return None

    def revert(self, result, instance_uuid, flow_failures=None, **kwargs):
        message, details = failure_fault(flow_failures)
        with api.writer_scope() as session:
            self.record_failure(session, instance_uuid, message, details)

    def record_failure(self, session, instance_uuid, message, details):
        instances.mark_error(session, instance_uuid, self.task_states,
                             message, details=details)


def failure_fault(flow_failures):
    """(message, details) of the fault for the step that failed last."""
    step, failure = base.latest_failure(flow_failures)
    if failure is None:
        return "the operation failed", None
    return f"{step} failed: {failure.exception_str}", failure.traceback_str


class RestoreInstanceStateOnRevert(MarkInstanceErrorOnRevert):
    """Revert-only sentinel of the power operations (stop, start, pause,
    unpause, suspend, resume): the first task of their flows.

    Reversion strategy: give the server back in the vm_state it had (only
    the flow's last step changes it): clear its task_state and record a
    fault naming the step that failed last, as Nova does for a failed
    power operation. The domain steps have undone what they did; where a
    guest stayed off, the power-state sync records it. Safe twice: no
    task_state to clear, and the same fault is not recorded twice.
    """

    def record_failure(self, session, instance_uuid, message, details):
        instances.clear_task_state(session, instance_uuid, self.task_states,
                                   message, details=details)


class MarkInstanceTaskState(base.VmflowTask):
    """Set the task_state of the operation ``action``
    (:mod:`vmflow.server_actions`): a compare-and-swap from one of
    ``from_task_states`` (None for an operation's first write), refused
    unless vm_state is one ``action`` starts from. Done already (the same
    task_state) is fine: it runs again after a crash.

    Reversion strategy: none here; the flow's sentinel clears the
    task_state (or puts the instance in ERROR).
    """

    def __init__(self, action, task_state=None, from_task_states=(None,),
                 **kwargs):
        self.action = action
        self.task_state = task_state or action.task_state
        self.from_task_states = tuple(from_task_states)
        kwargs.setdefault("name", "MarkInstance" + camel(self.task_state))
        super().__init__(**kwargs)

    def execute(self, instance_uuid):
        return mark_task_state(instance_uuid, self.action, self.task_state,
                               self.from_task_states)


def mark_task_state(instance_uuid, action, task_state, from_task_states):
    """What :class:`MarkInstanceTaskState` writes (one transaction)."""
    with api.writer_scope() as session:
        instance = instances.get_instance(session, instance_uuid)
        if instance["task_state"] == task_state:
            return instance
        if instance["vm_state"] not in action.allowed:
            server_actions.check_allowed(action, instance, instance["name"])
        return instances.update_instance(session, instance_uuid,
                                         from_task_states,
                                         task_state=task_state)


class MarkInstanceDone(base.VmflowTask):
    """An operation's last step: the vm_state and power_state ``action``
    ends in, task_state cleared (compare-and-swap from the operation's own
    task_states). Done already is fine: it runs again after a crash.

    Reversion strategy: none; it is its flow's last step, so no later
    step can fail after it.
    """

    def __init__(self, action, task_states, **kwargs):
        self.action = action
        self.task_states = tuple(task_states)
        kwargs.setdefault("name", "MarkInstance" + camel(action.past))
        super().__init__(**kwargs)

    def execute(self, instance_uuid):
        with api.writer_scope() as session:
            instance = instances.get_instance(session, instance_uuid)
            if (instance["vm_state"], instance["task_state"]) == (
                    self.action.vm_state, None):
                return instance
            return instances.update_instance(
                session, instance_uuid, self.task_states,
                vm_state=self.action.vm_state, task_state=None,
                power_state=self.action.power_state)


def camel(words):
    """``powering-off`` or ``reboot_started`` -> ``PoweringOff`` /
    ``RebootStarted`` (task names from state names)."""
    return "".join(part.capitalize()
                   for part in words.replace("-", "_").split("_"))


class MarkInstanceActive(base.VmflowTask):
    """The build's last step: vm_state ACTIVE on ``host_name``.

    Reversion strategy: put the instance back to building/scheduling with
    no host, if it is still the ACTIVE instance this task made.
    """

    def execute(self, instance_uuid, host_name, power_state):
        with api.writer_scope() as session:
            instance = instances.get_instance(session, instance_uuid)
            if (instance["vm_state"], instance["task_state"],
                    instance["host"]) == (instances.ACTIVE, None, host_name):
                return instance
            return instances.update_instance(
                session, instance_uuid, (instances.SCHEDULING,),
                vm_state=instances.ACTIVE, task_state=None,
                power_state=power_state, host=host_name,
                launched_at=models.utcnow())

    def revert(self, result, instance_uuid, host_name, **kwargs):
        if base.failed(result):
            return
        with api.writer_scope() as session:
            instance = instances.get_instance(session, instance_uuid)
            if (instance["vm_state"], instance["task_state"],
                    instance["host"]) != (instances.ACTIVE, None, host_name):
                return
            instances.update_instance(
                session, instance_uuid, (None,), vm_state=instances.BUILDING,
                task_state=instances.SCHEDULING,
                power_state=power_states.NOSTATE,
                host=None, launched_at=None)


class MarkInstanceDeleting(base.VmflowTask):
    """Delete's first step: task_state ``deleting`` (from any task_state,
    so an instance whose build never finished can be deleted too).

    Reversion strategy: none here; the sentinel puts the instance in ERROR
    and clears task_state, and running delete again finishes it.
    """

    def execute(self, instance_uuid):
        with api.writer_scope() as session:
            instance = instances.get_instance(session, instance_uuid)
            if (instance["vm_state"] == instances.DELETED
                    or instance["task_state"] == instances.DELETING):
                return instance
            return instances.update_instance(
                session, instance_uuid, instances.ANY,
                task_state=instances.DELETING)


class FindInstanceHosts(base.VmflowTask):
    """Hosts delete must clean: the instance's host, both ends of a resize
    in flight, and every host where it (or its resize) still holds a claim
    (a failed build leaves no host but may have leaked there; claims are
    the first thing a build takes on a host and the last it gives back).

    Reversion strategy: nothing to undo (it only reads).
    """

    default_provides = constants.INSTANCE_HOSTS

    def execute(self, instance_uuid):
        with api.session_scope() as session:
            instance = instances.get_instance(session, instance_uuid)
            names = set()
            for consumer in migrations.consumers_of(session, instance_uuid):
                names.update(claims.claim_hosts(session, consumer))
            for migration in migrations.in_flight(session, instance_uuid):
                names.update(migrations.hosts_of(migration))
        if instance["host"]:
            names.add(instance["host"])
        return sorted(names)


class MarkInstanceDeleted(base.VmflowTask):
    """Delete's last step: vm_state DELETED, task_state cleared.

    Reversion strategy: none; if it fails the sentinel puts the instance in
    ERROR, and delete runs again.
    """

    def execute(self, instance_uuid):
        with api.writer_scope() as session:
            instance = instances.get_instance(session, instance_uuid)
            if instance["vm_state"] == instances.DELETED:
                return instance
            now = models.utcnow()
            return instances.update_instance(
                session, instance_uuid, (instances.DELETING,),
                vm_state=instances.DELETED, task_state=None,
                power_state=power_states.NOSTATE, deleted_at=now,
                terminated_at=now)
