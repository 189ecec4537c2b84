"""``vmflow job list`` and ``vmflow job show``: operations as jobs."""
from vmflow.cli import base
from vmflow.engine import operations
from vmflow.persistence import migration

LIST_COLUMNS = ("uuid", "action", "instance_uuid", "state", "owner",
                "created_on", "request_id")


class ListJobs(base.Lister):
    """List the jobs on the job board (waiting or being run)."""

    def take_action(self, parsed_args):
        migration.check_schema()
        return base.as_columns(operations.list_jobs(), LIST_COLUMNS)


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
