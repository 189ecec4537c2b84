"""Tasks of resize and cold migration that act on hosts: the
destination's room, the disk copied from source to destination, the
domain defined and started there, and the clean-up of confirm and revert.

``host_name`` is the instance's host when the operation was posted (the
source), ``dest_host`` the destination. On one host (``[DEFAULT]
allow_resize_to_same_host``) nothing is copied: the disk is stashed in
``<uuid>_resize/`` before it grows in place, and the one domain is
defined again instead of a second one being made.
"""
from vmflow import exception, instances
from vmflow.persistence import api
from vmflow.tasks import base, domain
from vmflow.tasks.migration import load_migration


def _load(instance_uuid):
    with api.session_scope() as session:
        instance = instances.get_instance(session, instance_uuid)
        return instance, instances.image_of(session, instance)


def _old_flavor(migration):
    return {"vcpus": migration["old_vcpus"],
            "ram_mb": migration["old_memory_mb"],
            "disk_gb": migration["old_disk_gb"]}


class CheckDestinationRoom(base.VmflowTask):
    """Reach ``dest_host`` (over SSH when it is remote: its host key must
    be known) and check that its instances path has room for the
    instance's disk and the image files it does not cache yet (a
    host-level failure: prep moves to the next host), before the guest
    is touched.

    Reversion strategy: nothing to undo (it only reads).
    """

    def execute(self, instance_uuid, host_name, dest_host):
        _instance, image = _load(instance_uuid)
        destination = base.get_driver(dest_host)
        needed = (base.get_driver(host_name).disk_bytes(instance_uuid)
                  + destination.missing_image_bytes(image))
        free = destination.free_disk_bytes()
        if free < needed:
            raise exception.ImageBackendError(
                reason=f"host {dest_host} has {free} bytes free under its "
                       f"instances path; the disk of {instance_uuid} and "
                       f"the image files it lacks need {needed}")
        return {"needed": needed, "free": free}


class CacheImageOnDestination(base.VmflowTask):
    """Copy the instance's image into the destination's base cache (once,
    sha256 compared with the image file).

    Reversion strategy: none; the base cache is shared by every instance
    of the image on that host.
    """

    def execute(self, instance_uuid, dest_host):
        _instance, image = _load(instance_uuid)
        cached = base.get_driver(dest_host).cache_image(image)
        return {"copied": cached["copied"]}


class CopyDiskToDestination(base.VmflowTask):
    """Stream the instance's disk from the source to the destination's
    instances path, sha256 compared on both ends; on one host, stash a
    copy in ``<uuid>_resize/`` instead. The source disk is never touched.

    Reversion strategy: remove the instance's directory on the
    destination (on one host: put the stashed disk back). Runs even when
    the copy itself failed: a half-made directory is removed too.
    """

    def execute(self, instance_uuid, host_name, dest_host):
        source = base.get_driver(host_name)
        if host_name == dest_host:
            return {"stashed": source.stash_disk(instance_uuid)}
        copied = base.get_driver(dest_host).receive_disk(instance_uuid,
                                                         source)
        return {"bytes": copied["bytes"], "sha256": copied["sha256"]}

    def revert(self, result, instance_uuid, host_name, dest_host, **kwargs):
        if host_name == dest_host:
            base.get_driver(host_name).restore_stashed_disk(instance_uuid)
        else:
            base.get_driver(dest_host).remove_disks(instance_uuid)


class RebaseDiskOnDestination(base.VmflowTask):
    """Point the copied disk at the destination's base image
    (``qemu-img rebase -u``: the data is the same, only the path differs).

    Reversion strategy: none; CopyDiskToDestination's revert removes the
    copy.
    """

    def execute(self, instance_uuid, host_name, dest_host):
        if host_name == dest_host:
            return "unchanged"
        _instance, image = _load(instance_uuid)
        return base.get_driver(dest_host).rebase_disk(instance_uuid, image)


class GrowDiskOnDestination(base.VmflowTask):
    """Grow the destination's disk to the new flavor's size (never
    shrinks; a flavor disk of 0 keeps the image's size).

    Reversion strategy: none; CopyDiskToDestination's revert removes the
    copy (on one host: puts the stashed, unchanged disk back).
    """

    def execute(self, instance_uuid, migration_uuid, dest_host):
        size_gb = load_migration(migration_uuid)["new_disk_gb"]
        if not size_gb:
            return "unchanged"
        return base.get_driver(dest_host).resize_disk(instance_uuid, size_gb)


