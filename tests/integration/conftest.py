"""Fixtures for the integration tests: real libvirtd + QEMU guests, a second
independent libvirtd, the tiny test guest and a real sshd.

Everything here is set up by the scripts in tools/testbed/ (what CI runs as
tools/testbed/setup.sh); the fixtures run them again, which is quick when the
work is done. A fixture that cannot set its part up fails the test with the
reason; it never skips. Every test in this directory is marked
``integration``.

Session fixtures:
  libvirt_uri         "qemu:///system", libvirtd running
  second_libvirt_uri  "qemu+unix:///system?socket=<dir>/run/libvirt-sock",
                      an independent libvirtd (a second "host")
  tiny_guest          TinyGuest: kernel, initrd_acpi, initrd_noacpi, disk,
                      marker, cmdline; see the class
  sshd                SshServer: host, port, user, key_file, known_hosts_file
Function fixtures:
  clean_domains       removes the vmflow-test-* domains a test leaves behind
  redis_namespace     a fresh job board namespace on the machine's Redis
                      (127.0.0.1:6379), its keys deleted afterwards
Helpers: cleanup_domains(uri), wait_until(predicate, timeout, what)

Guests run QEMU as the user libvirt-qemu, which cannot enter pytest's
temporary directories (mode 0700): keep guest *disks* elsewhere (e.g. a
0755 directory under /var/tmp). Console files (<serial type='file'>) may be
anywhere: libvirt opens them itself.
"""
import dataclasses
import fcntl
import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time

import libvirt
import pytest
from lxml import etree
from lxml.builder import E

from tests.conftest import wait_until  # noqa: F401 (re-exported helper)
from tests.functional.engine import helpers as engine_helpers

HERE = pathlib.Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
TESTBED = REPO_ROOT / "tools" / "testbed"
SYSTEM_URI = "qemu:///system"
DOMAIN_PREFIX = "vmflow-test-"
SSHD = "/usr/sbin/sshd"
SESSIONS_LOCK = "/run/vmflow-test-sessions.lock"

# libvirt's default error handler prints every error (even the ones tests
# expect, such as VIR_ERR_NO_DOMAIN) on stderr; the exceptions carry them.
libvirt.registerErrorHandler(lambda _ctx, _error: None, None)


