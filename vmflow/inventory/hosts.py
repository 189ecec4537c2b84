import os
import urllib.parse

import sqlalchemy

from vmflow import conf as vmflow_conf
from vmflow import exception, validation
from vmflow import drivers
from vmflow.drivers.remote import runner as remote_runner
from vmflow.inventory import (as_dict, ensure_name_free, get_by_name,
                              insert_unique, list_by_name)
from vmflow.persistence import models
from vmflow.scheduler import host_state

COLUMNS = ("id", "name", "uri", "ssh_user", "ssh_host", "ssh_port",
           "instances_path", "vcpus", "memory_mb", "disk_gb", "enabled",
           "disabled_reason")


def default_instances_path(conf=vmflow_conf.CONF):
    return os.path.join(conf.state_path, "instances")


def check_hypervisor(uri):
    """Raise HypervisorUnavailable unless ``uri`` answers a health check."""
    validation.validate_libvirt_uri(uri)
    return drivers.get_driver({"uri": uri}).health_check()


def hypervisor_key(uri):
    """What identifies the hypervisor behind ``uri``: scheme and host name
    in lower case, without the login user, ``+unix`` or a trailing ``/``
    (``qemu+unix:///system/`` and ``QEMU:///system`` are the same one)."""
    parts = urllib.parse.urlsplit(uri)
    scheme = parts.scheme.lower()
    address = parts.netloc.rpartition("@")[2].lower()
    if not address:
        scheme = scheme.removesuffix("+unix")
    return scheme, address, parts.path.rstrip("/") or "/", parts.query


def ensure_hypervisor_free(session, uri):
    """One host per hypervisor: two would each see the other's domains as
    strangers (audit)."""
    key = hypervisor_key(uri)
    for name, known in session.execute(
            sqlalchemy.select(models.Host.name, models.Host.uri)):
        if hypervisor_key(known) == key:
            raise exception.InvalidInput(
                reason=f"libvirt URI {uri!r} is already host {name!r} "
                       f"({known})")


def check_instances_path(host):
    """The host's instances path must be a directory there (checked over
    SSH for a remote host): disks are created below it."""
    path = host["instances_path"]
    if not host["ssh_host"]:
        if not os.path.isdir(path):
            raise exception.InvalidInput(
                reason=f"instances path {path!r} does not exist or is not "
                       "a directory")
        return
    runner = remote_runner.runner_for_host(host)
    try:
        runner.run(["test", "-d", path])
    except exception.CommandFailed:
        raise exception.InvalidInput(
            reason=f"instances path {path!r} does not exist or is not a "
                   f"directory on {runner.target}") from None
    finally:
        runner.close()


def add_host(session, name, uri, vcpus, memory_mb, disk_gb,
             instances_path=None, ssh=None, verify=True):
    validation.validate_name(name, "host name")
    for what, value, column in (("vcpus", vcpus, models.Host.vcpus),
                                ("memory", memory_mb, models.Host.memory_mb),
                                ("disk", disk_gb, models.Host.disk_gb)):
        validation.validate_count(value, column, f"host {what}")
    fields = dict(
        name=name, uri=validation.validate_libvirt_uri(uri), vcpus=vcpus,
        memory_mb=memory_mb, disk_gb=disk_gb, enabled=True,
        instances_path=validation.validate_absolute_path(
            instances_path or default_instances_path(), "instances path"),
        ssh_user=None, ssh_host=None, ssh_port=None)
    if ssh is not None:
        fields["ssh_user"], fields["ssh_host"], fields["ssh_port"] = (
            validation.parse_ssh_endpoint(ssh))
    ensure_name_free(session, models.Host, "host", name)
    ensure_hypervisor_free(session, uri)
    if verify:
        check_hypervisor(uri)
        check_instances_path(fields)
    host = insert_unique(session, models.Host(**fields), "host")
    return as_dict(host, COLUMNS)


def list_hosts(session):
    return list_by_name(session, models.Host, COLUMNS)


def show_host(session, name):
    return as_dict(get_by_name(session, models.Host, "host", name), COLUMNS)


def show_host_usage(session, name):
    """The host with what is claimed on it (``*_used``)."""
    record = show_host(session, name)
    state = host_state.load_host_states(session, [name])[0]
    record.update(vcpus_used=state.used_vcpus,
                  memory_mb_used=state.used_memory_mb,
                  disk_gb_used=state.used_disk_gb)
    return record


def set_host_enabled(session, name, enabled, reason=None):
    host = get_by_name(session, models.Host, "host", name)
    if enabled and reason:
        raise exception.InvalidInput(
            reason="--reason only goes with --disable")
    if reason is not None:
        validation.validate_text(reason, "disabled reason")
    host.enabled = enabled
    host.disabled_reason = None if enabled else reason
    session.flush()
    return as_dict(host, COLUMNS)


# A host vmflow disabled itself has a reason starting with Nova's prefix
# for automatic disables; only those does it enable again.
AUTO_DISABLED_PREFIX = "AUTO: "
LOST_CONNECTION_REASON = "hypervisor connection lost: "


def auto_disable_host(session, name, reason):
    """Disable an enabled host with ``AUTO: <reason>``; True if it did (a
    host already disabled, by anyone, keeps its reason)."""
    text = " ".join((AUTO_DISABLED_PREFIX + reason).split())
    limit = models.Host.disabled_reason.type.length
    if len(text) > limit:
        text = text[:limit - 3] + "..."
    result = session.execute(
        sqlalchemy.update(models.Host)
        .where(models.Host.name == name, models.Host.enabled.is_(True))
        .values(enabled=False, disabled_reason=text))
    return result.rowcount == 1


def auto_enable_host(session, name):
    """Enable a host vmflow disabled (reason ``AUTO: ...``); True if it
    did. A host an operator disabled stays disabled."""
    result = session.execute(
        sqlalchemy.update(models.Host)
        .where(models.Host.name == name, models.Host.enabled.is_(False),
               models.Host.disabled_reason.startswith(
                   AUTO_DISABLED_PREFIX, autoescape=True))
        .values(enabled=True, disabled_reason=None))
    return result.rowcount == 1
