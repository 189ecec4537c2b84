"""``vmflow web``: serve the read-only web view (:mod:`vmflow.web`) with
waitress, in the foreground.

The view has no authentication, so it listens on the loopback address
unless ``--allow-remote`` is given with another ``--host``. Flask and
waitress are imported when the command runs, not when cliff loads it.
"""
import argparse
import ipaddress
import signal
import sys

from vmflow import exception
from vmflow.cli import base
from vmflow.persistence import migration

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8780
MAX_PORT = 65535
SERVER_THREADS = 4


def port_number(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"port {text!r} is not a whole number") from None
    if not 1 <= value <= MAX_PORT:
        raise argparse.ArgumentTypeError(
            f"port {text!r} must be from 1 to {MAX_PORT}")
    return value


def listen_host(text):
    if text == "localhost":
        return text
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"host {text!r} is not an IP address or localhost") from None


def is_loopback(host):
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def page_url(host, port):
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


class Web(base.Command):
    """Serve the read-only web view of the jobs and their flow graphs
    (on the loopback address unless --allow-remote)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            "--host", type=listen_host, default=DEFAULT_HOST,
            help=f"Address to listen on (default {DEFAULT_HOST}); a "
                 "non-loopback one needs --allow-remote.")
        parser.add_argument(
            "--port", type=port_number, default=DEFAULT_PORT,
            help=f"TCP port, 1-{MAX_PORT} (default {DEFAULT_PORT}).")
        parser.add_argument(
            "--allow-remote", action="store_true",
            help="Allow a --host other machines can reach: the view has no "
                 "authentication, anyone reaching it sees every job.")
        return parser

    def take_action(self, parsed_args):
        host, port = parsed_args.host, parsed_args.port
        if not is_loopback(host) and not parsed_args.allow_remote:
            raise exception.InvalidInput(
                reason=f"--host {host} is not a loopback address; the web "
                       "view has no authentication: add --allow-remote to "
                       "serve it there")
        migration.check_schema()
        from waitress import server as waitress_server
        from vmflow.web import app as web_app

        try:
            server = waitress_server.create_server(
                web_app.create_app(), host=host, port=port,
                threads=SERVER_THREADS, ident="vmflow")
        except OSError as error:
            raise exception.VmflowError(
                message=f"cannot listen on {page_url(host, port)}: "
                        f"{error.strerror or error}") from None
        self.app.stdout.write(
            f"vmflow web: serving {page_url(host, port)} (read only; "
            "Ctrl-C stops)\n")
        self.app.stdout.flush()
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
        return 0
