"""The test bed itself: real sshd, two independent libvirtds, the tiny guest
booted through libvirt-python with TCG and its ACPI behaviour."""
import subprocess
import time
import uuid

import libvirt
import paramiko
import pytest
from lxml import etree

from tests.integration.conftest import (DOMAIN_PREFIX, cleanup_domains,
                                       run_testbed_script, wait_until)

BOOT_TIMEOUT = 60
SHUTDOWN_TIMEOUT = 30
NOACPI_WATCH = 5


def domain_name():
    return f"{DOMAIN_PREFIX}{uuid.uuid4().hex[:12]}"


def connect(sshd, known_hosts_file):
    client = paramiko.SSHClient()
    client.load_host_keys(str(known_hosts_file))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(sshd.host, port=sshd.port, username=sshd.user,
                   key_filename=str(sshd.key_file), look_for_keys=False,
                   allow_agent=False, timeout=10, banner_timeout=10,
                   auth_timeout=10)
    return client


def state_of(dom):
    return dom.state()[0]


# --- sshd -----------------------------------------------------------------------

def test_sshd_accepts_the_client_key_with_a_verified_host_key(sshd):
    client = connect(sshd, sshd.known_hosts_file)
    try:
        _stdin, stdout, _stderr = client.exec_command("echo ok", timeout=10)
        assert stdout.read().decode() == "ok\n"
        assert stdout.channel.recv_exit_status() == 0
        server_key = client.get_transport().get_remote_server_key()
        assert (f"{server_key.get_name()} {server_key.get_base64()}"
                == sshd.host_public_key)
        sftp = client.open_sftp()
        try:
            assert sftp.stat(str(sshd.known_hosts_file)).st_size > 0
        finally:
            sftp.close()
    finally:
        client.close()


