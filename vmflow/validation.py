"""Validation of names, sizes and paths that come from users.

Every check raises :class:`vmflow.exception.InvalidInput` (or a subclass)
whose message names the offending value, so the CLI can print it as is.
"""
import os
import re
import unicodedata

import sqlalchemy

from vmflow import exception
from vmflow.persistence.models import NAME_LENGTH

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_LIBVIRT_URI_RE = re.compile(
    r"^[A-Za-z][A-Za-z0-9]*(\+[A-Za-z0-9]+)?://\S*$")
_SSH_RE = re.compile(
    r"^(?P<user>[a-z_][a-z0-9_.-]{0,31})@"
    r"(?P<addr>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]{0,252})"
    r"(?::(?P<port>[0-9]{1,5}))?$")


def _has_control_characters(text):
    return any(unicodedata.category(ch).startswith("C") for ch in text)


def validate_name(name, kind="name"):
    """A name usable as a file name, domain name and XML text: 1-63 of
    ``A-Z a-z 0-9 . _ -``, starting with a letter or digit, without ``..``."""
    if not name:
        raise exception.InvalidName(name=name, reason=f"{kind} is empty")
    if len(name) > NAME_LENGTH:
        raise exception.InvalidName(
            name=name,
            reason=f"{kind} is {len(name)} characters, at most "
                   f"{NAME_LENGTH} allowed")
    if _has_control_characters(name):
        raise exception.InvalidName(
            name=name, reason=f"{kind} contains control characters")
    if "/" in name or ".." in name:
        raise exception.InvalidName(
            name=name, reason=f"{kind} must not contain '/' or '..'")
    if not _NAME_RE.match(name):
        raise exception.InvalidName(
            name=name,
            reason=f"{kind} may only contain letters, digits, '.', '_' and "
                   "'-', and must start with a letter or digit")
    return name


def column_max(column):
    """The largest whole number ``column`` holds. Integer is 32 bits on
    PostgreSQL and MariaDB; SQLite gets the same bound, so its database
    can move to a server."""
    column_type = column.type
    if isinstance(column_type, sqlalchemy.BigInteger):
        return 2**63 - 1
    if isinstance(column_type, sqlalchemy.SmallInteger):
        return 2**15 - 1
    return 2**31 - 1


def validate_count(value, column, what, minimum=1):
    """``value`` between ``minimum`` and what ``column`` holds."""
    if value < minimum:
        raise exception.InvalidInput(
            reason=f"{what} {value} must be at least {minimum}")
    maximum = column_max(column)
    if value > maximum:
        raise exception.InvalidInput(
            reason=f"{what} {value} must be at most {maximum} (the most "
                   f"column {column.table}.{column.name} holds)")
    return value


def validate_text(text, what, max_length=255):
    """Free text (reasons, kernel command lines): bounded, no control chars."""
    if len(text) > max_length:
        raise exception.InvalidInput(
            reason=f"{what} {text[:40]!r}... is longer than {max_length} "
                   "characters")
    if _has_control_characters(text):
        raise exception.InvalidInput(
            reason=f"{what} {text!r} contains control characters")
    return text


def validate_libvirt_uri(uri):
    """``driver[+transport]://[host]/path[?query]``, as libvirt takes it; an
    empty URI would make libvirt open its default hypervisor."""
    if not uri or not uri.strip():
        raise exception.InvalidInput(reason=f"libvirt URI {uri!r} is empty")
    validate_text(uri, "libvirt URI")
    if not _LIBVIRT_URI_RE.match(uri):
        raise exception.InvalidInput(
            reason=f"libvirt URI {uri!r} is not DRIVER[+TRANSPORT]://"
                   "[HOST]/PATH (for example qemu:///system)")
    return uri


def validate_absolute_path(path, what):
    validate_text(path, what, max_length=1024)
    if not os.path.isabs(path):
        raise exception.InvalidInput(
            reason=f"{what} {path!r} is not an absolute path")
    if ".." in path.split("/"):
        raise exception.InvalidInput(
            reason=f"{what} {path!r} must not contain '..'")
    return os.path.normpath(path)


def validate_existing_file(path, what):
    path = validate_absolute_path(os.path.abspath(path), what)
    if not os.path.isfile(path):
        raise exception.InvalidInput(
            reason=f"{what} {path!r} does not exist or is not a file")
    if not os.access(path, os.R_OK):
        raise exception.InvalidInput(
            reason=f"{what} {path!r} is not readable")
    return path


def parse_ssh_endpoint(text):
    """``USER@ADDR[:PORT]`` -> (user, addr, port)."""
    match = _SSH_RE.match(text or "")
    if not match:
        raise exception.InvalidInput(
            reason=f"SSH endpoint {text!r} is not USER@ADDRESS[:PORT]")
    port = int(match.group("port") or 22)
    if not 1 <= port <= 65535:
        raise exception.InvalidInput(
            reason=f"SSH port {port} in {text!r} is not between 1 and 65535")
    addr = match.group("addr").strip("[]")
    return match.group("user"), addr, port
