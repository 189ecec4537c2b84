"""Requesting operations on servers: what ``vmflow server create``,
``delete``, ``reboot``, ``stop``, ``start``, ``pause``, ``unpause``,
``suspend``, ``resume``, ``resize``, ``migrate``, ``resize confirm`` and
``resize revert`` call.

Each request validates its input, writes what must exist before the flow
runs (the instance record of a build) and posts the operation as a job
(:func:`vmflow.engine.posting.post_operation`); the caller may then wait
for it (:func:`vmflow.engine.operations.wait_for_operation`).
"""
import dataclasses

from vmflow import conf as vmflow_conf
from vmflow import (exception, instances, migrations, server_actions,
                    validation)
from vmflow.engine import jobboard, posting
from vmflow.flows import build, constants, delete, power, reboot, resize
from vmflow.inventory import get_by_name, servers
from vmflow.persistence import api, models
from vmflow.resources import quota

DEFAULT_PROJECT = "demo"


@dataclasses.dataclass(frozen=True)
class Request:
    """A posted operation: the instance it works on and its job."""
    instance_uuid: str
    job_uuid: str
    request_id: str


def create_server(name, flavor, image, project=DEFAULT_PROJECT, host=None,
                  conf=vmflow_conf.CONF):
    """Insert the instance (building/scheduling) and post its build.

    ``host`` forces the build onto that host (it must exist). If posting
    fails, the instance is put in ERROR with a fault saying so: nothing
    else was taken yet.
    """
    validation.validate_name(name, "server name")
    validation.validate_name(project, "project name")
    # An unreachable board refuses the request before anything is written.
    with jobboard.opened(conf) as board:
        return _create_and_post(board, name, flavor, image, project, host,
                                conf)


def _create_and_post(board, name, flavor, image, project, host, conf):
    request_id = posting.new_request_id()
    store = {}
    with api.session_scope(api.get_engine(conf)) as session:
        # Two creates of one name in a project must not both pass the
        # name check: they serialise on the project's lock.
        quota.lock_project(session, project)
        if host is not None:
            validation.validate_name(host, "host name")
            get_by_name(session, models.Host, "host", host)
            store[constants.REQUESTED_HOST] = host
        instance = instances.create_instance_record(session, name, project,
                                                    flavor, image)
    instance_uuid = instance["uuid"]
    try:
        job_uuid = posting.post_operation(
            constants.BUILD_FLOW, instance_uuid, build.get_build_flow, store,
            request_id, conf=conf, board=board)
    except BaseException as error:
        _fail_unposted_build(conf, instance_uuid, error)
        raise
    return Request(instance_uuid, job_uuid, request_id)


def delete_server(name_or_uuid, project=None, conf=vmflow_conf.CONF):
    """Post the delete of the live server ``name_or_uuid``.

    Refused with :class:`~vmflow.exception.InstanceBusy` while another
    operation runs on it. A server in ERROR (a failed build) is deleted
    like any other.
    """
    with api.session_scope(api.get_engine(conf)) as session:
        instance = servers.find_instance(session, name_or_uuid, project)[0]
        instance_uuid = instance.uuid
    request_id = posting.new_request_id()
    job_uuid = posting.post_operation(
        constants.DELETE_FLOW, instance_uuid, delete.get_delete_flow, {},
        request_id, conf=conf)
    return Request(instance_uuid, job_uuid, request_id)


def reboot_server(name_or_uuid, hard=False, project=None,
                  conf=vmflow_conf.CONF):
    """Post the reboot of a server: soft (ACPI, falling back to hard) from
    ACTIVE, or ``hard`` (also from stopped, paused, suspended and ERROR).
    """
    action = server_actions.HARD_REBOOT if hard else server_actions.REBOOT
    reboot_type = constants.HARD if hard else constants.SOFT
    return _post_server_action(name_or_uuid, project, action,
                               reboot.get_reboot_flow,
                               {constants.REBOOT_TYPE: reboot_type}, conf)


def power_server(action_name, name_or_uuid, project=None,
                 conf=vmflow_conf.CONF):
    """Post the power operation ``action_name`` (stop, start, pause,
    unpause, suspend or resume) of a server."""
    action = server_actions.POWER_ACTIONS[action_name]
    return _post_server_action(name_or_uuid, project, action,
                               power.FACTORIES[action_name], {}, conf)


def resize_server(name_or_uuid, flavor, host=None, project=None,
                  conf=vmflow_conf.CONF):
    """Post the resize of an active or stopped server to ``flavor`` (on
    ``host`` if given). Refused at once, nothing written, when the flavor
    is the server's own or its disk is smaller than the server's."""
    def door(session, instance):
        new = get_by_name(session, models.Flavor, "flavor", flavor)
        if new.id == instance["flavor_id"]:
            raise exception.InvalidInput(
                reason=f"server {name_or_uuid!r} already has flavor "
                       f"{flavor!r}; 'server migrate' moves it as it is")
        instances.check_flavor_disk(new, instances.image_of(session,
                                                           instance),
                          current_disk_gb=instance["disk_gb"])
        return _migration_store(session, instance, new.name,
                                migrations.RESIZE, host)
    return _post_server_action(name_or_uuid, project, server_actions.RESIZE,
                               resize.get_resize_flow, {}, conf, door=door)


