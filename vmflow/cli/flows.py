"""``vmflow flow show``: draw a job's flow, or an operation's plan."""
import os

from vmflow import exception
from vmflow.cli import base
from vmflow.engine import jobs_lookup
from vmflow.persistence import migration
from vmflow.visual import graph, plans, render


class ShowFlow(base.Command):
    """Draw a job's flow with the state, duration, hosts and error of each
    step (from the database alone: no runner needed), or with --flow the
    plan of an operation before it runs."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("job", metavar="JOB_UUID", nargs="?")
        parser.add_argument("--server", metavar="NAME_OR_UUID",
                            help="the server's latest operation")
        parser.add_argument("--action", metavar="REQUEST_ID",
                            help="with --server: the operation with this "
                                 "request id")
        parser.add_argument("--project")
        parser.add_argument("--flow", metavar="OPERATION",
                            choices=tuple(plans.OPERATIONS),
                            help="the plan of an operation: "
                                 + ", ".join(plans.OPERATIONS))
        parser.add_argument("--format", default="text",
                            choices=render.FORMATS)
        parser.add_argument("-o", "--output", metavar="FILE",
                            help="write to FILE instead of stdout")
        return parser

    def take_action(self, parsed_args):
        view = self._view(parsed_args)
        drawn = render.render(view, parsed_args.format)
        if parsed_args.output:
            _write_file(parsed_args.output, drawn)
        elif isinstance(drawn, bytes):
            if self.app.stdout.isatty():
                raise exception.InvalidInput(
                    reason="PNG output is binary: give -o FILE or redirect "
                           "stdout")
            self.app.stdout.flush()
            self.app.stdout.buffer.write(drawn)
            self.app.stdout.buffer.flush()
        else:
            self.app.stdout.write(drawn if drawn.endswith("\n")
                                  else drawn + "\n")

    @staticmethod
    def _view(args):
        chosen = [name for name, value in (
            ("JOB_UUID", args.job), ("--server", args.server),
            ("--flow", args.flow)) if value]
        if len(chosen) != 1:
            raise exception.InvalidInput(
                reason="give exactly one of JOB_UUID, --server or --flow"
                       + (f" (got {', '.join(chosen)})" if chosen else ""))
        if args.action and not args.server:
            raise exception.InvalidInput(reason="--action needs --server")
        if args.flow:
            return graph.plan_view(args.flow)
        migration.check_schema()
        job_uuid = args.job or jobs_lookup.find_server_job(
            args.server, args.action, args.project)
        return graph.job_view(job_uuid)


def _write_file(path, drawn):
    if os.path.isdir(path):
        raise exception.InvalidInput(reason=f"-o {path!r} is a directory")
    mode = "wb" if isinstance(drawn, bytes) else "w"
    try:
        with open(path, mode) as handle:
            handle.write(drawn)
    except OSError as error:
        raise exception.InvalidInput(
            reason=f"cannot write -o {path!r}: {error.strerror}") from None


