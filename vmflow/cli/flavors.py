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


class ListFlavors(base.ListAll):
    """List flavors."""

    list_records = staticmethod(flavors.list_flavors)
    columns = flavors.COLUMNS


class ShowFlavor(base.ShowByName):
    """Show one flavor."""

    show_record = staticmethod(flavors.show_flavor)


class DeleteFlavor(base.DeleteByName):
    """Delete a flavor no live instance uses."""

    delete_record = staticmethod(flavors.delete_flavor)