def pytest_collection_modifyitems(config, items):
    """Mark every test under tests/integration as ``integration``."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


# --- helpers --------------------------------------------------------------

def _fail(message):
    pytest.fail(message, pytrace=False)


def run_testbed_script(name, *args, timeout=600):
    """Run tools/testbed/NAME; fail the test with its output if it fails.

    Returns its standard output.
    """
    if os.geteuid() != 0:
        _fail(f"integration tests must run as root ({name} manages daemons)")
    script = TESTBED / name
    try:
        result = subprocess.run(["bash", str(script), *args],
                                capture_output=True, text=True,
                                timeout=timeout, check=False,
                                stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        _fail(f"{script} {' '.join(args)} did not finish in {timeout}s")
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-3000:]
        _fail(f"{script} {' '.join(args)} exited {result.returncode}:\n"
              f"{output}")
    return result.stdout


def _domain_names(uri, prefix=DOMAIN_PREFIX):
    conn = libvirt.open(uri)
    try:
        return {dom.name() for dom in conn.listAllDomains()
                if dom.name().startswith(prefix)}
    finally:
        conn.close()


def cleanup_domains(uri, prefix=DOMAIN_PREFIX, keep=()):
    """Destroy and undefine every domain on ``uri`` whose name starts with
    ``prefix``, except those named in ``keep``. Returns the names removed.
    Raises if one cannot be removed.
    """
    removed = []
    conn = libvirt.open(uri)
    try:
        for dom in conn.listAllDomains():
            name = dom.name()
            if not name.startswith(prefix) or name in keep:
                continue
            try:
                if dom.isActive():
                    dom.destroy()
                if dom.isPersistent():
                    dom.undefineFlags(
                        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                        | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                        | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
                        | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            except libvirt.libvirtError as error:
                # a transient domain vanishes once destroyed
                if error.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                    raise
            removed.append(name)
    finally:
        conn.close()
    return removed


# --- libvirt ------------------------------------------------------------------

class _Sessions:
    """Every test session holds a shared lock on SESSIONS_LOCK while it
    runs, so a session can tell whether it is alone on this machine: sweeping
    ``vmflow-test-*`` domains it did not create is only safe then (another
    session on the same libvirtd would lose its guests)."""

    def __init__(self):
        self.fd = os.open(SESSIONS_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_SH)

    def alone(self):
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        # back to shared (a failed conversion may have dropped the lock)
        fcntl.flock(self.fd, fcntl.LOCK_SH)
        return alone

    def close(self):
        os.close(self.fd)


@pytest.fixture(scope="session")
def _test_sessions():
    sessions = _Sessions()
    yield sessions
    sessions.close()


@pytest.fixture(scope="session")
def libvirt_uri(_test_sessions):
    """``qemu:///system`` with libvirtd running (tools/testbed/start-libvirtd.sh).

    When no other test session runs on this machine, ``vmflow-test-*``
    domains left by earlier, interrupted runs are removed first.
    """
    run_testbed_script("start-libvirtd.sh", timeout=300)
    if _test_sessions.alone():
        leftovers = cleanup_domains(SYSTEM_URI)
        if leftovers:
            print(f"\nremoved leftover domains on {SYSTEM_URI}: {leftovers}")
    return SYSTEM_URI


@pytest.fixture(scope="session")
def second_libvirt_uri(tmp_path_factory):
    """The URI of a second, independent libvirtd, for two-host tests.

    Its state (configuration, domains, logs) lives in a temporary directory;
    it is started by tools/testbed/start-second-libvirtd.sh and stopped (with
    its guests destroyed) at the end of the session.
    """
    state_dir = tmp_path_factory.mktemp("hv2")
    stdout = run_testbed_script("start-second-libvirtd.sh", str(state_dir),
                                timeout=300)
    uri = stdout.strip().splitlines()[-1]
    try:
        yield uri
    finally:
        run_testbed_script("stop-second-libvirtd.sh", str(state_dir),
                           timeout=300)


@pytest.fixture
def instances_root():
    """A 0755 folder under /var/tmp for instances paths: QEMU runs as
    libvirt-qemu, which cannot enter pytest's 0700 temporary folders."""
    path = tempfile.mkdtemp(prefix="vmflow-test-instances-", dir="/var/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def clean_domains(libvirt_uri, _test_sessions):
    """Remove the ``vmflow-test-*`` domains a test leaves on qemu:///system.

    Returns a callable: ``clean_domains(uri)`` adds another URI (e.g. the
    second libvirtd's; call it before creating domains there) and returns
    it. At teardown, every ``vmflow-test-*`` domain that did not exist when
    its URI was added is destroyed and undefined. While another test session
    runs on this machine, the new domains may be its own: they are then
    only reported, except on URIs private to this session (the second
    libvirtd of ``second_libvirt_uri``).
    """
    existing = {}

    def add(uri):
        if uri not in existing:
            existing[uri] = _domain_names(uri)
        return uri

    add(libvirt_uri)
    yield add
    alone = _test_sessions.alone()
    removed, left = {}, {}
    for uri, before in existing.items():
        if alone or uri != libvirt_uri:
            names = cleanup_domains(uri, keep=before)
            if names:
                removed[uri] = names
        else:
            names = _domain_names(uri) - before
            if names:
                left[uri] = sorted(names)
    if removed:
        print(f"\nclean_domains removed leftover domains: {removed}")
    if left:
        print(f"\nclean_domains left new domains alone (another test session "
              f"runs on this machine): {left}")


@pytest.fixture
def redis_namespace():
    """A job board namespace of its own on the machine's Redis (shared:
    never flushed); its keys are deleted afterwards."""
    with engine_helpers.redis_namespace() as namespace:
        yield namespace


# --- the tiny guest ---------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TinyGuest:
    """The test guest built by tools/testbed/build-guest.sh.

    Boot it by direct kernel boot (``kernel`` + one of the initrds, kernel
    command line ``cmdline``) with ``<domain type='qemu'>`` (TCG) and a
    ``<serial type='file'>`` console. Once init runs it prints
    ``f"{marker} {variant}"`` (``VMFLOW-GUEST-BOOTED acpi`` or
    ``VMFLOW-GUEST-BOOTED noacpi``) on that console. The acpi variant powers
    off on an ACPI power-button press (it is armed when the marker is
    printed); the noacpi variant ignores it and runs until destroyed.
    ``disk`` is an empty 64 MiB qcow2 to use as an image (copy it or put an
    overlay on it; do not boot two guests on it read-write).
    """
    kernel: pathlib.Path
    initrd_acpi: pathlib.Path
    initrd_noacpi: pathlib.Path
    disk: pathlib.Path
    marker: str
    cmdline: str
    kernel_version: str

    def initrd(self, variant):
        return {"acpi": self.initrd_acpi, "noacpi": self.initrd_noacpi}[variant]

    def marker_line(self, variant):
        return f"{self.marker} {variant}"

    def domain_xml(self, name, variant, console_path, memory_mib=128):
        """A minimal domain (no disk, no network) booting this guest,
        built with lxml; returns the XML as a string."""
        domain = E.domain(
            E.name(name),
            E.memory(str(memory_mib), unit="MiB"),
            E.vcpu("1"),
            E.os(
                E.type("hvm", arch="x86_64", machine="pc"),
                E.kernel(str(self.kernel)),
                E.initrd(str(self.initrd(variant))),
                E.cmdline(self.cmdline),
            ),
            E.features(E.acpi()),
            E.on_poweroff("destroy"),
            E.on_reboot("restart"),
            E.on_crash("destroy"),
            E.devices(
                E.serial(E.source(path=str(console_path)),
                         E.target(port="0"), type="file"),
            ),
            type="qemu",
        )
        return etree.tostring(domain, encoding="unicode")

    def wait_for_marker(self, console_path, variant, timeout=60):
        """Seconds until the boot marker appears in ``console_path``."""
        started = time.monotonic()
        line = self.marker_line(variant).encode()
        path = pathlib.Path(console_path)

        def seen():
            return path.exists() and line in path.read_bytes()

        try:
            wait_until(seen, timeout, f"{line.decode()!r} in {path}")
        except AssertionError as error:
            tail = (path.read_bytes()[-2000:].decode(errors="replace")
                    if path.exists() else "(no console file)")
            raise AssertionError(f"{error}; console ends with:\n{tail}")
        return time.monotonic() - started


@pytest.fixture(scope="session")
def tiny_guest():
    """The tiny test guest (tools/testbed/build-guest.sh, cached)."""
    out_dir = REPO_ROOT / ".testbed" / "guest"
    run_testbed_script("build-guest.sh", str(out_dir), timeout=900)
    manifest = json.loads((out_dir / "guest.json").read_text())
    guest = TinyGuest(
        kernel=pathlib.Path(manifest["kernel"]),
        initrd_acpi=pathlib.Path(manifest["initrd_acpi"]),
        initrd_noacpi=pathlib.Path(manifest["initrd_noacpi"]),
        disk=pathlib.Path(manifest["disk"]),
        marker=manifest["marker"],
        cmdline=manifest["cmdline"],
        kernel_version=manifest["kernel_version"],
    )
    for path in (guest.kernel, guest.initrd_acpi, guest.initrd_noacpi,
                 guest.disk):
        if not path.is_file():
            _fail(f"build-guest.sh did not produce {path}")
    return guest


# --- sshd -----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SshServer:
    """A real sshd on 127.0.0.1 accepting ``user`` with ``key_file``; its
    host key is the only entry of ``known_hosts_file``."""
    host: str
    port: int
    user: str
    key_file: pathlib.Path
    known_hosts_file: pathlib.Path
    host_public_key: str
    log_file: pathlib.Path


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ssh_keygen(path, comment):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                    "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, timeout=60,
                   stdin=subprocess.DEVNULL)