def test_sshd_host_with_another_key_is_rejected(sshd, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                    "-f", str(tmp_path / "impostor")],
                   check=True, capture_output=True, timeout=60)
    key_type, key_data = (tmp_path / "impostor.pub").read_text().split()[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[{sshd.host}]:{sshd.port} {key_type} {key_data}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        connect(sshd, wrong)


def test_sshd_unknown_host_is_rejected(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        connect(sshd, empty)


# --- two libvirtds ---------------------------------------------------------------

def test_second_libvirtd_is_independent(libvirt_uri, second_libvirt_uri,
                                        tiny_guest, clean_domains, tmp_path):
    clean_domains(second_libvirt_uri)
    assert second_libvirt_uri.startswith("qemu+unix:///system?socket=")
    first = libvirt.open(libvirt_uri)
    second = libvirt.open(second_libvirt_uri)
    on_second, on_first = domain_name(), domain_name()
    try:
        second.defineXML(tiny_guest.domain_xml(
            on_second, "acpi", tmp_path / "second.log"))
        first.defineXML(tiny_guest.domain_xml(
            on_first, "acpi", tmp_path / "first.log"))

        assert on_second in second.listDefinedDomains()
        assert on_second not in first.listDefinedDomains()
        assert on_first in first.listDefinedDomains()
        assert on_first not in second.listDefinedDomains()
        with pytest.raises(libvirt.libvirtError) as missing:
            first.lookupByName(on_second)
        assert missing.value.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
    finally:
        for conn, name in ((second, on_second), (first, on_first)):
            try:
                conn.lookupByName(name).undefine()
            except libvirt.libvirtError as error:
                if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
        first.close()
        second.close()


def live_process(pid):
    """(comm, parent pid) of ``pid``, or None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            comm, rest = stat.read().split(" (", 1)[1].rsplit(") ", 1)
    except OSError:
        return None
    state, parent = rest.split()[:2]
    return None if state == "Z" else (comm, int(parent))


def pid_in(path):
    return int(path.read_text().strip())


def test_private_libvirtd_runs_under_a_reaper_that_stop_ends(tiny_guest,
                                                            tmp_path):
    """QEMU orphaned by libvirtd goes to tools/testbed/subreaper.py, not to
    PID 1 (which reaps lazily: destroy waits for the reaping);
    stop-second-libvirtd.sh ends the reapers too."""
    state_dir = tmp_path / "hv"
    uri = run_testbed_script("start-second-libvirtd.sh", str(state_dir),
                             timeout=300).strip().splitlines()[-1]
    name = domain_name()
    try:
        conn = libvirt.open(uri)
        try:
            conn.createXML(tiny_guest.domain_xml(
                name, "noacpi", tmp_path / "console.log"), 0)
            reaper = pid_in(state_dir / "libvirtd-reaper.pid")
            qemu = pid_in(state_dir / "run" / "qemu" / f"{name}.pid")
            assert live_process(reaper)[0] == "vmflow-reaper"
            assert live_process(pid_in(state_dir / "libvirtd.pid")) == (
                "libvirtd", reaper)
            assert live_process(qemu)[1] == reaper
            virtlogd_reaper = pid_in(state_dir / "virtlogd-reaper.pid")
            assert live_process(pid_in(state_dir / "virtlogd.pid")) == (
                "virtlogd", virtlogd_reaper)
        finally:
            conn.close()
    finally:
        run_testbed_script("stop-second-libvirtd.sh", str(state_dir),
                           timeout=300)
    for pid in (reaper, virtlogd_reaper, qemu):
        assert live_process(pid) is None


# --- the tiny guest ----------------------------------------------------------------

@pytest.mark.parametrize("hypervisor", ["libvirt_uri", "second_libvirt_uri"])
def test_acpi_guest_boots_and_powers_off_on_the_power_button(
        hypervisor, request, tiny_guest, clean_domains, tmp_path):
    uri = clean_domains(request.getfixturevalue(hypervisor))
    console = tmp_path / "console.log"
    conn = libvirt.open(uri)
    dom = None
    try:
        xml = tiny_guest.domain_xml(domain_name(), "acpi", console)
        dom = conn.defineXML(xml)
        assert etree.fromstring(dom.XMLDesc()).get("type") == "qemu"  # TCG
        started = time.monotonic()
        dom.create()
        boot = tiny_guest.wait_for_marker(console, "acpi", BOOT_TIMEOUT)
        assert state_of(dom) == libvirt.VIR_DOMAIN_RUNNING

        pressed = time.monotonic()
        dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        wait_until(lambda: state_of(dom) == libvirt.VIR_DOMAIN_SHUTOFF,
                   SHUTDOWN_TIMEOUT, "the acpi guest to power off")
        shutdown = time.monotonic() - pressed
        assert b"power button pressed" in console.read_bytes()
        print(f"\n{uri}: marker {boot:.1f}s after create(), powered off "
              f"{shutdown:.1f}s after the ACPI press "
              f"(total {time.monotonic() - started:.1f}s)")
    finally:
        if dom is not None:
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        conn.close()


def test_noacpi_guest_ignores_the_power_button(libvirt_uri, tiny_guest,
                                               clean_domains, tmp_path):
    console = tmp_path / "console.log"
    conn = libvirt.open(libvirt_uri)
    dom = None
    try:
        # transient: it goes away with destroy()
        dom = conn.createXML(tiny_guest.domain_xml(
            domain_name(), "noacpi", console))
        tiny_guest.wait_for_marker(console, "noacpi", BOOT_TIMEOUT)
        dom.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        deadline = time.monotonic() + NOACPI_WATCH
        while time.monotonic() < deadline:
            assert state_of(dom) == libvirt.VIR_DOMAIN_RUNNING
            time.sleep(0.25)
        assert b"power button pressed" not in console.read_bytes()
    finally:
        if dom is not None and dom.isActive():
            dom.destroy()
        conn.close()


def test_cleanup_domains_removes_running_and_defined_domains(
        second_libvirt_uri, tiny_guest, tmp_path):
    conn = libvirt.open(second_libvirt_uri)
    try:
        keep, defined, running = domain_name(), domain_name(), domain_name()
        conn.defineXML(tiny_guest.domain_xml(keep, "noacpi", tmp_path / "k"))
        conn.defineXML(tiny_guest.domain_xml(defined, "noacpi",
                                             tmp_path / "d"))
        conn.createXML(tiny_guest.domain_xml(running, "noacpi",
                                             tmp_path / "r"))
        removed = cleanup_domains(second_libvirt_uri, keep={keep})
        assert sorted(removed) == sorted([defined, running])
        names = {dom.name() for dom in conn.listAllDomains()}
        assert keep in names and not names & {defined, running}
        assert cleanup_domains(second_libvirt_uri) == [keep]
        assert not [dom for dom in conn.listAllDomains()
                    if dom.name().startswith(DOMAIN_PREFIX)]
    finally:
        cleanup_domains(second_libvirt_uri)
        conn.close()
