from vmflow.cli import base
from vmflow.inventory import flavors
from vmflow.persistence import models


class CreateFlavor(base.ShowOne):
    """Create a flavor: the vCPUs, memory and disk of an instance."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        parser.add_argument("--vcpus", required=True,
                            type=base.column_int(models.Flavor.vcpus))
        parser.add_argument("--ram", required=True, metavar="MB",
                            type=base.column_int(models.Flavor.ram_mb))
        parser.add_argument("--disk", required=True, metavar="GB",
                            type=base.column_int(models.Flavor.disk_gb))
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
