"""A running ``vmflow-engine`` follows its hosts' real hypervisors.

Two hosts: ``hv``, the private second libvirtd of the flow test bed
(:mod:`tests.integration.flowbed`), which these tests SIGKILL and start
again (its state directory, and the QEMU processes of its guests, stay),
and ``main``, the machine's own libvirtd (qemu:///system). The runner is
a real ``vmflow-engine`` subprocess; guests are changed behind vmflow's
back through libvirt directly.
"""
import json
import os
import shutil
import signal
import urllib.parse
import uuid as uuidlib

import libvirt
import pytest

from tests.conftest import Cli, wait_until
from tests.functional.engine import helpers
from tests.integration.conftest import cleanup_domains, run_testbed_script
from tests.integration.flowbed import (  # noqa: F401 (fixtures)
    DOMAIN_PREFIX, FLAVOR, HOST, IMAGE, PROJECT, disks_root, make_cloud,
    sweeper, template_db)
from vmflow import compute, instances, power_states
from vmflow.engine import operations
from vmflow.inventory import hosts

pytestmark = pytest.mark.integration

MAIN = "main"
POWER_DEADLINE = 10  # the "within 10 s"
SETTLE_TIMEOUT = 90
AUTO_LOST = "AUTO: hypervisor connection lost: "


class SecondLibvirtd:
    """SIGKILL and start again the second libvirtd (only the daemon: its
    virtlogd, its guests' QEMU processes and its state directory stay; the
    session fixture still stops it all at the end)."""

    def __init__(self, uri):
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(uri).query)
        socket_path = query["socket"][0]
        self.state_dir = os.path.dirname(os.path.dirname(socket_path))
        self.pidfile = os.path.join(self.state_dir, "libvirtd.pid")

    def kill(self):
        with open(self.pidfile) as pidfile:
            pid = int(pidfile.read().strip())
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _alive(pid), 30, "libvirtd to die")

    def start(self):
        run_testbed_script("start-second-libvirtd.sh", self.state_dir,
                           timeout=300)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def bed(conf, tmp_path, template_db, disks_root, sweeper, libvirt_uri):
    """The cloud of one test with hosts ``hv`` and ``main`` and a running
    ``vmflow-engine``; the second libvirtd runs again at the end."""
    daemon = SecondLibvirtd(sweeper.uri)
    main_path = os.path.join(disks_root, "main-" + uuidlib.uuid4().hex)
    os.makedirs(main_path)
    os.chmod(main_path, 0o755)
    with make_cloud(conf, tmp_path, template_db, disks_root,
                    sweeper) as cloud:
        with cloud.session() as session:
            hosts.add_host(session, MAIN, libvirt_uri, 2, 1024, 10,
                           instances_path=main_path, verify=False)
        with open(cloud.config_file, "a") as config:
            config.write("[engine]\nhost_retry_seconds = 0.5\n")
        process = helpers.start_runner(cloud.config_file, name="watcher",
                                       log_path=cloud.log_path)
        wait_until(lambda: "is claiming jobs" in cloud.log(), 60,
                   "the runner to start")
        try:
            yield cloud, daemon
        finally:
            status = helpers.stop_process(process)
            daemon.start()  # whatever the test did to it
            on_main = [row for row in map(cloud.instance,
                                          cloud.instance_uuids())
                       if row["host"] == MAIN]
            for row in on_main:
                cleanup_domains(libvirt_uri, prefix=DOMAIN_PREFIX
                                + row["uuid"])
            shutil.rmtree(main_path, ignore_errors=True)
        assert status == 0, cloud.log()


def build(cloud, name, host=None):
    """Build a server through the runner; its instance row."""
    request = compute.create_server(name, FLAVOR, IMAGE, PROJECT, host=host,
                                    conf=cloud.conf)
    wait_until(lambda: operations.operation_status(
        request.job_uuid, cloud.conf).finished, SETTLE_TIMEOUT,
        f"the build of {name}")
    instance = cloud.instance(request.instance_uuid)
    assert (instance["vm_state"], instance["task_state"]) == (
        instances.ACTIVE, None), cloud.log()
    return instance


def destroy_behind_vmflows_back(uri, instance_uuid):
    conn = libvirt.open(uri)
    try:
        conn.lookupByUUIDString(instance_uuid).destroy()
    finally:
        conn.close()


def stopped_within_deadline(cloud, instance_uuid):
    wait_until(lambda: (cloud.instance(instance_uuid)["power_state"],
                        cloud.instance(instance_uuid)["vm_state"])
               == (power_states.SHUTDOWN, instances.STOPPED),
               POWER_DEADLINE, "power_state shutdown, vm_state stopped")


def host_row(cloud, name):
    with cloud.session() as session:
        return hosts.show_host(session, name)


def test_a_guest_that_powers_off_by_itself_is_shown_stopped(bed):
    cloud, _daemon = bed
    instance = build(cloud, "selfoff", host=HOST)
    assert instance["power_state"] == power_states.RUNNING
    destroy_behind_vmflows_back(cloud.sweeper.uri, instance["uuid"])
    stopped_within_deadline(cloud, instance["uuid"])
    shown = json.loads(Cli(cloud.config_file)(
        "server", "show", "selfoff", "--project", PROJECT, "-f",
        "json").stdout)
    assert (shown["power_state"], shown["vm_state"]) == (
        power_states.SHUTDOWN, instances.STOPPED)


def test_a_lost_hypervisor_disables_its_host_until_it_answers(bed):
    cloud, daemon = bed
    cli = Cli(cloud.config_file)
    daemon.kill()
    wait_until(lambda: not host_row(cloud, HOST)["enabled"], 30,
               "host hv disabled")
    assert host_row(cloud, HOST)["disabled_reason"].startswith(AUTO_LOST)
    listed = {host["name"]: host for host in json.loads(
        cli("host", "list", "-f", "json").stdout)}
    assert listed[HOST]["disabled_reason"].startswith(AUTO_LOST)
    # The other host keeps building (the scheduler skips hv).
    assert build(cloud, "elsewhere")["host"] == MAIN
    daemon.start()
    wait_until(lambda: host_row(cloud, HOST)["enabled"], 30,
               "host hv enabled again")
    assert host_row(cloud, HOST)["disabled_reason"] is None
    assert build(cloud, "back", host=HOST)["host"] == HOST


def test_a_host_an_operator_disabled_is_never_enabled(bed):
    cloud, daemon = bed
    instance = build(cloud, "kept", host=HOST)
    with cloud.session() as session:
        hosts.set_host_enabled(session, HOST, False, "maintenance")
    daemon.kill()
    daemon.start()
    # The runner is subscribed to hv again (and so has judged whether to
    # enable it) once a guest's power-off behind its back reaches the
    # database: only a subscribed host's events and syncs are written.
    wait_until(lambda: _answers(cloud.sweeper.uri), 30, "hv answers")
    destroy_behind_vmflows_back(cloud.sweeper.uri, instance["uuid"])
    wait_until(lambda: cloud.instance(instance["uuid"])["vm_state"]
               == instances.STOPPED, SETTLE_TIMEOUT,
               "the runner to hear hv again")
    host = host_row(cloud, HOST)
    assert (host["enabled"], host["disabled_reason"]) == (False,
                                                          "maintenance")


def _answers(uri):
    try:
        libvirt.open(uri).close()
    except libvirt.libvirtError:
        return False
    return True