class DefineDomainOnDestination(base.VmflowTask):
    """Define the domain (new flavor) on the destination; on one host this
    defines the one domain again.

    Reversion strategy: destroy and undefine it on the destination; on
    one host, define it again with the old flavor instead.
    """

    def execute(self, instance_uuid, dest_host, domain_xml):
        return base.get_driver(dest_host).define_domain(domain_xml)

    def revert(self, result, instance_uuid, migration_uuid, host_name,
               dest_host, **kwargs):
        driver = base.get_driver(dest_host)
        driver.destroy(instance_uuid)
        if host_name != dest_host:
            driver.undefine(instance_uuid)
            return
        instance, image = _load(instance_uuid)
        driver.define_domain(driver.generate_xml(
            instance, image, _old_flavor(load_migration(migration_uuid))))


def was_active(migration_uuid):
    return (load_migration(migration_uuid)["old_vm_state"]
            == instances.ACTIVE)


class StartDomainIfWasActive(base.VmflowTask):
    """Start the domain on ``host_name`` if the server was active before
    the resize (a stopped one stays stopped).

    Reversion strategy: destroy the domain, if this task started it.
    """

    def execute(self, instance_uuid, migration_uuid, host_name):
        if not was_active(migration_uuid):
            return "kept-off"
        return base.get_driver(host_name).start(instance_uuid)

    def revert(self, result, instance_uuid, host_name, **kwargs):
        if base.failed(result) or result == "kept-off":
            return
        base.get_driver(host_name).destroy(instance_uuid)


class WaitForDomainIfWasActive(domain.WaitForDomainRunning):
    """One poll until the domain runs, as WaitForDomainRunning, if the
    server was active; a server that was stopped provides its power state
    at once.

    Reversion strategy: nothing to undo (it only reads).
    """

    def execute(self, instance_uuid, host_name, wait_deadline,
                migration_uuid):
        if was_active(migration_uuid):
            return super().execute(instance_uuid, host_name, wait_deadline)
        return base.get_driver(host_name).get_power_state(instance_uuid)


class DestroyDomainOnHost(base.VmflowTask):
    """Power off the instance's domain on the host its argument names
    (``host_name`` rebound by the flow: the source in confirm, the
    destination in revert).

    Reversion strategy: none; confirm and revert go forward, and running
    them again finishes them.
    """

    def execute(self, instance_uuid, host_name):
        return base.get_driver(host_name).destroy(instance_uuid)


class DestroyDomainUnlessSameHost(base.VmflowTask):
    """Power off the instance's domain on ``host_name`` unless it is also
    the other end of the resize (``other_host``): a confirm on one host
    keeps the one, resized, domain running.

    Reversion strategy: none; confirm goes forward.
    """

    def execute(self, instance_uuid, host_name, other_host):
        if host_name == other_host:
            return "kept"
        return base.get_driver(host_name).destroy(instance_uuid)


class UndefineDomainUnlessSameHost(base.VmflowTask):
    """Undefine the instance's domain on ``host_name`` unless it is also
    the other end of the resize (``other_host``): on one host the domain
    is the instance's only one.

    Reversion strategy: none; confirm and revert go forward.
    """

    def execute(self, instance_uuid, host_name, other_host):
        if host_name == other_host:
            return "kept"
        return base.get_driver(host_name).undefine(instance_uuid)


class RemoveSourceDisks(base.VmflowTask):
    """A confirm's clean-up: remove the instance's directory on the source
    (on one host: the stashed copy).

    Reversion strategy: none; confirm goes forward.
    """

    def execute(self, instance_uuid, host_name, dest_host):
        driver = base.get_driver(host_name)
        if host_name == dest_host:
            return driver.remove_stashed_disk(instance_uuid)
        return driver.remove_disks(instance_uuid)


class RemoveDestinationDisks(base.VmflowTask):
    """A revert's clean-up: remove the instance's directory on the
    destination (on one host: put the stashed disk back in place).

    Reversion strategy: none; revert goes forward.
    """

    def execute(self, instance_uuid, host_name, dest_host):
        driver = base.get_driver(dest_host)
        if host_name == dest_host:
            return driver.restore_stashed_disk(instance_uuid)
        return driver.remove_disks(instance_uuid)
