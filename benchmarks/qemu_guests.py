"""Real QEMU guests built and deleted through the runner, against the same
guests made with plain libvirt-python and qemu-img calls (issue 12).

    .venv/bin/python -m benchmarks.qemu_guests [--count 16] [--workers 4]

On the local ``qemu:///system`` (tools/testbed/start-libvirtd.sh) with the
test guest of tools/testbed/build-guest.sh (``.testbed/guest``: direct
kernel boot, 64 MiB qcow2 disk), 128 MiB and one vCPU each, TCG:

* engine: the embedded default -- SQLite under a private state_path, this
  machine registered as the only host (``vmflow host add``), one
  ``vmflow-engine`` with ``[engine] max_workers = WORKERS``, started and
  registered first. COUNT ``vmflow server create`` processes are started
  at once (the builds all posted at once; the runner runs WORKERS at a
  time); timed from just before they start to the end of the last build
  (its instance action: the domain running, the server ACTIVE). Then
  COUNT ``vmflow server delete`` the same way, to the end of the last
  delete (domain undefined, disks removed). The same again with the
  builds and deletes posted from threads of this process
  (``vmflow.compute``, no CLI processes), to tell the CLI's start-up
  cost from the engine's.
* plain: WORKERS threads of this process, the runner's concurrency, each
  taking the next guest: ``qemu-img create`` a qcow2 overlay on the same
  cached base image, write the same domain XML (vmflow's own config
  objects, so both define the same domain), ``defineXML``, ``create``,
  poll until running (every ``[libvirt] poll_interval_seconds``, as the
  build's wait does); then ``destroy``, ``undefine``, remove the disk
  folder.

One guest is built and deleted each way first, untimed (the base image
is copied into each instances path, the runner has run a job). Every
guest must run after its build and be gone after its delete. Prints the
wall times, the engine's overhead ratio (target <= 1.10) and how it was
measured. Leaves nothing: domains, disks, database and runner go.
Run as root on the test bed; takes a few minutes.
"""
import argparse
import concurrent.futures
import json
import logging
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import libvirt

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run as a script, not with -m
    sys.path.insert(0, REPO_ROOT)

from benchmarks import operations_timing  # noqa: E402
from tests.conftest import Cli, write_config  # noqa: E402
from tests.functional.engine import helpers  # noqa: E402
from tests.integration.conftest import cleanup_domains  # noqa: E402
from tests.integration.test_concurrent_builds import (  # noqa: E402
    private_instances_root)
from vmflow import compute, instances  # noqa: E402
from vmflow import conf as vmflow_conf  # noqa: E402
from vmflow.drivers.libvirt import driver as libvirt_driver  # noqa: E402
from vmflow.engine import jobboard, runner  # noqa: E402
from vmflow.engine import persistence as engine_persistence  # noqa: E402
from vmflow.persistence import api, models  # noqa: E402

URI = "qemu:///system"
GUEST_MANIFEST = os.path.join(REPO_ROOT, ".testbed", "guest", "guest.json")
START_LIBVIRTD = os.path.join(REPO_ROOT, "tools", "testbed",
                              "start-libvirtd.sh")
