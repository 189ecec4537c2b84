"""SSHRunner: the runner interface over paramiko SSH and SFTP.

Host keys are verified: the client loads ``[ssh] known_hosts_file`` and uses
a :class:`paramiko.RejectPolicy`, so a host that is missing from the file or
presents another key is refused with
:class:`~vmflow.exception.HostKeyMismatch`. Commands are argument lists
joined with :func:`shlex.join`: every argument reaches the remote program
literally, the remote shell interprets none of them. Keys and passwords are
never logged.
"""
import errno
import logging
import os
import select
import shlex
import stat
import threading
import time

import paramiko

from vmflow import conf as vmflow_conf
from vmflow import exception
from vmflow.drivers.remote.runner import (check_argv, describe_command,
                                          trim_stderr)

LOG = logging.getLogger(__name__)
CONF = vmflow_conf.CONF
READ_CHUNK = 65536


class _RejectUnknownHostKey(paramiko.RejectPolicy):
    """RejectPolicy that says which key was refused, as HostKeyMismatch."""

    def __init__(self, known_hosts_file, target):
        self.known_hosts_file = known_hosts_file
        self.target = target

    def missing_host_key(self, client, hostname, key):
        client.close()
        raise exception.HostKeyMismatch(
            target=self.target,
            reason=f"no {key.get_name()} key for it in "
                   f"{self.known_hosts_file} (server offered "
                   f"{key.fingerprint})")


