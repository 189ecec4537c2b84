"""Server commands: list, show, event-list, create, delete, console-log.

:mod:`vmflow.compute` (and through it TaskFlow and every flow) is imported
only by the commands that post an operation: the read-only ones start in a
fraction of the time without it.
"""
from oslo_utils import uuidutils

from vmflow import drivers, exception
from vmflow.cli import base
from vmflow.cli import operations as cli_operations
from vmflow.drivers import base as driver_base
from vmflow.inventory import hosts, servers
from vmflow.persistence import migration


def add_server_arguments(parser):
    """NAME_OR_UUID and --project: how every server command finds one."""
    parser.add_argument("name", metavar="NAME_OR_UUID")
    parser.add_argument("--project")


class ListServers(base.Lister):
    """List servers (instances)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--project")
        parser.add_argument("--deleted", action="store_true",
                            help="include deleted servers")
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            rows = servers.list_servers(session, parsed_args.project,
                                        parsed_args.deleted)
        return base.as_columns(rows, servers.LIST_COLUMNS)


class ShowServer(base.ShowOne):
    """Show a server, its running action and its last fault."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_server_arguments(parser)
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            return base.as_show(servers.show_server(
                session, parsed_args.name, parsed_args.project))


class ListServerEvents(base.Lister):
    """List a server's actions and the events of each step, with their
    durations (seconds) and errors (a deleted server's too: by uuid, or by
    name with --deleted)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_server_arguments(parser)
        parser.add_argument("--deleted", action="store_true",
                            help="find the server among deleted ones too")
        parser.add_argument("--long", action="store_true",
                            help="add the whole traceback of each failure")
        return parser

    def take_action(self, parsed_args):
        include_deleted = (parsed_args.deleted
                           or uuidutils.is_uuid_like(parsed_args.name))
        with self.session() as session:
            instance = servers.find_instance(session, parsed_args.name,
                                             parsed_args.project,
                                             include_deleted)[0]
            rows = servers.list_events(session, instance.uuid)
        return base.as_columns(rows, servers.EVENT_LONG_COLUMNS
                               if parsed_args.long else servers.EVENT_COLUMNS)


class CreateServer(base.ShowOne):
    """Create (build) a server: posts the build flow as a job."""

    def get_parser(self, prog_name):
        from vmflow import compute
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME")
        parser.add_argument("--flavor", required=True)
        parser.add_argument("--image", required=True)
        parser.add_argument("--project", default=compute.DEFAULT_PROJECT)
        parser.add_argument("--host", help="Build on this host only.")
        cli_operations.add_wait_argument(parser)
        return parser

    def take_action(self, parsed_args):
        from vmflow import compute
        migration.check_schema()
        request = compute.create_server(
            parsed_args.name, parsed_args.flavor, parsed_args.image,
            parsed_args.project, parsed_args.host)
        if not parsed_args.wait:
            return base.as_show(cli_operations.posted(self, request))
        cli_operations.wait_for(self, request, "build", parsed_args.name)
        with self.session() as session:
            return base.as_show(servers.show_server(
                session, request.instance_uuid))


class DeleteServer(base.ShowOne):
    """Delete a server: posts the delete flow as a job."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_server_arguments(parser)
        cli_operations.add_wait_argument(parser)
        return parser

    def take_action(self, parsed_args):
        from vmflow import compute
        migration.check_schema()
        request = compute.delete_server(parsed_args.name,
                                        parsed_args.project)
        if not parsed_args.wait:
            return base.as_show(cli_operations.posted(self, request))
        status = cli_operations.wait_for(self, request, "delete",
                                         parsed_args.name)
        return base.as_show({"instance_uuid": request.instance_uuid,
                             "job": request.job_uuid,
                             "result": status.result})


class ShowConsoleLog(base.Command):
    """Print the end of a server's serial console log."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        add_server_arguments(parser)
        parser.add_argument("--max-bytes", type=base.positive_int,
                            default=driver_base.CONSOLE_TAIL_BYTES)
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            instance = servers.find_instance(session, parsed_args.name,
                                             parsed_args.project)[0]
            if instance.host is None:
                raise exception.InvalidInput(
                    reason=f"server {parsed_args.name!r} is on no host "
                           "(it has no console log)")
            host = hosts.show_host(session, instance.host)
        driver = drivers.get_driver(host)
        self.app.stdout.write(driver.read_console_log(
            instance.uuid, parsed_args.max_bytes))
