from vmflow.cli import base
from vmflow.inventory import servers


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
        parser.add_argument("name", metavar="NAME_OR_UUID")
        parser.add_argument("--project")
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            return base.as_show(servers.show_server(
                session, parsed_args.name, parsed_args.project))


class ListServerEvents(base.Lister):
    """List a server's actions and the events of each step."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME_OR_UUID")
        parser.add_argument("--project")
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            instance = servers.find_instance(session, parsed_args.name,
                                             parsed_args.project)[0]
            rows = servers.list_events(session, instance.uuid)
        return base.as_columns(rows, servers.EVENT_COLUMNS)
