from vmflow.cli import base
from vmflow.inventory import images


class AddImage(base.ShowOne):
    """Register a disk image (optionally with a kernel for direct boot)."""

    # --format names the disk format here; the output format stays on -f.
    conflict_handler = "resolve"

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        parser.add_argument("--file", required=True, metavar="PATH")
        parser.add_argument("--format", dest="disk_format",
                            choices=images.DISK_FORMATS,
                            help="disk format (default: detected)")
        parser.add_argument("--kernel", metavar="PATH")
        parser.add_argument("--initrd", metavar="PATH")
        parser.add_argument("--cmdline", metavar="TEXT")
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            return base.as_show(images.add_image(
                session, parsed_args.name, parsed_args.file,
                parsed_args.disk_format, parsed_args.kernel, parsed_args.initrd,
                parsed_args.cmdline))


class ListImages(base.Lister):
    """List images."""

    def take_action(self, parsed_args):
        with self.session() as session:
            return base.as_columns(images.list_images(session),
                                   images.COLUMNS)


class ShowImage(base.ShowOne):
    """Show one image."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            return base.as_show(images.show_image(session, parsed_args.name))


class DeleteImage(base.Command):
    """Delete an image no live instance uses (its file is left alone)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        return parser

    def take_action(self, parsed_args):
        with self.session() as session:
            images.delete_image(session, parsed_args.name)
