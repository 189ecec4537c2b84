"""Instance records: creation before a build is posted, and the state
writes tasks make (each a compare-and-swap on the expected task_state).

Everything returns plain dicts, so tasks can store what they return.
"""
import sqlalchemy

from vmflow import exception, power_states, validation
from vmflow.inventory import as_dict, get_by_name, images
from vmflow.persistence import models

# vm_state values (Nova's names).
BUILDING = "building"
ACTIVE = "active"
STOPPED = "stopped"
PAUSED = "paused"
SUSPENDED = "suspended"
RESIZED = "resized"
ERROR = "error"
DELETED = "deleted"

# task_state values (Nova's names).
SCHEDULING = "scheduling"
DELETING = "deleting"
REBOOTING = "rebooting"
REBOOT_STARTED = "reboot_started"
REBOOTING_HARD = "rebooting_hard"
REBOOT_STARTED_HARD = "reboot_started_hard"
POWERING_OFF = "powering-off"
POWERING_ON = "powering-on"
PAUSING = "pausing"
UNPAUSING = "unpausing"
SUSPENDING = "suspending"
RESUMING = "resuming"
RESIZE_PREP = "resize_prep"
RESIZE_MIGRATING = "resize_migrating"
RESIZE_MIGRATED = "resize_migrated"
RESIZE_FINISH = "resize_finish"
RESIZE_CONFIRMING = "resize_confirming"
RESIZE_REVERTING = "resize_reverting"
RESIZE_TASK_STATES = (RESIZE_PREP, RESIZE_MIGRATING, RESIZE_MIGRATED,
                      RESIZE_FINISH)
REBOOT_TASK_STATES = (REBOOTING, REBOOT_STARTED, REBOOTING_HARD,
                      REBOOT_STARTED_HARD)

COLUMNS = ("uuid", "name", "project", "flavor_id", "image_id", "vcpus",
           "memory_mb", "disk_gb", "host", "vm_state", "task_state",
           "power_state")
FAULT_MESSAGE_LENGTH = 255

GiB = 1024 ** 3

ANY = object()
"""``expected`` for :func:`update_instance`: whatever the task_state is
(still a compare-and-swap against the value read)."""


def check_flavor_disk(flavor, image, current_disk_gb=0):
    """FlavorDiskTooSmall unless ``flavor``'s disk holds the image (and a
    resized server's current disk: disks never shrink). A disk of 0 GiB
    means the image's own size."""
    wanted = flavor.disk_gb * GiB if flavor.disk_gb else None
    if current_disk_gb and (wanted or 0) < current_disk_gb * GiB:
        raise exception.FlavorDiskTooSmall(
            flavor=flavor.name, disk_gb=flavor.disk_gb,
            what="the server's disk", needed=f"{current_disk_gb} GiB")
    if wanted is not None and wanted < image["virtual_size_bytes"]:
        raise exception.FlavorDiskTooSmall(
            flavor=flavor.name, disk_gb=flavor.disk_gb,
            what=f"image {image['name']!r}",
            needed=f"{image['virtual_size_bytes']} bytes")



def create_instance_record(session, name, project, flavor_name, image_name):
    """Validate and insert an instance about to be built.

    The row starts as vm_state ``building``, task_state ``scheduling`` and
    copies the flavor's resources. A live server of the same name in the
    project is refused (names are how the CLI finds servers).
    """
    validation.validate_name(name, "server name")
    validation.validate_name(project, "project name")
    flavor = get_by_name(session, models.Flavor, "flavor", flavor_name)
    image = get_by_name(session, models.Image, "image", image_name)
    check_flavor_disk(flavor, as_dict(image, images.COLUMNS))
    taken = session.scalar(sqlalchemy.select(models.Instance.id).where(
        models.Instance.project == project, models.Instance.name == name,
        models.Instance.vm_state != DELETED))
    if taken is not None:
        raise exception.AlreadyExists(kind="server", name=name)
    instance = models.Instance(
        name=name, project=project, flavor_id=flavor.id, image_id=image.id,
        vcpus=flavor.vcpus, memory_mb=flavor.ram_mb, disk_gb=flavor.disk_gb,
        vm_state=BUILDING, task_state=SCHEDULING,
        power_state=power_states.NOSTATE)
    session.add(instance)
    session.flush()
    return dict(as_dict(instance, COLUMNS), flavor=flavor.name,
                image=image.name)


