"""Read side of instances: listings, details, faults and action events."""
import sqlalchemy

from vmflow import exception
from vmflow.engine import actions
from vmflow.inventory import as_dict
from vmflow.persistence import models

LIST_COLUMNS = ("uuid", "name", "project", "host", "vm_state", "task_state",
                "power_state", "flavor", "image")
SHOW_COLUMNS = LIST_COLUMNS + ("vcpus", "memory_mb", "disk_gb", "created_at",
                               "launched_at", "deleted_at", "running_action",
                               "fault")
EVENT_COLUMNS = ("action", "request_id", "event", "host", "start_time",
                 "finish_time", "duration", "result", "error")
EVENT_LONG_COLUMNS = EVENT_COLUMNS + ("traceback",)


def _select_instances():
    return (sqlalchemy.select(models.Instance,
                              models.Flavor.name.label("flavor"),
                              models.Image.name.label("image"))
            .join(models.Flavor, models.Flavor.id == models.Instance.flavor_id)
            .join(models.Image, models.Image.id == models.Instance.image_id))


def _instance_dict(row, columns):
    instance, flavor, image = row
    record = as_dict(instance, [c for c in columns
                                if hasattr(models.Instance, c)])
    record.update(flavor=flavor, image=image)
    return {column: record.get(column) for column in columns}


def list_servers(session, project=None, include_deleted=False):
    query = _select_instances().order_by(models.Instance.created_at,
                                         models.Instance.id)
    if project is not None:
        query = query.where(models.Instance.project == project)
    if not include_deleted:
        query = query.where(models.Instance.vm_state != "deleted")
    return [_instance_dict(row, LIST_COLUMNS)
            for row in session.execute(query)]


def find_instance(session, name_or_uuid, project=None,
                  include_deleted=False):
    """The live instance named (or with uuid) ``name_or_uuid``; with
    ``include_deleted``, a deleted one too."""
    instance = models.Instance
    query = (_select_instances()
             .where(sqlalchemy.or_(instance.uuid == name_or_uuid,
                                   instance.name == name_or_uuid)))
    if not include_deleted:
        query = query.where(instance.vm_state != "deleted")
    if project is not None:
        query = query.where(instance.project == project)
    rows = session.execute(query).all()
    if not rows:
        raise exception.NotFound(kind="server", name=name_or_uuid)
    if len(rows) > 1:
        raise exception.InvalidInput(
            reason=f"server name {name_or_uuid!r} is ambiguous "
                   f"({len(rows)} servers); use a uuid or --project")
    return rows[0]


def latest_fault(session, instance_uuid):
    fault = session.scalar(
        sqlalchemy.select(models.InstanceFault)
        .where(models.InstanceFault.instance_uuid == instance_uuid)
        .order_by(models.InstanceFault.id.desc()).limit(1))
    return fault.message if fault else None


def running_action(session, instance_uuid):
    lock = session.get(models.InstanceLock, instance_uuid)
    return f"{lock.action} (job {lock.job_uuid})" if lock else None


def show_server(session, name_or_uuid, project=None):
    row = find_instance(session, name_or_uuid, project)
    record = _instance_dict(row, SHOW_COLUMNS)
    record["running_action"] = running_action(session, record["uuid"])
    record["fault"] = latest_fault(session, record["uuid"])
    return record


def names_by_uuid(session, instance_uuids):
    """``{uuid: name}`` of the instances ``instance_uuids`` (deleted ones
    too), in one query."""
    instance = models.Instance
    return dict(session.execute(
        sqlalchemy.select(instance.uuid, instance.name)
        .where(instance.uuid.in_(set(instance_uuids)))).all())


def list_events(session, instance_uuid):
    """One dict per event of the instance's actions, oldest action first
    (an action with no event yet: one dict with an empty event), with its
    duration in seconds and its error on one line; ``traceback`` holds the
    whole text."""
    action, event = models.InstanceAction, models.InstanceActionEvent
    rows = session.execute(
        sqlalchemy.select(action.action, action.request_id, event)
        .outerjoin(event, event.action_id == action.id)
        .where(action.instance_uuid == instance_uuid)
        .order_by(action.start_time, action.id, event.start_time, event.id))
    return [_event_dict(name, request_id, ev)
            for name, request_id, ev in rows]


def _event_dict(action_name, request_id, event):
    record = dict.fromkeys(EVENT_LONG_COLUMNS)
    record.update(action=action_name, request_id=request_id)
    if event is not None:
        record.update(as_dict(event, ("event", "host", "start_time",
                                      "finish_time", "result", "traceback")))
        record["duration"] = actions.event_seconds(event.start_time,
                                                   event.finish_time)
        record["error"] = actions.event_error(event.traceback)
    return record
