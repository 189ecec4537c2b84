"""Every operation's flow factory, by the name ``vmflow flow show --flow``
takes (the CLI's own words: ``resize-confirm``, not ``confirmResize``)."""
from vmflow import exception
from vmflow.flows import build, delete, power, reboot, resize

OPERATIONS = {
    "build": build.get_build_flow,
    "delete": delete.get_delete_flow,
    "reboot": reboot.get_reboot_flow,
    "stop": power.get_stop_flow,
    "start": power.get_start_flow,
    "pause": power.get_pause_flow,
    "unpause": power.get_unpause_flow,
    "suspend": power.get_suspend_flow,
    "resume": power.get_resume_flow,
    "resize": resize.get_resize_flow,
    "migrate": resize.get_migrate_flow,
    "resize-confirm": resize.get_confirm_resize_flow,
    "resize-revert": resize.get_revert_resize_flow,
}


def factory_for(operation):
    try:
        return OPERATIONS[operation]
    except KeyError:
        raise exception.InvalidInput(
            reason=f"unknown flow {operation!r}; known: "
                   f"{', '.join(OPERATIONS)}") from None
