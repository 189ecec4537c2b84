"""How long ``vmflow`` commands take from process start to exit, measured.

    .venv/bin/python -m benchmarks.cli_latency [--runs 15]

A private state folder gets an SQLite database (the embedded default)
with a ``test:///default`` host, a flavor and an image, made with the CLI
as the functional tests make theirs. Then each command runs ``--runs``
times as a user runs it (the console script of this interpreter, on the
code of this checkout); printed per command: wall time median, min and
max, and the CPU time (user + system) median, which other processes on
the machine disturb less than the wall time. The baselines are measured
in the same run: ``python -c pass`` and ``python -c "import
vmflow.cmd.cli"``. ``server create`` only posts the build (no ``--wait``,
no runner). Last, where the imports of one ``server show`` go
(``python -X importtime``).
"""
import argparse
import collections
import os
import pathlib
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from tests.conftest import BIN_DIR, REPO_ROOT, Cli, write_config
from tests.functional.conftest import populate, qemu_img

SERVER = "vm1"
TOP_IMPORTS = 10


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15,
                        help="runs of each command (default 15)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("need at least one run")
    return args


def make_cloud(folder):
    """A config file whose state has a host, a flavor, an image and one
    server (its build posted, never run)."""
    files = {"qcow2": os.path.join(folder, "tiny.qcow2"),
             "kernel": os.path.join(folder, "kernel"),
             "instances": os.path.join(folder, "instances")}
    qemu_img("create", "-q", "-f", "qcow2", files["qcow2"], "16M")
    with open(files["kernel"], "w") as kernel:
        kernel.write("not really a kernel")
    os.mkdir(files["instances"])
    config_file = write_config(
        pathlib.Path(folder, "vmflow.conf"),
        {"DEFAULT": {"state_path": os.path.join(folder, "state")}})
    cli = Cli(config_file)
    populate(cli, files)
    cli("server", "create", SERVER, "--flavor", "tiny", "--image", "cirros")
    return config_file


def timed(argv):
    """(wall seconds, CPU seconds) of one run of ``argv``, which must
    succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True,
                            timeout=120, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {result.returncode}: "
                 f"{result.stderr}")
    cpu = (after.ru_utime - before.ru_utime
           + after.ru_stime - before.ru_stime)
    return wall, cpu


def report(label, runs):
    walls = [wall for wall, _cpu in runs]
    cpus = [cpu for _wall, cpu in runs]
    print(f"{label:<34} wall: median {statistics.median(walls):5.3f} s"
          f"  min {min(walls):5.3f} s  max {max(walls):5.3f} s"
          f"   CPU median {statistics.median(cpus):5.3f} s"
          f"   ({len(runs)} runs)")


def import_breakdown(argv):
    """``-X importtime`` of ``argv``: (total seconds, the top-level
    imports by cumulative seconds, the packages by their modules' own
    seconds)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", *argv], capture_output=True,
        text=True, timeout=120, check=True)
    top_level, packages = {}, collections.Counter()
    for line in result.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        own, cumulative, name = line[len("import time:"):].split("|")
        if not own.strip().isdigit():  # the header line
            continue
        module = name.strip()
        packages[module.split(".")[0]] += int(own) / 1e6
        if not name[1:].startswith(" "):  # not nested in another import
            top_level[module] = int(cumulative) / 1e6
    return sum(top_level.values()), top_level, packages


def print_breakdown(label, argv):
    total, top_level, packages = import_breakdown(argv)
    print(f"\nimports of {label}: {total:5.3f} s in all (-X importtime, "
          "one run)")
    print("  top-level imports (cumulative):")
    for module, seconds in sorted(top_level.items(),
                                  key=lambda item: -item[1])[:TOP_IMPORTS]:
        print(f"    {seconds:6.3f} s  {module}")
    print("  packages (own time of their modules):")
    for package, seconds in packages.most_common(TOP_IMPORTS):
        print(f"    {seconds:6.3f} s  {package}")


def main(argv=None):
    args = parse_args(argv)
    # Every vmflow run here, the set-up's too, runs this checkout's code
    # (the editable install may point at another).
    os.environ["PYTHONPATH"] = REPO_ROOT
    folder = tempfile.mkdtemp(prefix="vmflow-bench-cli-", dir="/tmp")
    try:
        config_file = make_cloud(folder)
        vmflow = [os.path.join(BIN_DIR, "vmflow"), "--config-file",
                  config_file]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import vmflow.cmd.cli'": [
                sys.executable, "-c", "import vmflow.cmd.cli"],
            f"vmflow server show {SERVER}": [*vmflow, "server", "show",
                                             SERVER],
            "vmflow flavor list": [*vmflow, "flavor", "list"],
        }
        for label, command in commands.items():
            report(label, [timed(command) for _ in range(args.runs)])
        report("vmflow server create (post only)", [
            timed([*vmflow, "server", "create", f"bench-{number}",
                   "--flavor", "tiny", "--image", "cirros"])
            for number in range(args.runs)])
        print_breakdown(f"vmflow server show {SERVER}", [
            "-m", "vmflow.cmd.cli", "--config-file", config_file, "server",
            "show", SERVER])
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
