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

from vmflow import exception, power_states
from vmflow.instances import (
    ACTIVE, ERROR, PAUSED, PAUSING, POWERING_OFF, POWERING_ON,
    REBOOT_STARTED, REBOOT_STARTED_HARD, REBOOTING, REBOOTING_HARD,
    RESIZE_CONFIRMING, RESIZE_PREP, RESIZE_REVERTING, RESIZED, RESUMING,
    STOPPED, SUSPENDED, SUSPENDING, UNPAUSING)


@dataclasses.dataclass(frozen=True)
class ServerAction:
    """``name``: the action (instance action and flow name); ``past``:
    its past participle (for step names, ``MarkInstanceStopped``);
    ``allowed``: vm_states it starts from; ``task_state``: what it sets
    while it runs; ``vm_state``/``power_state``: where it leaves the
    server when it succeeds."""
    name: str
    past: str
    allowed: tuple
    task_state: str
    vm_state: str
    power_state: str


REBOOT = ServerAction("reboot", "rebooted", (ACTIVE,), REBOOTING,
                      ACTIVE, power_states.RUNNING)
HARD_REBOOT = ServerAction(
    "reboot", "rebooted",
    (ACTIVE, STOPPED, PAUSED, SUSPENDED, ERROR),
    REBOOTING_HARD, ACTIVE, power_states.RUNNING)
STOP = ServerAction("stop", "stopped", (ACTIVE, ERROR), POWERING_OFF,
                    STOPPED, power_states.SHUTDOWN)
START = ServerAction("start", "started", (STOPPED,), POWERING_ON,
                     ACTIVE, power_states.RUNNING)
PAUSE = ServerAction("pause", "paused", (ACTIVE,), PAUSING, PAUSED,
                     power_states.PAUSED)
UNPAUSE = ServerAction("unpause", "unpaused", (PAUSED,), UNPAUSING,
                       ACTIVE, power_states.RUNNING)
# A managed save leaves the domain shut off with its memory on disk.
SUSPEND = ServerAction("suspend", "suspended", (ACTIVE,), SUSPENDING,
                       SUSPENDED, power_states.SHUTDOWN)
RESUME = ServerAction("resume", "resumed", (SUSPENDED,), RESUMING,
                      ACTIVE, power_states.RUNNING)

# Resize and cold migration (Nova's action names). Where they end depends
# on the server: a resize leaves it RESIZED, running if it was active;
# confirm and revert give it back the vm_state it had before the resize
# (power_state None: the flow's last step writes what it found).
RESIZE = ServerAction("resize", "resized", (ACTIVE, STOPPED), RESIZE_PREP,
                      RESIZED, None)
MIGRATE = ServerAction("migrate", "migrated", (ACTIVE, STOPPED),
                       RESIZE_PREP, RESIZED, None)
# From ERROR too: a confirm or revert that failed left the server there,
# and running it again finishes it (the migration's status says which of
# the two may run: migrations.ENDS_FROM).
CONFIRM_RESIZE = ServerAction("confirmResize", "resize-confirmed",
                              (RESIZED, ERROR), RESIZE_CONFIRMING, None,
                              None)
REVERT_RESIZE = ServerAction("revertResize", "resize-reverted",
                             (RESIZED, ERROR), RESIZE_REVERTING, None, None)
RESIZE_ACTIONS = {action.name: action for action in
                  (RESIZE, MIGRATE, CONFIRM_RESIZE, REVERT_RESIZE)}

POWER_ACTIONS = {action.name: action
                 for action in (STOP, START, PAUSE, UNPAUSE, SUSPEND,
                                RESUME)}
BY_TASK_STATE = {action.task_state: action
                 for action in (REBOOT, HARD_REBOOT, *POWER_ACTIONS.values())}
BY_TASK_STATE[REBOOT_STARTED] = REBOOT
BY_TASK_STATE[REBOOT_STARTED_HARD] = HARD_REBOOT


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
