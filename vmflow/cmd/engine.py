"""``vmflow-engine``: the runner service.

This first version performs the runner's start-up checks -- configuration
loads, the database schema is current, every enabled host's hypervisor
answers -- and reports them. Claiming and running jobs is added with the
job board (issue 3).
"""
import argparse
import logging
import sys

from vmflow import conf as vmflow_conf
from vmflow import exception
from vmflow.inventory import hosts as host_inventory
from vmflow.persistence import migration

LOG = logging.getLogger("vmflow.engine")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="vmflow-engine",
        description="vmflow runner service (start-up checks).")
    parser.add_argument("--config-file", action="append",
                        dest="config_files", metavar="PATH")
    return parser


def preflight():
    """Return a list of problems that would stop a runner from working."""
    problems = []
    try:
        migration.check_schema()
    except exception.VmflowError as error:
        return [str(error)]
    with migration.ready_session() as session:
        enabled = [h for h in host_inventory.list_hosts(session)
                   if h["enabled"]]
    for host in enabled:
        try:
            host_inventory.check_hypervisor(host["uri"])
            LOG.info("host %s: hypervisor %s answers", host["name"],
                     host["uri"])
        except exception.VmflowError as error:
            problems.append(f"host {host['name']}: {error}")
    return problems


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    vmflow_conf.parse(config_files=args.config_files)
    problems = preflight()
    for problem in problems:
        LOG.error("%s", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
