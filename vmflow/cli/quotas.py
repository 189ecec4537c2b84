from vmflow.cli import base
from vmflow.inventory import quotas
from vmflow.persistence import models

COLUMNS = ("resource", "limit", "in_use", "source")
LIMIT = base.column_int(models.QuotaLimit.hard_limit, quotas.UNLIMITED,
                        "limit")


class SetQuota(base.Lister):
    """Set a project's quota limits (-1: unlimited)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("project")
        for option in ("--instances", "--cores", "--ram"):
            parser.add_argument(option, type=LIMIT,
                                metavar="MB" if option == "--ram" else None)
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            rows = quotas.set_limits(session, parsed_args.project, {
                "instances": parsed_args.instances,
                "cores": parsed_args.cores,
                "ram": parsed_args.ram})
        return base.as_columns(rows, COLUMNS)


class ShowQuota(base.Lister):
    """Show a project's limits and what its live instances use."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("project")
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            return base.as_columns(
                quotas.show_quota(session, parsed_args.project), COLUMNS)
