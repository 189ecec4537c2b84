import json

from vmflow import audit
from vmflow.cli import base
from vmflow.persistence import migration


class Audit(base.Command):
    """Check the five invariants against the database, every hypervisor
    and every instances path; print a JSON report, exit 1 when one fails."""

    def take_action(self, parsed_args):
        migration.check_schema()
        report = audit.run_audit()
        self.app.stdout.write(json.dumps(report, indent=2, sort_keys=True)
                              + "\n")
        return 0 if report["ok"] else 1