def _get_row(session, instance_uuid):
    row = session.scalar(sqlalchemy.select(models.Instance).where(
        models.Instance.uuid == instance_uuid))
    if row is None:
        raise exception.NotFound(kind="instance", name=instance_uuid)
    return row


def get_instance(session, instance_uuid):
    return as_dict(_get_row(session, instance_uuid), COLUMNS)


def flavor_of(instance):
    """The driver's flavor dict, from what the instance holds."""
    return {"vcpus": instance["vcpus"], "ram_mb": instance["memory_mb"],
            "disk_gb": instance["disk_gb"]}


def image_of(session, instance):
    image = session.get(models.Image, instance["image_id"])
    if image is None:
        raise exception.NotFound(kind="image", name=instance["image_id"])
    return as_dict(image, images.COLUMNS)


def update_instance(session, instance_uuid, expected, **values):
    """Write ``values`` if task_state is one of ``expected`` (or ANY).

    The UPDATE is conditional on the task_state just read, so a concurrent
    writer makes it fail with UnexpectedTaskState instead of being
    overwritten. Returns the instance as it is now.
    """
    row = _get_row(session, instance_uuid)
    actual = row.task_state
    if expected is not ANY and actual not in expected:
        raise exception.UnexpectedTaskState(
            uuid=instance_uuid, actual=actual,
            expected=" or ".join(repr(state) for state in expected))
    column = models.Instance.task_state
    result = session.execute(
        sqlalchemy.update(models.Instance)
        .where(models.Instance.uuid == instance_uuid,
               column.is_(None) if actual is None else column == actual)
        .values(**values))
    if result.rowcount != 1:
        raise exception.UnexpectedTaskState(
            uuid=instance_uuid, actual="(changed concurrently)",
            expected=repr(actual))
    session.refresh(row)
    return as_dict(row, COLUMNS)


def fault_message(text):
    """``text`` cut to fit the fault's message column."""
    if len(text) > FAULT_MESSAGE_LENGTH:
        return text[:FAULT_MESSAGE_LENGTH - 3] + "..."
    return text


def record_fault(session, instance_uuid, message, details=None, host=None,
                 code=500):
    message = fault_message(message)
    fault = models.InstanceFault(instance_uuid=instance_uuid, code=code,
                                 message=message, details=details, host=host)
    session.add(fault)
    session.flush()
    return fault.id


def mark_error(session, instance_uuid, expected, message, details=None):
    """ERROR, task_state cleared, and a fault with ``message`` -- unless
    the instance is deleted. Safe twice: an instance already in ERROR
    without task_state is left alone and the same fault is not recorded
    again. Returns False for a deleted instance."""
    instance = get_instance(session, instance_uuid)
    if instance["vm_state"] == DELETED:
        return False
    if (instance["vm_state"], instance["task_state"]) != (ERROR, None):
        update_instance(session, instance_uuid, expected, vm_state=ERROR,
                        task_state=None)
    _record_fault_once(session, instance, message, details)
    return True


def clear_task_state(session, instance_uuid, expected, message,
                     details=None):
    """A failed operation that gives the server back in its previous
    vm_state: task_state cleared and a fault with ``message``. Safe twice
    like :func:`mark_error`. Returns False for a deleted instance."""
    instance = get_instance(session, instance_uuid)
    if instance["vm_state"] == DELETED:
        return False
    if instance["task_state"] is not None:
        update_instance(session, instance_uuid, expected, task_state=None)
    _record_fault_once(session, instance, message, details)
    return True


def _record_fault_once(session, instance, message, details):
    """Record the fault unless it is already the instance's latest."""
    message = fault_message(message)
    latest = session.scalar(
        sqlalchemy.select(models.InstanceFault.message)
        .where(models.InstanceFault.instance_uuid == instance["uuid"])
        .order_by(models.InstanceFault.id.desc()).limit(1))
    if latest != message:
        record_fault(session, instance["uuid"], message, details=details,
                     host=instance["host"])
