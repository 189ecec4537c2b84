"""Command runners: the same small interface on this machine and over SSH.

The image backend (and later the disk transfer tasks) only talk to a runner,
so one code path manages disks on the local host and on a remote one:

* ``run(argv, timeout=None) -> str`` runs a program given as an argument
  list (never a shell string) and returns its stdout, or raises
  :class:`~vmflow.exception.CommandFailed` with the exit status and the
  trimmed stderr.
* ``put_file(local, remote)``, ``get_file(remote, local)``, ``exists``,
  ``makedirs``, ``remove_tree``, ``rename``, ``listdir``, ``touch`` act on
  the runner's host file system;
* ``open_file(path, mode)`` opens a file there for streaming (``"rb"`` or
  ``"wb"``), e.g. to copy a disk from one host to another
  (:mod:`vmflow.drivers.remote.transfer`).

:class:`LocalRunner` lives here; :class:`~vmflow.drivers.remote.ssh.SSHRunner`
does the same over paramiko.
"""
import os
import shlex
import shutil
import subprocess
import threading

from vmflow import exception

STDERR_LIMIT = 500
COMMAND_LIMIT = 200
DEFAULT_TIMEOUT = 600


def describe_command(argv):
    """The argument list as a (trimmed) shell-quoted line, for messages."""
    text = shlex.join(str(arg) for arg in argv)
    if len(text) > COMMAND_LIMIT:
        text = text[:COMMAND_LIMIT] + "..."
    return text


def trim_stderr(stderr):
    """Keep the end of stderr (where the error usually is), on one line."""
    text = " ".join((stderr or "").split())
    if len(text) > STDERR_LIMIT:
        text = "..." + text[-STDERR_LIMIT:]
    return text or "(no error output)"


def check_argv(argv):
    if isinstance(argv, (str, bytes)) or not argv:
        raise TypeError("argv must be a non-empty list of arguments, "
                        f"not {argv!r}")
    return [os.fspath(arg) if isinstance(arg, os.PathLike) else str(arg)
            for arg in argv]


class LocalRunner:
    """Runs commands and file operations on this machine."""

    target = "localhost"

    def __init__(self, timeout=DEFAULT_TIMEOUT):
        self.timeout = timeout

    def __repr__(self):
        return "LocalRunner()"

    def run(self, argv, timeout=None):
        argv = check_argv(argv)
        timeout = timeout or self.timeout
        try:
            result = subprocess.run(argv, capture_output=True, text=True,
                                    timeout=timeout, check=False,
                                    stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise exception.CommandFailed(
                command=describe_command(argv),
                status=f"timeout after {timeout}s",
                stderr=trim_stderr(_decode(exc.stderr))) from None
        except OSError as exc:
            raise exception.CommandFailed(
                command=describe_command(argv), status=127,
                stderr=exc.strerror or str(exc)) from None
        if result.returncode != 0:
            raise exception.CommandFailed(
                command=describe_command(argv), status=result.returncode,
                stderr=trim_stderr(result.stderr))
        return result.stdout

    def put_file(self, local_path, remote_path):
        _file_op("copy", remote_path, shutil.copyfile, local_path,
                 remote_path)

    def get_file(self, remote_path, local_path):
        _file_op("copy", remote_path, shutil.copyfile, remote_path,
                 local_path)

    def exists(self, path):
        return os.path.lexists(path)

    def makedirs(self, path, mode=0o755):
        _file_op("mkdir", path, os.makedirs, path, mode=mode, exist_ok=True)

    def remove_tree(self, path):
        """Remove a file or directory tree; True if something was there."""
        if os.path.isdir(path) and not os.path.islink(path):
            _file_op("remove", path, shutil.rmtree, path)
            return True
        if os.path.lexists(path):
            _file_op("remove", path, os.unlink, path)
            return True
        return False

    def rename(self, src, dst):
        _file_op("rename", src, os.replace, src, dst)

    def listdir(self, path):
        return sorted(_file_op("list", path, os.listdir, path))

    def touch(self, path):
        def _touch(path):
            with open(path, "a"):
                pass
        _file_op("touch", path, _touch, path)

    def open_file(self, path, mode):
        return _file_op("open", path, open, path, mode)

    def close(self):
        pass


def _file_op(what, path, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except OSError as exc:
        raise exception.ImageBackendError(
            reason=f"{what} {path}: {exc.strerror or exc}") from None


def _decode(data):
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


_THREAD_RUNNERS = threading.local()


def runner_for_host(host):
    """LocalRunner for a host without ``ssh_host``, else an SSHRunner.

    SSH runners are kept per thread and target (host, port, user, key and
    known_hosts file as configured now), so the tasks a runner thread runs
    one after another share one connection instead of each leaving an
    open SSH transport (and its thread) behind.
    """
    if not host.get("ssh_host"):
        return LocalRunner()
    from vmflow.drivers.remote import ssh
    runner = ssh.SSHRunner(host["ssh_host"], port=host.get("ssh_port") or 22,
                           user=host.get("ssh_user"), name=host.get("name"))
    key = (runner.name, runner.host, runner.port, runner.user,
           runner.key_file, runner.known_hosts_file)
    cache = _THREAD_RUNNERS.__dict__.setdefault("runners", {})
    return cache.setdefault(key, runner)


def close_thread_runners():
    """Close this thread's SSH connections (tests; a thread's end)."""
    for runner in _THREAD_RUNNERS.__dict__.pop("runners", {}).values():
        runner.close()
