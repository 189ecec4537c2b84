"""``vmflow job list`` and ``vmflow job show``: operations as jobs."""
from vmflow.cli import base
from vmflow.engine import operations
from vmflow.persistence import migration

class ListJobs(base.Lister):
    """List the jobs on the job board (waiting or being run) with their
    claim, progress (steps done/total) and failing step."""

    def take_action(self, parsed_args):
        migration.check_schema()
        return base.as_columns(operations.list_jobs(),
                               operations.JOB_FIELDS)


class ShowJob(base.ShowOne):
    """Show one operation by job uuid: its state, result and the state of
    every step of its flow (also after the job left the board)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("job", metavar="JOB_UUID")
        return parser

    def take_action(self, parsed_args):
        migration.check_schema()
        return base.as_show(operations.describe_job(parsed_args.job))
