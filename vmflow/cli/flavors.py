from vmflow.cli import base
from vmflow.inventory import flavors


class CreateFlavor(base.ShowOne):
    """Create a flavor: the vCPUs, memory and disk of an instance."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        parser.add_argument("--vcpus", type=base.positive_int, required=True)
        parser.add_argument("--ram", type=base.positive_int, required=True,
                            metavar="MB")
        parser.add_argument("--disk", type=base.positive_int, required=True,
                            metavar="GB")
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            return base.as_show(flavors.create_flavor(
                session, parsed_args.name, parsed_args.vcpus,
                parsed_args.ram, parsed_args.disk))


class ListFlavors(base.Lister):
    """List flavors."""

    def take_action(self, parsed_args):
        with self.session() as session:
            return base.as_columns(flavors.list_flavors(session),
                                   flavors.COLUMNS)


class ShowFlavor(base.ShowOne):
    """Show one flavor."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            return base.as_show(flavors.show_flavor(session,
                                                    parsed_args.name))


class DeleteFlavor(base.Command):
    """Delete a flavor no live instance uses."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            flavors.delete_flavor(session, parsed_args.name)
