"""The ``vmflow`` command line (cliff)."""
import gc
import importlib.metadata
import logging
import sys

from cliff import app, commandmanager

from vmflow import conf as vmflow_conf

LOG_FORMAT = "vmflow: error: %(message)s"


class CommandManager(commandmanager.CommandManager):
    """cliff's command manager, but a command's module is imported only
    when that command runs (or ``help`` lists them all).

    cliff's own goes through stevedore, which imports every command module
    and all they import (the audit, the flow drawing, rich...) before
    any command starts.
    """

    def load_commands(self, namespace):
        self.group_list.append(namespace)
        for entry_point in importlib.metadata.entry_points(group=namespace):
            name = (entry_point.name.replace("_", " ")
                    if self.convert_underscores else entry_point.name)
            self.commands[name] = entry_point


class VmflowApp(app.App):
    def __init__(self):
        super().__init__(
            description="Virtual-machine operations on libvirt as persisted, "
                        "revertible flows.",
            version="0.1.0",
            command_manager=CommandManager("vmflow.cli"),
            deferred_help=True)

    def build_option_parser(self, description, version, argparse_kwargs=None):
        parser = super().build_option_parser(description, version,
                                             argparse_kwargs)
        parser.add_argument(
            "--config-file", action="append", dest="config_files",
            metavar="PATH",
            help="Configuration file to read (repeatable; default: "
                 "vmflow.conf in the standard oslo.config locations).")
        return parser

    def configure_logging(self):
        # Errors reach the user as one line on stderr; library chatter stays
        # below WARNING unless --debug or -v was given.
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        handler = logging.StreamHandler(self.stderr)
        if self.options.debug or self.options.verbose_level > 1:
            handler.setFormatter(logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s: %(message)s"))
            root.setLevel(logging.DEBUG)
        else:
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            root.setLevel(logging.ERROR)
        root.addHandler(handler)

    def initialize_app(self, argv):
        vmflow_conf.parse(config_files=self.options.config_files)


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    if not argv:
        argv = ["help"]
    # What starting up creates (modules, classes, the ORM's mappers) lives
    # until exit: the cyclic collector is off while it is made, then told
    # to leave it alone when the command starts its work
    # (base.end_start_up), also at exit, where walking it once more took
    # longer than the whole command.
    gc.disable()
    return VmflowApp().run(argv)


if __name__ == "__main__":
    sys.exit(main())
