"""How long libvirt's ``destroy`` of a running guest takes, measured.

    .venv/bin/python -m benchmarks.destroy_latency [--rounds 8]
        [--uri URI] [--compare]

Each round starts a transient no-boot guest (TCG, 64 MiB, no disk, no
kernel: the firmware finds nothing to boot and idles), lets it run a
moment, then times ``virDomainDestroy``. libvirt returns from destroy only
once the QEMU process has been reaped; on this test bed PID 1 reaps
orphans slowly, so the test-bed scripts run libvirtd under
tools/testbed/subreaper.py, which QEMU's orphans reach instead.

Without ``--uri`` a private libvirtd is started for the run
(tools/testbed/start-second-libvirtd.sh, so under the subreaper) and
stopped afterwards; ``--compare`` also measures one started with
``TESTBED_SUBREAPER=0`` (the daemons then hang off PID 1, as before the
subreaper). ``--uri qemu:///system`` measures the shared daemon as it runs
now. Run as root on the test bed.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import libvirt

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTBED = os.path.join(REPO_ROOT, "tools", "testbed")
SETTLE_SECONDS = 0.5  # let the guest get going before it is destroyed

NO_BOOT_DOMAIN = """<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <on_poweroff>destroy</on_poweroff>
</domain>"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8,
                        help="guests started and destroyed (default 8)")
    parser.add_argument("--uri",
                        help="measure this running libvirtd instead of "
                             "starting a private one")
    parser.add_argument("--compare", action="store_true",
                        help="also measure a private libvirtd started "
                             "without the subreaper")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("need at least one round")
    if args.uri and args.compare:
        parser.error("--compare starts its own daemons; drop --uri")
    return args


def start_private_libvirtd(subreaper):
    """(uri, state dir) of a new private libvirtd."""
    state_dir = tempfile.mkdtemp(prefix="vmflow-bench-destroy-", dir="/tmp")
    env = dict(os.environ, TESTBED_SUBREAPER="1" if subreaper else "0")
    result = subprocess.run(
        ["bash", os.path.join(TESTBED, "start-second-libvirtd.sh"),
         state_dir], capture_output=True, text=True, timeout=300,
        check=False, stdin=subprocess.DEVNULL, env=env)
    if result.returncode != 0:
        sys.exit(f"start-second-libvirtd.sh failed:\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1], state_dir


def stop_private_libvirtd(state_dir):
    subprocess.run(["bash", os.path.join(TESTBED, "stop-second-libvirtd.sh"),
                    state_dir], capture_output=True, timeout=300,
                   check=True, stdin=subprocess.DEVNULL)
    shutil.rmtree(state_dir, ignore_errors=True)


def destroy_times(uri, rounds):
    """Seconds each of ``rounds`` destroys of a running guest took."""
    conn = libvirt.open(uri)
    times = []
    try:
        for _ in range(rounds):
            name = f"vmflow-bench-destroy-{uuid.uuid4().hex[:8]}"
            # transient: gone once destroyed
            domain = conn.createXML(NO_BOOT_DOMAIN.format(name=name), 0)
            destroyed = False
            try:
                time.sleep(SETTLE_SECONDS)
                started = time.monotonic()
                domain.destroy()
                destroyed = True
                times.append(time.monotonic() - started)
            finally:
                if not destroyed:
                    domain.destroy()
    finally:
        conn.close()
    return times


def report(label, times):
    print(f"{label:<34} destroy: median {statistics.median(times):5.2f} s"
          f"   min {min(times):5.2f} s   max {max(times):5.2f} s"
          f"   ({len(times)} rounds)")


def measure_private(subreaper, rounds):
    uri, state_dir = start_private_libvirtd(subreaper)
    try:
        return destroy_times(uri, rounds)
    finally:
        stop_private_libvirtd(state_dir)


def main(argv=None):
    args = parse_args(argv)
    if args.uri:
        report(args.uri, destroy_times(args.uri, args.rounds))
        return
    if args.compare:
        report("private libvirtd, no subreaper",
               measure_private(False, args.rounds))
    report("private libvirtd, subreaper", measure_private(True, args.rounds))


if __name__ == "__main__":
    main()