class SSHRunner:
    """Runs commands and file operations on a remote host over SSH."""

    def __init__(self, host, port=22, user=None, key_file=None,
                 known_hosts_file=None, connect_timeout=None,
                 command_timeout=None, name=None):
        self.name = name  # the registered host's name, for messages
        self.host = host
        self.port = int(port or 22)
        self.user = user or CONF.ssh.user
        self.key_file = _expand(key_file or CONF.ssh.key_file)
        self.known_hosts_file = _expand(known_hosts_file
                                        or CONF.ssh.known_hosts_file)
        self.connect_timeout = (connect_timeout
                                or CONF.ssh.connect_timeout_seconds)
        self.command_timeout = (command_timeout
                                or CONF.ssh.command_timeout_seconds)
        self._client = None
        self._sftp = None
        self._lock = threading.RLock()

    @property
    def target(self):
        address = f"{self.user}@{self.host}:{self.port}"
        return f"host {self.name} ({address})" if self.name else address

    def __repr__(self):
        return f"SSHRunner({self.target!r})"

    # -- connection -------------------------------------------------------

    def connect(self):
        """Open (or reuse) the SSH connection; returns the SSHClient."""
        with self._lock:
            if self._client is not None and _transport_active(self._client):
                return self._client
            self._drop_connection()
            self._client = self._open_client()
            return self._client

    def _open_client(self):
        client = paramiko.SSHClient()
        try:
            client.load_host_keys(self.known_hosts_file)
        except OSError as exc:
            raise exception.HostKeyMismatch(
                target=self.target,
                reason=f"cannot read known_hosts file "
                       f"{self.known_hosts_file}: {exc.strerror}") from None
        client.set_missing_host_key_policy(
            _RejectUnknownHostKey(self.known_hosts_file, self.target))
        LOG.debug("opening SSH connection to %s", self.target)
        try:
            client.connect(
                self.host, port=self.port, username=self.user,
                key_filename=self.key_file, timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
                channel_timeout=self.connect_timeout,
                # OpenSSH's default without a configured key: the
                # user's own keys (~/.ssh/id_*).
                allow_agent=False, look_for_keys=self.key_file is None)
        except exception.VmflowError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise exception.HostKeyMismatch(
                target=self.target,
                reason=f"it presented {exc.key.get_name()} key "
                       f"{exc.key.fingerprint}, known_hosts has "
                       f"{exc.expected_key.fingerprint}") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            client.close()
            raise exception.RemoteConnectionError(
                target=self.target,
                reason=_describe_error(exc)) from None
        return client

    def _sftp_client(self):
        with self._lock:
            client = self.connect()
            if self._sftp is None or self._sftp.sock.closed:
                try:
                    self._sftp = client.open_sftp()
                except (paramiko.SSHException, OSError, EOFError) as exc:
                    raise exception.RemoteConnectionError(
                        target=self.target,
                        reason=f"cannot open SFTP: "
                               f"{_describe_error(exc)}") from None
            return self._sftp

    def _drop_connection(self):
        if self._sftp is not None:
            self._sftp.close()
            self._sftp = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def close(self):
        with self._lock:
            self._drop_connection()

    # -- commands ---------------------------------------------------------

    def run(self, argv, timeout=None):
        argv = check_argv(argv)
        timeout = timeout or self.command_timeout
        command = shlex.join(argv)
        client = self.connect()
        try:
            channel = client.get_transport().open_session(
                timeout=self.connect_timeout)
            channel.exec_command(command)
            status, stdout, stderr = _collect_output(channel, timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self.close()
            raise exception.RemoteConnectionError(
                target=self.target,
                reason=f"running {describe_command(argv)}: "
                       f"{_describe_error(exc)}") from None
        if status is None:
            raise exception.CommandFailed(
                command=describe_command(argv),
                status=f"timeout after {timeout}s on {self.host}",
                stderr=trim_stderr(stderr))
        if status != 0:
            raise exception.CommandFailed(
                command=describe_command(argv), status=status,
                stderr=trim_stderr(stderr))
        return stdout

    # -- files (SFTP) -----------------------------------------------------

    def put_file(self, local_path, remote_path):
        self._sftp_op("upload to", remote_path,
                      lambda sftp: sftp.put(local_path, remote_path,
                                            confirm=True))

    def get_file(self, remote_path, local_path):
        self._sftp_op("download", remote_path,
                      lambda sftp: sftp.get(remote_path, local_path))

    def exists(self, path):
        try:
            self._sftp_op("stat", path, lambda sftp: sftp.lstat(path))
        except exception.ImageBackendError as exc:
            if exc.kwargs.get("errno") == errno.ENOENT:
                return False
            raise
        return True

    def makedirs(self, path, mode=0o755):
        missing = []
        current = path.rstrip("/")
        while current and not self.exists(current):
            missing.append(current)
            current = os.path.dirname(current)
        for directory in reversed(missing):
            try:
                self._sftp_op("mkdir", directory,
                              lambda sftp, d=directory: sftp.mkdir(d, mode))
            except exception.ImageBackendError:
                if not self.exists(directory):  # lost a race: fine
                    raise

    def remove_tree(self, path):
        """Remove a file or directory tree; True if something was there."""
        try:
            attrs = self._sftp_op("stat", path, lambda sftp: sftp.lstat(path))
        except exception.ImageBackendError as exc:
            if exc.kwargs.get("errno") == errno.ENOENT:
                return False
            raise
        self._remove_entry(path, attrs)
        return True

    def _remove_entry(self, path, attrs):
        if stat.S_ISDIR(attrs.st_mode):
            children = self._sftp_op("list", path,
                                     lambda sftp: sftp.listdir_attr(path))
            for child in children:
                self._remove_entry(f"{path}/{child.filename}", child)
            self._sftp_op("rmdir", path, lambda sftp: sftp.rmdir(path))
        else:
            self._sftp_op("remove", path, lambda sftp: sftp.remove(path))

    def rename(self, src, dst):
        self._sftp_op("rename", src, lambda sftp: sftp.posix_rename(src, dst))

    def listdir(self, path):
        return sorted(self._sftp_op("list", path,
                                    lambda sftp: sftp.listdir(path)))

    def touch(self, path):
        def _touch(sftp):
            with sftp.open(path, "a"):
                pass
        self._sftp_op("touch", path, _touch)

    def open_file(self, path, mode):
        """An SFTP file: read ahead when reading, pipelined when writing
        (each write is not waited for; errors surface at close)."""
        def _open(sftp):
            remote = sftp.open(path, mode, bufsize=READ_CHUNK)
            if "r" in mode:
                remote.prefetch()
            else:
                remote.set_pipelined(True)
            return remote
        return self._sftp_op("open", path, _open)

    def _sftp_op(self, what, path, func):
        with self._lock:
            sftp = self._sftp_client()
            try:
                return func(sftp)
            except OSError as exc:
                if exc.errno is None:  # not an SFTP status: link trouble
                    self._drop_connection()
                raise exception.ImageBackendError(
                    reason=f"{what} {self.host}:{path}: "
                           f"{exc.strerror or exc}",
                    errno=exc.errno) from None
            except (paramiko.SSHException, EOFError) as exc:
                self._drop_connection()
                raise exception.RemoteConnectionError(
                    target=self.target,
                    reason=f"{what} {path}: {_describe_error(exc)}") from None


def _collect_output(channel, timeout):
    """Read stdout and stderr until the command ends.

    Both streams are drained as data arrives, so a command writing a lot to
    stderr cannot stall on a full window while we wait on stdout. Returns
    ``(status, stdout, stderr)``; status is None on timeout (the channel is
    closed, which ends the remote command's session).
    """
    stdout, stderr = [], []
    deadline = time.monotonic() + timeout
    try:
        while True:
            busy = False
            if channel.recv_ready():
                stdout.append(channel.recv(READ_CHUNK))
                busy = True
            if channel.recv_stderr_ready():
                stderr.append(channel.recv_stderr(READ_CHUNK))
                busy = True
            if busy:
                continue
            if channel.exit_status_ready() and (channel.eof_received
                                                or channel.closed):
                status = channel.recv_exit_status()
                break
            if time.monotonic() > deadline:
                status = None
                break
            select.select([channel], [], [], 0.02)
    finally:
        channel.close()
    return (status, b"".join(stdout).decode(errors="replace"),
            b"".join(stderr).decode(errors="replace"))


def _transport_active(client):
    transport = client.get_transport()
    return transport is not None and transport.is_active()


def _describe_error(exc):
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        # Its own text ("[Errno None] Unable to connect to port ...")
        # hides why: say what each address answered.
        return "; ".join(
            f"connecting to {address[0]} port {address[1]}: "
            f"{error.strerror or error}"
            for address, error in sorted(exc.errors.items()))
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def _expand(path):
    return os.path.expanduser(path) if path else path
