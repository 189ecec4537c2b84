"""``vmflow server reboot|stop|start|pause|unpause|suspend|resume``.

Each posts its operation's flow as a job (refused in one line, with
nothing changed, when the server's state does not allow it) and, with
``--wait``, shows each step and then the server.

:mod:`vmflow.compute` (TaskFlow and every flow) is imported by ``post``,
when a command runs, not when cliff loads the module (``vmflow help``,
``migration list``).
"""
from vmflow.cli import base
from vmflow.cli import operations as cli_operations
from vmflow.cli import servers as server_commands
from vmflow.inventory import servers
from vmflow.persistence import migration


class _ServerActionCommand(base.ShowOne):
    action = None

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        server_commands.add_server_arguments(parser)
        cli_operations.add_wait_argument(parser)
        return parser

    def post(self, parsed_args):
        from vmflow import compute
        return compute.power_server(self.action, parsed_args.name,
                                    parsed_args.project)

    def take_action(self, parsed_args):
        migration.check_schema()
        request = self.post(parsed_args)
        if not parsed_args.wait:
            return base.as_show(cli_operations.posted(self, request))
        cli_operations.wait_for(self, request, self.action,
                                parsed_args.name)
        with self.session() as session:
            return base.as_show(servers.show_server(
                session, request.instance_uuid))


class RebootServer(_ServerActionCommand):
    """Reboot a server: ACPI shutdown and start again, falling back to a
    hard reboot when the guest ignores ACPI (or --hard: power off,
    redefine from the database, start)."""

    action = "reboot"

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "--hard", action="store_true",
            help="Power off at once, recreate missing disks, redefine the "
                 "domain from the database and start it (also from "
                 "stopped, paused, suspended and error).")
        return parser

    def post(self, parsed_args):
        from vmflow import compute
        return compute.reboot_server(parsed_args.name, parsed_args.hard,
                                     parsed_args.project)


class StopServer(_ServerActionCommand):
    """Stop a server: ACPI shutdown, powered off after [libvirt]
    shutdown_timeout_seconds if the guest is still running."""
    action = "stop"


class StartServer(_ServerActionCommand):
    """Start a stopped server."""
    action = "start"


class PauseServer(_ServerActionCommand):
    """Pause a running server (its memory stays in the host's RAM)."""
    action = "pause"


class UnpauseServer(_ServerActionCommand):
    """Unpause a paused server."""
    action = "unpause"


class SuspendServer(_ServerActionCommand):
    """Suspend a running server (its memory is saved to disk)."""
    action = "suspend"


class ResumeServer(_ServerActionCommand):
    """Resume a suspended server from its saved memory."""
    action = "resume"
