"""Which operation a server accepts in which state, and where it ends.

One table for the door (:func:`check_allowed`, called while the posting
transaction holds the instance's lock, so the check and the lock are one
decision), the flows (the task_state each sets and the vm_state and
power_state it leaves) and the reconciliation at runner start. Allowed
states follow Nova's ``check_instance_state``: a soft reboot needs an
ACTIVE server, a hard reboot also rescues stopped, paused, suspended and
ERROR ones; every operation needs no task_state (no other operation
running).
"""
import dataclasses

from vmflow import exception, instances, power_states


@dataclasses.dataclass(frozen=True)
class ServerAction:
    """``name``: the action (instance action and flow name);
    ``allowed``: vm_states it starts from; ``task_state``: what it sets
    while it runs; ``vm_state``/``power_state``: where it leaves the
    server when it succeeds."""
    name: str
    allowed: tuple
    task_state: str
    vm_state: str
    power_state: str


REBOOT = ServerAction("reboot", (instances.ACTIVE,), instances.REBOOTING,
                      instances.ACTIVE, power_states.RUNNING)
HARD_REBOOT = ServerAction(
    "reboot", (instances.ACTIVE, instances.STOPPED, instances.PAUSED,
               instances.SUSPENDED, instances.ERROR),
    instances.REBOOTING_HARD, instances.ACTIVE, power_states.RUNNING)
STOP = ServerAction("stop", (instances.ACTIVE, instances.ERROR),
                    instances.POWERING_OFF, instances.STOPPED,
                    power_states.SHUTDOWN)
START = ServerAction("start", (instances.STOPPED,), instances.POWERING_ON,
                     instances.ACTIVE, power_states.RUNNING)
PAUSE = ServerAction("pause", (instances.ACTIVE,), instances.PAUSING,
                     instances.PAUSED, power_states.PAUSED)
UNPAUSE = ServerAction("unpause", (instances.PAUSED,), instances.UNPAUSING,
                       instances.ACTIVE, power_states.RUNNING)
# A managed save leaves the domain shut off with its memory on disk.
SUSPEND = ServerAction("suspend", (instances.ACTIVE,), instances.SUSPENDING,
                       instances.SUSPENDED, power_states.SHUTDOWN)
RESUME = ServerAction("resume", (instances.SUSPENDED,), instances.RESUMING,
                      instances.ACTIVE, power_states.RUNNING)

POWER_ACTIONS = {action.name: action
                 for action in (STOP, START, PAUSE, UNPAUSE, SUSPEND,
                                RESUME)}
BY_TASK_STATE = {action.task_state: action
                 for action in (REBOOT, HARD_REBOOT, *POWER_ACTIONS.values())}
BY_TASK_STATE[instances.REBOOT_STARTED] = REBOOT
BY_TASK_STATE[instances.REBOOT_STARTED_HARD] = HARD_REBOOT


def describe_state(instance):
    """``stopped`` or ``building with task_state scheduling``."""
    if instance["task_state"]:
        return (f"{instance['vm_state']} with task_state "
                f"{instance['task_state']}")
    return instance["vm_state"]


def check_allowed(action, instance, label):
    """Raise InstanceInvalidState unless ``action`` may start on
    ``instance`` (a dict with vm_state, task_state); ``label`` is how the
    user named the server."""
    if (instance["task_state"] is not None
            or instance["vm_state"] not in action.allowed):
        raise exception.InstanceInvalidState(
            action=action.name, server=label,
            state=describe_state(instance),
            allowed=" or ".join(action.allowed))
