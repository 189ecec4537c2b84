"""Shared parts of the commands that post an operation (``--wait``).

The progress display (rich) and the engine (TaskFlow) are imported when a
command waits or posts, not when a read-only command that shares a module
with one starts.
"""
from vmflow import exception
from vmflow.inventory import servers

WAIT_HELP = ("Wait until the operation ends, showing its progress (steps "
             "done, the step running, the time it took); runs it in this "
             "process when no vmflow-engine is running. Exit 1 with the "
             "fault when it failed.")


def add_wait_argument(parser):
    parser.add_argument("--wait", action="store_true", help=WAIT_HELP)


def wait_for(command, request, action, server):
    """Wait for ``request``, showing its progress on stderr; raise
    OperationFailed with the instance's fault when it did not succeed."""
    from vmflow.cli import progress
    from vmflow.engine import operations
    shown = progress.WaitProgress(request.job_uuid, f"{action} {server}",
                                  command.app.stderr)
    try:
        status = operations.wait_for_operation(
            request.job_uuid, on_progress=shown.step_changed,
            on_poll=shown.polled)
        shown.end(status.succeeded)
    except KeyboardInterrupt:
        raise exception.StoppedWaiting(job=request.job_uuid) from None
    finally:
        shown.close()
    if status.succeeded:
        return status
    with command.session() as session:
        fault = servers.latest_fault(session, request.instance_uuid)
    raise exception.OperationFailed(action=action, server=server,
                                    reason=fault or status.message)


NO_RUNNER_NOTE = ("vmflow: note: no vmflow-engine is running; job {job} "
                  "waits until one runs (or use --wait to run it here)\n")


def posted(command, request):
    """What a command prints about an operation it did not wait for (and a
    note on stderr when no runner will pick it up)."""
    from vmflow.engine import operations
    if not operations.any_runner_alive():
        command.app.stderr.write(NO_RUNNER_NOTE.format(job=request.job_uuid))
    return {"instance_uuid": request.instance_uuid,
            "job": request.job_uuid, "request_id": request.request_id}