def migrate_server(name_or_uuid, host=None, project=None,
                   conf=vmflow_conf.CONF):
    """Post the cold migration of an active or stopped server to another
    host (``host`` if given), with the flavor it has."""
    def door(session, instance):
        if host is not None and host == instance["host"]:
            raise exception.InvalidInput(
                reason=f"server {name_or_uuid!r} is on host {host!r} "
                       "already; a migration moves it to another host")
        current = session.get(models.Flavor, instance["flavor_id"])
        if current is None:
            raise exception.NotFound(kind="flavor", name=instance["flavor_id"])
        return _migration_store(session, instance, current.name,
                                migrations.MIGRATION, host)
    return _post_server_action(name_or_uuid, project, server_actions.MIGRATE,
                               resize.get_migrate_flow, {}, conf, door=door)


def confirm_resize(name_or_uuid, project=None, conf=vmflow_conf.CONF):
    """Post the confirm of a RESIZED server's resize or migration (or of
    one whose confirm failed, leaving it in ERROR)."""
    return _post_server_action(
        name_or_uuid, project, server_actions.CONFIRM_RESIZE,
        resize.get_confirm_resize_flow, {}, conf,
        door=_finished_migration(migrations.CONFIRMING))


def revert_resize(name_or_uuid, project=None, conf=vmflow_conf.CONF):
    """Post the revert of a RESIZED server's resize or migration (or of
    one whose revert failed, leaving it in ERROR)."""
    return _post_server_action(
        name_or_uuid, project, server_actions.REVERT_RESIZE,
        resize.get_revert_resize_flow, {}, conf,
        door=_finished_migration(migrations.REVERTING))


def _migration_store(session, instance, flavor_name, migration_type, host):
    store = {constants.MIGRATION_UUID: models.new_uuid(),
             constants.NEW_FLAVOR: flavor_name,
             constants.MIGRATION_TYPE: migration_type}
    if host is not None:
        validation.validate_name(host, "host name")
        get_by_name(session, models.Host, "host", host)
        store[constants.REQUESTED_HOST] = host
    return store


def _finished_migration(status):
    """The door of a confirm (``status`` CONFIRMING) or revert
    (REVERTING): the server's finished migration, in a status that
    operation may start from; returns the rest of its store."""
    def door(session, instance):
        migration = migrations.to_end(session, instance, status)
        migrations.check_can_end(migration, status)
        return {constants.MIGRATION_UUID: migration["uuid"],
                constants.HOST_NAME: migration["source_host"],
                constants.DEST_HOST: migration["dest_host"]}
    return door


def _post_server_action(name_or_uuid, project, action, flow_factory, store,
                        conf, door=None):
    """Post ``action`` on the server's host. Refused with one line, and
    nothing written, unless the server is in a state ``action`` starts
    from (and ``door(session, instance)``, which returns more of the
    store, accepts it); the checks run again under the instance's lock."""
    with api.session_scope(api.get_engine(conf)) as session:
        instance = instances.get_instance(
            session,
            servers.find_instance(session, name_or_uuid, project)[0].uuid)
        host = instance["host"]
        _check_action(action, instance, name_or_uuid, host)
        store = dict(store, **{constants.HOST_NAME: host})
        if door is not None:
            store.update(door(session, instance))

    def check_instance(session):
        current = instances.get_instance(session, instance["uuid"])
        _check_action(action, current, name_or_uuid, host)
        if door is not None:
            door(session, current)

    request_id = posting.new_request_id()
    job_uuid = posting.post_operation(
        action.name, instance["uuid"], flow_factory, store, request_id,
        conf=conf, check_instance=check_instance)
    return Request(instance["uuid"], job_uuid, request_id)


def _check_action(action, instance, label, host):
    """InstanceInvalidState unless ``action`` may start on ``instance``,
    which must still be on ``host`` (where its flow will act)."""
    server_actions.check_allowed(action, instance, label)
    if instance["host"] is None:
        raise exception.InstanceInvalidState(
            action=action.name, server=label,
            state=f"{instance['vm_state']} on no host",
            allowed="a server placed on a host")
    if instance["host"] != host:
        raise exception.InvalidInput(
            reason=f"server {label!r} moved from host {host!r} to "
                   f"{instance['host']!r} meanwhile; try again")


def _fail_unposted_build(conf, instance_uuid, error):
    with api.writer_scope(api.get_engine(conf)) as session:
        instances.mark_error(
            session, instance_uuid, (instances.SCHEDULING,),
            f"the build could not be posted: {type(error).__name__}: "
            f"{error}")
