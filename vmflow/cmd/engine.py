"""``vmflow-engine``: the runner service.

It first checks what a runner needs -- the configuration loads and every
value in it is valid, the database schema is current, the job board is
reachable -- and exits 1 with one ``vmflow-engine: error:`` line per
problem if any. An enabled host whose hypervisor does not answer is no
such problem: it is a warning, and the runner disables that host
(``AUTO: ...``) until it answers (:mod:`vmflow.engine.host_watch`). Then it
claims jobs from the job board and runs them (:class:`vmflow.engine.runner.
Runner`) until SIGTERM or SIGINT: it stops claiming, lets the running steps
finish (their engines suspend), abandons those jobs for another runner and
exits 0.

``--check`` only runs the checks. ``--max-jobs N`` exits after N jobs,
``--once`` when nothing is left to claim (tests, one-shot use).
"""
import argparse
import logging
import signal
import socket
import sys

from vmflow import conf as vmflow_conf
from vmflow import exception
from vmflow.engine import outage
from vmflow.inventory import hosts as host_inventory
from vmflow.persistence import migration

LOG = logging.getLogger("vmflow.engine")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="vmflow-engine",
        description="vmflow runner service: claims jobs from the job board "
                    "and runs their flows.")
    parser.add_argument("--config-file", action="append",
                        dest="config_files", metavar="PATH")
    parser.add_argument("--name", default=socket.gethostname(),
                        help="Runner name (claims are owned by "
                             "NAME@HOST:PID); default: the host name.")
    parser.add_argument("--check", action="store_true",
                        help="Run the start-up checks only.")
    parser.add_argument("--max-jobs", type=int, metavar="N",
                        help="Exit after N jobs have run.")
    parser.add_argument("--once", action="store_true",
                        help="Exit when no job is left to claim.")
    parser.add_argument("--debug", action="store_true")
    return parser


def preflight(conf=vmflow_conf.CONF):
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
            LOG.warning("host %s: %s; it is disabled until its hypervisor "
                        "answers", host["name"], error)
    problem = _check_jobboard(conf)
    if problem:
        problems.append(problem)
    return problems


def _check_jobboard(conf):
    from taskflow import exceptions as tf_exc

    from vmflow.engine import jobboard
    try:
        board = jobboard.get_jobboard(conf)
    except (tf_exc.TaskFlowException, exception.VmflowError) as error:
        return f"job board ({conf.jobboard.backend}): {error}"
    board.close()
    return None


def install_signal_handlers(runner):
    def _stop(signum, _frame):
        LOG.info("Received %s: finishing the current steps, abandoning "
                 "the jobs for another runner", signal.Signals(signum).name)
        runner.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        vmflow_conf.parse(config_files=args.config_files)
    except exception.InvalidConfig as error:
        problems = [str(error)]
    else:
        logging.basicConfig(
            level=logging.DEBUG if args.debug else logging.INFO,
            format="%(asctime)s %(process)d %(levelname)s %(name)s: "
                   "%(message)s")
        for handler in logging.getLogger().handlers:
            handler.addFilter(outage.RepeatedOutageTracebacks())
        problems = preflight()
    for problem in problems:
        sys.stderr.write(f"{parser.prog}: error: {problem}\n")
    if problems or args.check:
        return 1 if problems else 0
    from vmflow.engine import runner as engine_runner

    runner = engine_runner.Runner(args.name, max_jobs=args.max_jobs,
                                  drain=args.once)
    install_signal_handlers(runner)
    runner.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
