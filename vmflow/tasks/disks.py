"""Tasks that create and remove an instance's files on a host."""
from vmflow import instances
from vmflow.flows import constants
from vmflow.persistence import api
from vmflow.tasks import base


class CreateDisks(base.VmflowTask):
    """Cache the image on the host and create the instance's qcow2 overlay
    (and console log) under its instances path.

    Reversion strategy: remove the instance's directory on that host. The
    cached base image stays: other instances share it.
    """

    default_provides = constants.DISK_PATHS

    def execute(self, instance_uuid, host_name):
        with api.session_scope() as session:
            instance = instances.get_instance(session, instance_uuid)
            image = instances.image_of(session, instance)
        return base.get_driver(host_name).create_disks(
            instance, image, instances.flavor_of(instance))

    def revert(self, result, instance_uuid, host_name, **kwargs):
        if base.failed(result):
            return
        base.get_driver(host_name).remove_disks(instance_uuid)


class RemoveDisks(base.VmflowTask):
    """Remove the instance's directory on each of its hosts.

    Reversion strategy: none; delete goes forward, and running it again
    finishes it.
    """

    def execute(self, instance_uuid, instance_hosts):
        return base.on_each_host(
            instance_hosts, lambda driver: driver.remove_disks(instance_uuid))


class RecreateMissingDisks(CreateDisks):
    """A hard reboot's repair: create again, from the image record, the
    cached base image and the instance's overlay if either is missing
    (files that exist are kept as they are).

    Reversion strategy: none; the disks belong to a live instance, and a
    reboot never removes them (a recreated overlay is as empty as a new
    build's).
    """

    def revert(self, result, **kwargs):
        """Nothing: a reboot never removes an instance's disks."""
