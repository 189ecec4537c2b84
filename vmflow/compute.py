"""Requesting operations on servers: what ``vmflow server create`` and
``vmflow server delete`` call.

Each request validates its input, writes what must exist before the flow
runs (the instance record of a build) and posts the operation as a job
(:func:`vmflow.engine.posting.post_operation`); the caller may then wait
for it (:func:`vmflow.engine.operations.wait_for_operation`).
"""
import dataclasses

from vmflow import conf as vmflow_conf
from vmflow import instances, validation
from vmflow.engine import jobboard, posting
from vmflow.flows import build, constants, delete
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


def _fail_unposted_build(conf, instance_uuid, error):
    with api.writer_scope(api.get_engine(conf)) as session:
        instances.mark_error(
            session, instance_uuid, (instances.SCHEDULING,),
            f"the build could not be posted: {type(error).__name__}: "
            f"{error}")