FLAVOR = {"name": "bench", "vcpus": 1, "ram_mb": 128, "disk_gb": 1}
IMAGE = "bench-guest"
PROJECT = "demo"
PLAIN_PREFIX = "vmflow-bench-plain-"
ENGINE_PREFIX = libvirt_driver.DEFAULT_DOMAIN_NAME_PREFIX
PHASE_TIMEOUT = 900
RUNNING_TIMEOUT = 60
TARGET = 1.10


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=16,
                        help="guests built, then deleted, each way "
                             "(default 16)")
    parser.add_argument("--workers", type=int, default=4,
                        help="[engine] max_workers of the runner, and "
                             "threads of the plain way (default 4)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.workers < 1:
        parser.error("need --count >= 1 and --workers >= 1")
    return args


def load_guest():
    if not os.path.exists(GUEST_MANIFEST):
        sys.exit(f"no test guest at {GUEST_MANIFEST}: run "
                 "tools/testbed/setup.sh")
    with open(GUEST_MANIFEST) as manifest:
        return json.load(manifest)


class Engine:
    """The embedded default on a private state_path, a runner, the CLI."""

    def __init__(self, args, work_dir, instances_root, guest):
        self.args = args
        self.state_path = os.path.join(work_dir, "state")
        self.log_path = os.path.join(work_dir, "runner.log")
        settings = {
            "DEFAULT": {"state_path": self.state_path},
            "libvirt": {"virt_type": "qemu", "wait_running_seconds": 60},
            "engine": {"max_workers": args.workers}}
        self.config_file = write_config(
            pathlib.Path(work_dir, "vmflow.conf"), settings)
        self.cli = Cli(self.config_file)
        self.runner = None
        self.instance_uuids = set()
        self.cli_seconds = []
        instances_path = os.path.join(instances_root, "local")
        os.makedirs(instances_path, mode=0o755)
        count = args.count + 1  # and the warm-up guest
        cli = self.cli
        cli("db", "sync")
        cli("host", "add", "local", "--uri", URI, "--vcpus", str(count),
            "--memory-mb", str(count * FLAVOR["ram_mb"]), "--disk-gb",
            str(count * FLAVOR["disk_gb"] + 1), "--instances-path",
            instances_path)
        cli("flavor", "create", FLAVOR["name"], "--vcpus",
            str(FLAVOR["vcpus"]), "--ram", str(FLAVOR["ram_mb"]), "--disk",
            str(FLAVOR["disk_gb"]))
        cli("image", "add", IMAGE, "--file", guest["disk"], "--kernel",
            guest["kernel"], "--initrd", guest["initrd_acpi"], "--cmdline",
            guest["cmdline"])
        cli("quota", "set", PROJECT, "--instances", str(count), "--cores",
            str(count * FLAVOR["vcpus"]), "--ram",
            str(count * FLAVOR["ram_mb"]))
        conf = vmflow_conf.CONF
        vmflow_conf.parse(config_files=[self.config_file])
        self.conf = conf
        self.db = api.get_engine(conf)

    def start_runner(self):
        self.runner = helpers.start_runner(self.config_file, name="bench",
                                           log_path=self.log_path)

        def registered():
            self.check_runner()
            with jobboard.opened(self.conf) as board:
                return bool(runner.live_runners(board))
        helpers.wait_until(registered, 60, "the runner to register",
                           interval=0.1)

    def check_runner(self):
        if self.runner.poll() is not None:
            raise AssertionError(f"the runner exited {self.runner.returncode}"
                                 f":\n{self.runner_log()}")

    def runner_log(self):
        with open(self.log_path, errors="replace") as log:
            return log.read()[-20000:]

    def stop_runner(self):
        if self.runner is None:
            return
        try:
            status = helpers.stop_process(self.runner)
        finally:
            if self.runner.poll() is None:
                self.runner.kill()
                self.runner.wait()
        if status != 0:
            raise AssertionError(f"the runner exited {status}:\n"
                                 f"{self.runner_log()}")

    # -- the two ways of posting -------------------------------------------

    def cli_create(self, name):
        posted = self._cli("server", "create", name, "--flavor",
                           FLAVOR["name"], "--image", IMAGE, "--project",
                           PROJECT)
        self.instance_uuids.add(posted["instance_uuid"])
        return posted["instance_uuid"], posted["request_id"]

    def cli_delete(self, instance_uuid):
        return self._cli("server", "delete", instance_uuid)["request_id"]

    def _cli(self, *args):
        """Run ``vmflow ARGS -f json``; what it printed. Its seconds go to
        :attr:`cli_seconds`."""
        started = time.monotonic()
        result = self.cli(*args, "-f", "json", timeout=PHASE_TIMEOUT)
        self.cli_seconds.append(time.monotonic() - started)
        return json.loads(result.stdout)

    def api_create(self, name):
        request = compute.create_server(name, FLAVOR["name"], IMAGE,
                                        project=PROJECT, conf=self.conf)
        self.instance_uuids.add(request.instance_uuid)
        return request.instance_uuid, request.request_id

    def api_delete(self, instance_uuid):
        return compute.delete_server(instance_uuid, project=PROJECT,
                                     conf=self.conf).request_id

    def run(self, names, create, delete, connection):
        """Seconds of the builds and of the deletes, each all posted at
        once (``create(name)``, ``delete(uuid)`` from one thread each)."""
        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            started = models.utcnow()
            built = list(pool.map(create, names))
            build_seconds = self._until_all_end(
                [request_id for _uuid, request_id in built], started)
            uuids = [instance_uuid for instance_uuid, _request in built]
            self.check_built(uuids, connection)
            started = models.utcnow()
            deleted = list(pool.map(delete, uuids))
            delete_seconds = self._until_all_end(deleted, started)
            self.check_deleted(uuids, connection)
        return build_seconds, delete_seconds

    def _until_all_end(self, request_ids, started):
        return operations_timing.seconds_until_all_end(
            self.db, request_ids, started, PHASE_TIMEOUT,
            check=self.check_runner, context=self.runner_log)

    def check_built(self, uuids, connection):
        with api.session_scope(self.db) as session:
            found = {(row["vm_state"], row["power_state"]) for row in (
                instances.get_instance(session, uuid) for uuid in uuids)}
        if found != {(instances.ACTIVE, "running")}:
            raise AssertionError(f"builds ended {found}")
        for uuid in uuids:
            if not connection.lookupByUUIDString(uuid).isActive():
                raise AssertionError(f"the domain of {uuid} is not running")

    def check_deleted(self, uuids, connection):
        with api.session_scope(self.db) as session:
            found = {instances.get_instance(session, uuid)["vm_state"]
                     for uuid in uuids}
        if found != {instances.DELETED}:
            raise AssertionError(f"deletes ended {found}")
        check_gone(connection, uuids)

    def close(self):
        try:
            self.stop_runner()
        finally:
            api.dispose_engines()
            engine_persistence.forget_persistence()


class Plain:
    """The same guests with plain libvirt-python and qemu-img calls."""

    def __init__(self, connection, instances_root, guest, poll_interval):
        self.connection = connection
        self.root = instances_root
        self.guest = guest
        self.poll_interval = poll_interval
        self.base_dir = os.path.join(instances_root, "_base")
        # Only its domain XML is vmflow's: the same config objects.
        self.xml_maker = libvirt_driver.LibvirtDriver(
            {"name": "plain", "uri": URI, "instances_path": instances_root},
            virt_type="qemu", domain_name_prefix=PLAIN_PREFIX)
        self.made = set()

    def cache_base(self):
        os.makedirs(self.base_dir, mode=0o755)
        for key in ("disk", "kernel", "initrd_acpi"):
            shutil.copyfile(self.guest[key], self._base(key))

    def _base(self, key):
        return os.path.join(self.base_dir, key)

    def create(self, _name):
        instance_uuid = str(uuid.uuid4())
        self.made.add(instance_uuid)
        folder = os.path.join(self.root, instance_uuid)
        os.makedirs(folder, mode=0o755)
        disk = os.path.join(folder, "disk")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b",
                        self._base("disk"), "-F", "qcow2", disk,
                        str(FLAVOR["disk_gb"] * 1024 ** 3)],
                       check=True, timeout=120)
        console = os.path.join(folder, "console.log")
        open(console, "w").close()
        xml = self.xml_maker.generate_xml(
            {"uuid": instance_uuid, "name": f"plain-{instance_uuid[:8]}"},
            {"kernel": True, "cmdline": self.guest["cmdline"]}, FLAVOR,
            {"disk": disk, "disk_format": "qcow2", "console_log": console,
             "kernel": self._base("kernel"),
             "initrd": self._base("initrd_acpi")})
        domain = self.connection.defineXML(xml)
        domain.create()
        deadline = time.monotonic() + RUNNING_TIMEOUT
        while domain.state()[0] != libvirt.VIR_DOMAIN_RUNNING:
            if time.monotonic() > deadline:
                raise AssertionError(f"{domain.name()} did not run")
            time.sleep(self.poll_interval)
        return instance_uuid

    def delete(self, instance_uuid):
        domain = self.connection.lookupByUUIDString(instance_uuid)
        domain.destroy()
        domain.undefine()
        shutil.rmtree(os.path.join(self.root, instance_uuid))

    def run(self, count, workers):
        """Seconds of the builds and of the deletes, ``workers`` at a
        time."""
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            started = time.monotonic()
            built = list(pool.map(self.create, range(count)))
            build_seconds = time.monotonic() - started
            for instance_uuid in built:
                if not self.connection.lookupByUUIDString(
                        instance_uuid).isActive():
                    raise AssertionError(f"{instance_uuid} is not running")
            started = time.monotonic()
            list(pool.map(self.delete, built))
            delete_seconds = time.monotonic() - started
        check_gone(self.connection, built)
        left = [name for name in os.listdir(self.root) if name != "_base"]
        if left:
            raise AssertionError(f"plain disks left: {left}")
        return build_seconds, delete_seconds


