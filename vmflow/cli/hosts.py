from vmflow.cli import base
from vmflow.inventory import hosts
from vmflow.persistence import models


class AddHost(base.ShowOne):
    """Register a libvirt host; its URI must answer before it is added."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        parser.add_argument("--uri", required=True,
                            help="libvirt URI, e.g. qemu:///system")
        parser.add_argument("--vcpus", required=True,
                            type=base.column_int(models.Host.vcpus))
        parser.add_argument("--memory-mb", required=True,
                            type=base.column_int(models.Host.memory_mb))
        parser.add_argument("--disk-gb", required=True,
                            type=base.column_int(models.Host.disk_gb))
        parser.add_argument("--instances-path", metavar="DIR",
                            help="where instance disks live on the host "
                                 "(default: <state_path>/instances)")
        parser.add_argument("--ssh", metavar="USER@ADDR[:PORT]",
                            help="SSH endpoint for disk operations on a "
                                 "remote host; omit for this machine")
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            return base.as_show(hosts.add_host(
                session, parsed_args.name, parsed_args.uri,
                parsed_args.vcpus, parsed_args.memory_mb,
                parsed_args.disk_gb, parsed_args.instances_path,
                parsed_args.ssh))


class ListHosts(base.ListAll):
    """List hosts."""

    list_records = staticmethod(hosts.list_hosts)
    columns = hosts.COLUMNS


class ShowHost(base.ShowByName):
    """Show one host and what is claimed on it."""

    show_record = staticmethod(hosts.show_host_usage)


class SetHost(base.ShowOne):
    """Enable or disable a host for scheduling."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        state = parser.add_mutually_exclusive_group(required=True)
        state.add_argument("--enable", action="store_true")
        state.add_argument("--disable", action="store_true")
        parser.add_argument("--reason", metavar="TEXT",
                            help="why the host is disabled")
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            return base.as_show(hosts.set_host_enabled(
                session, parsed_args.name, parsed_args.enable,
                parsed_args.reason))
