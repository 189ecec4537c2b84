import os

from vmflow import conf as vmflow_conf
from vmflow import exception, validation
from vmflow.drivers.libvirt import connection as libvirt_connection
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
    validation.validate_text(uri, "libvirt URI")
    conn = libvirt_connection.LibvirtConnection(uri)
    try:
        return conn.health_check()
    finally:
        conn.close()


def add_host(session, name, uri, vcpus, memory_mb, disk_gb,
             instances_path=None, ssh=None, verify=True):
    validation.validate_name(name, "host name")
    for what, value, column in (("vcpus", vcpus, models.Host.vcpus),
                                ("memory", memory_mb, models.Host.memory_mb),
                                ("disk", disk_gb, models.Host.disk_gb)):
        validation.validate_count(value, column, f"host {what}")
    instances_path = validation.validate_absolute_path(
        instances_path or default_instances_path(), "instances path")
    ssh_user = ssh_host = ssh_port = None
    if ssh:
        ssh_user, ssh_host, ssh_port = validation.parse_ssh_endpoint(ssh)
    ensure_name_free(session, models.Host, "host", name)
    if verify:
        check_hypervisor(uri)
    host = insert_unique(session, models.Host(
        name=name, uri=uri, vcpus=vcpus, memory_mb=memory_mb,
        disk_gb=disk_gb, instances_path=instances_path, ssh_user=ssh_user,
        ssh_host=ssh_host, ssh_port=ssh_port, enabled=True), "host")
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
