"""``vmflow-engine`` processes forked from a process that imported vmflow
once, for tests that start many short-lived runners (the crash matrices).

Starting ``vmflow-engine`` costs seconds of imports on a loaded test
machine, twice per crash case. The fork server imports the engine's
modules (nothing else: no configuration, connection or thread) and forks
one child per runner; the child sets its environment, sends its output to
the log file and calls ``vmflow.cmd.engine.main`` with the runner's
arguments, as the console script does. Each runner is its own process,
killed by SIGKILL like any other; the server reaps it and reports how it
ended (``-signal`` or the exit code, as :meth:`subprocess.Popen.wait`).

One runner at a time: :meth:`ForkServer.start_runner` returns a handle
whose :meth:`Runner.wait` must be called before the next one starts.
"""
import json
import os
import select
import signal
import subprocess
import sys
import time

from tests.functional.engine import helpers

# Run by the server process (python -c): import, then fork per request.
SERVER = r"""
import json, os, sys
import vmflow.cmd.engine, vmflow.engine.runner, vmflow.flows.build
import vmflow.flows.delete, vmflow.flows.power, vmflow.flows.reboot
import vmflow.flows.resize
import vmflow.drivers.libvirt.driver, taskflow.engines
requests, replies = sys.stdin, sys.stdout
replies.write("ready\n"); replies.flush()
for line in requests:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.environ.clear()
            os.environ.update(request["env"])
            os.chdir(request["cwd"])
            log = os.open(request["log"],
                          os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(log, 1)
            os.dup2(log, 2)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            sys.argv = ["vmflow-engine"] + request["argv"]
            code = vmflow.cmd.engine.main(request["argv"])
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code or 0)
    replies.write(f"pid {pid}\n"); replies.flush()
    _pid, status = os.waitpid(pid, 0)
    replies.write(f"exit {os.waitstatus_to_exitcode(status)}\n")
    replies.flush()
"""


class Runner:
    """One forked runner; :meth:`wait` for its end."""

    def __init__(self, server, pid):
        self._server = server
        self.pid = pid
        self.returncode = None

    def wait(self, timeout=None):
        if self.returncode is None:
            line = self._server.read_line(timeout)
            if line is None:
                os.kill(self.pid, signal.SIGKILL)
                self._server.read_line(30)
                raise subprocess.TimeoutExpired(f"runner {self.pid}",
                                                timeout)
            self.returncode = int(line.split()[1])
        return self.returncode


class ForkServer:
    def __init__(self):
        self._process = subprocess.Popen(
            [sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, cwd=helpers.REPO_ROOT,
            env=dict(os.environ, PYTHONPATH=str(helpers.REPO_ROOT)))
        self._buffer = b""
        assert self.read_line(120) == "ready"

    def read_line(self, timeout):
        """The server's next line, or None after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = self._process.stdout.fileno()
        while b"\n" not in self._buffer:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                assert chunk, "the fork server died"
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode().strip()

    def start_runner(self, config_file, *args, name, log_path, env=None):
        """Like :func:`helpers.start_runner`, forked."""
        environment = dict(os.environ, PYTHONPATH=str(helpers.REPO_ROOT),
                           **(env or {}))
        request = {"argv": ["--config-file", str(config_file), "--name",
                            name, *args],
                   "env": environment, "log": str(log_path),
                   "cwd": str(helpers.REPO_ROOT)}
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        line = self.read_line(60)
        assert line and line.startswith("pid "), line
        return Runner(self, int(line.split()[1]))

    def close(self):
        self._process.stdin.close()
        self._process.wait(timeout=30)
