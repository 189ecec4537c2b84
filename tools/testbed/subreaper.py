#!/usr/bin/env python3
"""Run a self-daemonising daemon (libvirtd -d, virtlogd -d) under a process
that reaps its orphans at once.

On this test bed PID 1 reaps orphans slowly, and QEMU is an orphan: libvirt
double-forks it, and on destroy libvirt waits until the QEMU process has
been reaped, so `virsh destroy` took 1.2-2 s. A process that sets
prctl(PR_SET_CHILD_SUBREAPER) receives the orphans among its descendants
instead of PID 1; this one reaps them as soon as they exit.

    subreaper.py --pid-file REAPER_PIDFILE [--daemon-pid-file FILE] -- CMD...

Forks a reaper (new session, named "vmflow-reaper", its pid written to
REAPER_PIDFILE) that runs CMD; once CMD has returned, this command exits
with CMD's status, after which the daemon CMD left behind is a child of the
reaper. The reaper then reaps every child that exits, and itself exits when
none is left: the daemon has exited and so have the orphans it left (QEMU
processes a stopped libvirtd leaves running stay children of this reaper,
and a restarted libvirtd that takes them over still sees them reaped at
once). SIGTERM ends it at once; its remaining children then go to PID 1.

With --daemon-pid-file, the pid CMD wrote there is checked to be a child of
the reaper (a warning on stderr otherwise: destroys would be slow again).
CMD's standard output and error are the caller's; the reaper's own are
/dev/null once CMD has returned, so a caller capturing output is not kept
waiting. Python 3 standard library only.
"""
import argparse
import ctypes
import os
import subprocess
import sys
import traceback

PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
REAPER_NAME = b"vmflow-reaper"  # /proc/PID/comm, what lib.sh's pid_of checks


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pid-file", required=True,
                        help="where the reaper writes its pid")
    parser.add_argument("--daemon-pid-file",
                        help="the pid file CMD writes (checked to name a "
                             "child of the reaper)")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- CMD ARGS...: the daemon start command")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("no command given")
    return args


def prctl(option, value):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl({option}): {os.strerror(error)}")


def parent_of(pid):
    """The parent pid of ``pid`` from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # "PID (COMM) STATE PPID ...": COMM may hold spaces and ')'
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def check_daemon_is_child(pid_file):
    try:
        with open(pid_file) as handle:
            daemon_pid = int(handle.read().strip())
    except (OSError, ValueError) as error:
        print(f"subreaper: warning: no daemon pid in {pid_file}: {error}",
              file=sys.stderr)
        return
    if parent_of(daemon_pid) != os.getpid():
        print(f"subreaper: warning: daemon {daemon_pid} ({pid_file}) is not "
              f"a child of the reaper; its orphans will not be reaped here",
              file=sys.stderr)


def detach_stdio():
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def reap_until_no_children():
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def run_reaper(args, status_pipe):
    """In the forked reaper: start CMD, send its exit status, then reap."""
    os.setsid()
    prctl(PR_SET_NAME, ctypes.c_char_p(REAPER_NAME))
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    with open(args.pid_file, "w") as pid_file:
        pid_file.write(f"{os.getpid()}\n")
    try:
        status = subprocess.call(args.command, stdin=subprocess.DEVNULL)
    except OSError as error:
        print(f"subreaper: cannot run {args.command[0]}: {error}",
              file=sys.stderr)
        status = 127
    if status == 0 and args.daemon_pid_file:
        check_daemon_is_child(args.daemon_pid_file)
    os.write(status_pipe, bytes([status if 0 <= status < 256 else 1]))
    # hold nothing of the caller's: its output pipes, locks, directory
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    detach_stdio()
    os.chdir("/")
    reap_until_no_children()


def main(argv=None):
    args = parse_args(argv)
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.close(read_end)
        try:
            run_reaper(args, write_end)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    os.close(write_end)
    status = os.read(read_end, 1)
    if not status:
        sys.exit("subreaper: the reaper died before the command returned")
    sys.exit(status[0])


if __name__ == "__main__":
    main()
