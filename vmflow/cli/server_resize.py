"""``vmflow server resize|migrate``, ``server resize confirm|revert`` and
``vmflow migration list``.

Resize and migrate post one job whose flow runs the three phases (prep on
the scheduler's choice of destination, execute on the source, finish on
the destination); the server ends RESIZED, running on the destination if
it was active, until ``resize confirm`` (the source's copy goes) or
``resize revert`` (it comes back on the source as it was).

As in :mod:`.server_power`, ``post`` imports :mod:`vmflow.compute`.
"""
from vmflow import migrations
from vmflow.cli import base
from vmflow.cli import server_power
from vmflow.inventory import servers

MIGRATION_COLUMNS = ("uuid", "server", "migration_type", "status",
                     "source_host", "dest_host", "old_flavor", "new_flavor",
                     "created_at", "updated_at")


class ResizeServer(server_power._ServerActionCommand):
    """Resize a server to another flavor, on another host (or on its own
    when [DEFAULT] allow_resize_to_same_host): it ends RESIZED until
    'server resize confirm' or 'server resize revert'."""

    action = "resize"

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--flavor", required=True,
                            help="The flavor to resize to (its disk may "
                                 "not be smaller than the server's).")
        parser.add_argument("--host", help="Resize onto this host only.")
        return parser

    def post(self, parsed_args):
        from vmflow import compute
        return compute.resize_server(parsed_args.name, parsed_args.flavor,
                                     parsed_args.host, parsed_args.project)


class MigrateServer(server_power._ServerActionCommand):
    """Cold-migrate a server to another host with its flavor: it ends
    RESIZED until 'server resize confirm' or 'server resize revert'."""

    action = "migrate"

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--host", help="Migrate onto this host only.")
        return parser

    def post(self, parsed_args):
        from vmflow import compute
        return compute.migrate_server(parsed_args.name, parsed_args.host,
                                      parsed_args.project)


class ConfirmResize(server_power._ServerActionCommand):
    """Confirm a RESIZED server's resize or migration: its domain, disk
    and claim on the source go, and it is back to active (or stopped).
    A confirm that failed (the server in ERROR) is finished the same way."""

    action = "confirmResize"

    def post(self, parsed_args):
        from vmflow import compute
        return compute.confirm_resize(parsed_args.name, parsed_args.project)


class RevertResize(server_power._ServerActionCommand):
    """Revert a RESIZED server's resize or migration: it comes back on its
    source host with its old flavor and disk, running if it was. A revert
    that failed (the server in ERROR) is finished the same way."""

    action = "revertResize"

    def post(self, parsed_args):
        from vmflow import compute
        return compute.revert_resize(parsed_args.name, parsed_args.project)


class ListMigrations(base.Lister):
    """List resizes and cold migrations (of one server with --server)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--server", metavar="NAME_OR_UUID")
        parser.add_argument("--project")
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            instance_uuid = None
            if parsed_args.server is not None:
                instance_uuid = servers.find_instance(
                    session, parsed_args.server, parsed_args.project,
                    True)[0].uuid
            rows = migrations.list_migrations(session, instance_uuid)
        return base.as_columns(rows, MIGRATION_COLUMNS)
