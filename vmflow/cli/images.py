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


class ListImages(base.ListAll):
    """List images."""

    list_records = staticmethod(images.list_images)
    columns = images.COLUMNS


class ShowImage(base.ShowByName):
    """Show one image."""

    show_record = staticmethod(images.show_image)


class DeleteImage(base.DeleteByName):
    """Delete an image no live instance uses (its file is left alone)."""

    delete_record = staticmethod(images.delete_image)