def check_gone(connection, uuids):
    names = {domain.UUIDString() for domain in connection.listAllDomains()}
    left = names & set(uuids)
    if left:
        raise AssertionError(f"domains left: {sorted(left)}")


def remove_guests(prefix_by_uuid):
    """Test-bed cleanup of whatever a failed run left on qemu:///system."""
    removed = []
    for prefix in prefix_by_uuid:
        removed += cleanup_domains(URI, prefix=prefix)
    return removed


def show(label, build_seconds, delete_seconds):
    print(f"  {label:<52} builds {build_seconds:6.2f} s   deletes "
          f"{delete_seconds:6.2f} s   total "
          f"{build_seconds + delete_seconds:6.2f} s")
    return build_seconds + delete_seconds


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # no migration chatter
    if os.geteuid() != 0:
        sys.exit("run as root (QEMU guests on qemu:///system)")
    guest = load_guest()
    subprocess.run(["bash", START_LIBVIRTD], check=True, timeout=300,
                   stdin=subprocess.DEVNULL, capture_output=True)
    work_dir = tempfile.mkdtemp(prefix="vmflow-bench-qemu-")
    engine_root = private_instances_root("bench-engine")
    plain_root = private_instances_root("bench-plain")
    connection = libvirt.open(URI)
    engine = None
    try:
        engine = Engine(args, work_dir, engine_root, guest)
        plain = Plain(connection, plain_root, guest,
                      engine.conf.libvirt.poll_interval_seconds)
        engine.start_runner()
        plain.cache_base()
        plain.run(1, 1)  # warm-up
        engine.run(["warm-up"], engine.cli_create, engine.cli_delete,
                   connection)
        alone, engine.cli_seconds = engine.cli_seconds, []

        names = [f"bench-{number:02d}" for number in range(args.count)]
        print(f"{args.count} guests each way on {URI} (TCG, "
              f"{FLAVOR['ram_mb']} MiB, the test guest): engine = one "
              f"vmflow-engine, max_workers {args.workers}, SQLite, all "
              f"{args.count} builds (then deletes) posted at once; plain = "
              f"{args.workers} at a time; a build ends when its domain "
              "runs, a delete when the domain and its disks are gone; one "
              "untimed warm-up guest each way first")
        plain_total = show(f"plain libvirt-python + qemu-img, {args.workers}"
                           " threads", *plain.run(args.count, args.workers))
        cli_total = show("engine: vmflow server create/delete processes",
                         *engine.run(names, engine.cli_create,
                                     engine.cli_delete, connection))
        print(f"      (one vmflow process, start to exit: median "
              f"{statistics.median(engine.cli_seconds):.2f} s, max "
              f"{max(engine.cli_seconds):.2f} s; alone, in the warm-up: "
              f"create {alone[0]:.2f} s, delete {alone[1]:.2f} s)")
        api_total = show("engine: posted from threads (vmflow.compute)",
                         *engine.run([f"api-{name}" for name in names],
                                     engine.api_create, engine.api_delete,
                                     connection))
        print(f"  engine overhead (through the CLI): "
              f"{cli_total / plain_total:.2f} x plain (target <= {TARGET});"
              f"  posted in-process: {api_total / plain_total:.2f} x plain")
    finally:
        try:
            if engine is not None:
                engine.close()
        finally:
            left = remove_guests([ENGINE_PREFIX + instance for instance in (
                engine.instance_uuids if engine else ())]
                + [PLAIN_PREFIX])
            connection.close()
            for folder in (work_dir, engine_root, plain_root):
                shutil.rmtree(folder, ignore_errors=True)
            if left:
                print(f"removed domains a failure left: {left}")


if __name__ == "__main__":
    main()
