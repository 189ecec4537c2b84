"""Shared pieces of the CLI commands."""
import argparse
import datetime
import functools
import gc
import sys

from cliff import command, lister, show

from vmflow import exception, validation
from vmflow.persistence import migration


def end_start_up():
    """From here on the collector runs, and never walks what the start-up
    made (``vmflow`` turns it off while it imports and parses, see
    :func:`vmflow.cmd.cli.main`); one left on, as by the tests' in-process
    app, stays as it is."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _one_line_error(parser, message):
    sys.stderr.write(f"{parser.prog}: error: {message}\n")
    sys.exit(2)


class OneLineErrorsMixin:
    """argparse errors as one line (no usage dump), exit status 2."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.error = functools.partial(_one_line_error, parser)
        return parser

    def get_epilog(self):
        # cliff's also says "provided by the X plugin" of a command from
        # another distribution than the app's, found by reading the file
        # list of every installed distribution: a tenth of a second at each
        # start, for a line vmflow's own commands never get.
        parts = [self._epilog or ""]
        parts.extend(epilog for hook in self._hooks if hook.obj is not None
                     and (epilog := hook.obj.get_epilog()) is not None)
        return "\n\n".join(parts)

    def run(self, parsed_args):
        end_start_up()
        return super().run(parsed_args)

    def session(self):
        return migration.ready_session()


class Command(OneLineErrorsMixin, command.Command):
    pass


class Lister(OneLineErrorsMixin, lister.Lister):
    pass


class ShowOne(OneLineErrorsMixin, show.ShowOne):
    pass


def _integer(text, minimum, what):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{what} {text!r} is not a whole number") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(
            f"{what} {text!r} must be at least {minimum}")
    return value


def positive_int(text):
    return _integer(text, 1, "value")


def column_int(column, minimum=1, what="value"):
    """An argparse type: a whole number from ``minimum`` up to what the
    database ``column`` holds (the argument is named by argparse)."""
    def parse(text):
        value = _integer(text, minimum, what)
        try:
            return validation.validate_count(value, column, what, minimum)
        except exception.InvalidInput as error:
            raise argparse.ArgumentTypeError(
                error.kwargs["reason"]) from None
    parse.__name__ = "whole number"
    return parse


def printable(value):
    """Timestamps as ISO 8601 text, so every output format can show them."""
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return value


def as_columns(rows, columns):
    """Rows of dicts -> (columns, tuples) as cliff's Lister wants them."""
    return columns, [tuple(printable(row[column]) for column in columns)
                     for row in rows]


def as_show(record):
    return tuple(record), tuple(printable(v) for v in record.values())


class ListAll(Lister):
    """List every record; subclasses set ``list_records`` and ``columns``."""

    list_records = None
    columns = ()

    def take_action(self, parsed_args):
        with self.session() as session:
            return as_columns(type(self).list_records(session), self.columns)


class NameArgumentMixin:
    """A command whose one positional argument is the record's name."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name")
        return parser


class ShowByName(NameArgumentMixin, ShowOne):
    """Show one record by name; subclasses set ``show_record``."""

    show_record = None

    def take_action(self, parsed_args):
        with self.session() as session:
            return as_show(type(self).show_record(session, parsed_args.name))


class DeleteByName(NameArgumentMixin, Command):
    """Delete one record by name; subclasses set ``delete_record``."""

    delete_record = None

    def take_action(self, parsed_args):
        with self.session() as session:
            type(self).delete_record(session, parsed_args.name)