def _sshd_banner(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            return sock.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


def _stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real OpenSSH server on a free 127.0.0.1 port for the session.

    Own host key, own authorized_keys with a fresh client key, root login by
    key only; stopped at the end of the session.
    """
    if os.geteuid() != 0:
        _fail("the sshd fixture must run as root")
    if not os.access(SSHD, os.X_OK) or shutil.which("ssh-keygen") is None:
        _fail(f"{SSHD} or ssh-keygen missing: run tools/testbed/setup.sh")
    work = tmp_path_factory.mktemp("sshd")
    host_key = work / "ssh_host_ed25519_key"
    client_key = work / "id_ed25519"
    _ssh_keygen(host_key, "vmflow-test-host")
    _ssh_keygen(client_key, "vmflow-test-client")
    authorized_keys = work / "authorized_keys"
    shutil.copyfile(f"{client_key}.pub", authorized_keys)
    authorized_keys.chmod(0o600)
    log_file = work / "sshd.log"
    # privilege separation directory, normally made by the init script
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)

    process = port = None
    for _attempt in range(3):
        port = _free_port()
        config = work / "sshd_config"
        config.write_text("\n".join([
            f"Port {port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {host_key}",
            f"PidFile {work / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized_keys}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "StrictModes no",
            "Subsystem sftp internal-sftp",
            "LogLevel VERBOSE",
        ]) + "\n")
        check = subprocess.run([SSHD, "-t", "-f", str(config)],
                               capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            _fail(f"sshd rejects its configuration: {check.stderr.strip()}")
        process = subprocess.Popen(
            [SSHD, "-D", "-f", str(config), "-E", str(log_file)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 15
        while (process.poll() is None and not _sshd_banner(port)
               and time.monotonic() < deadline):
            time.sleep(0.05)
        if process.poll() is None and _sshd_banner(port):
            break
        _stop(process)
        process = None  # port taken meanwhile, or a real failure: retry
    if process is None:
        log = log_file.read_text() if log_file.exists() else ""
        _fail(f"sshd did not start on 127.0.0.1; its log:\n{log[-2000:]}")

    key_type, key_data = pathlib.Path(f"{host_key}.pub").read_text().split()[:2]
    known_hosts = work / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {key_type} {key_data}\n")
    try:
        yield SshServer(host="127.0.0.1", port=port, user="root",
                        key_file=client_key, known_hosts_file=known_hosts,
                        host_public_key=f"{key_type} {key_data}",
                        log_file=log_file)
    finally:
        _stop(process)
