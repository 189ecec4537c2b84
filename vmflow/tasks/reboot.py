"""The soft reboot's fallback to a hard one, as flow atoms.

:class:`FallBackToHardReboot` is the retry controller of the reboot's
attempts: it provides ``reboot_method``, the requested ``reboot_type``
first and ``hard`` after a soft attempt failed; :class:`SelectRebootMethod`
passes it on to the graph's deciders, which run the matching path and
leave the other one IGNOREd, so the persisted atoms show which path ran.
"""
from taskflow import retry

from vmflow import server_actions
from vmflow.flows import constants
from vmflow.tasks import base, instance


class FallBackToHardReboot(retry.Retry):
    """Provides ``reboot_method``: ``reboot_type`` on the first attempt,
    ``hard`` on the next. A failed soft attempt (the guest ignored ACPI,
    or any soft step failed) is reverted and retried hard; a failed hard
    attempt reverts the whole reboot (its sentinel then records ERROR).
    """

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name or type(self).__name__,
                         provides=constants.REBOOT_METHOD, **kwargs)

    def execute(self, history, reboot_type, *args, **kwargs):
        if not len(history):
            return reboot_type
        return constants.HARD

    def on_failure(self, history, *args, **kwargs):
        if len(history) and history[-1][0] == constants.SOFT:
            return retry.RETRY
        # The whole reboot: TaskFlow's REVERT would stop at this retry's
        # own subflow when no retry encloses it.
        return retry.REVERT_ALL

    def revert(self, history, *args, **kwargs):
        return None


class SelectRebootMethod(base.VmflowTask):
    """Pass ``reboot_method`` to the deciders of the two paths.

    Reversion strategy: nothing to undo (it only chooses).
    """

    def execute(self, reboot_method):
        return reboot_method


def runs_path(method):
    """The decider of the path of ``method``: True when SelectRebootMethod
    chose it."""
    def decide(history):
        return all(chosen == method for chosen in history.values())
    decide.__name__ = f"runs_{method}_path"
    return decide


class MarkInstanceRebooting(base.VmflowTask):
    """The reboot's first write: task_state ``rebooting`` for a soft
    reboot, ``rebooting_hard`` for a hard one, each refused unless the
    vm_state is one that reboot type starts from.

    Reversion strategy: none here; the sentinel puts the instance in
    ERROR with a fault.
    """

    def execute(self, instance_uuid, reboot_type):
        action = (server_actions.REBOOT if reboot_type == constants.SOFT
                  else server_actions.HARD_REBOOT)
        return instance.mark_task_state(instance_uuid, action,
                                        action.task_state, (None,))
