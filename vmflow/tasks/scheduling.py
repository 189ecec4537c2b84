"""Host selection and the retry controller that moves a build from one
selected host to the next."""
from taskflow import retry

from vmflow import conf as vmflow_conf
from vmflow import exception, instances, migrations
from vmflow.flows import constants
from vmflow.persistence import api
from vmflow.scheduler import manager
from vmflow.tasks import base

CONF = vmflow_conf.CONF


class SelectHosts(base.VmflowTask):
    """Pick a host and alternates for the instance (NoValidHost fails the
    build at once: it is outside the per-host retry).

    Reversion strategy: nothing to undo (it only reads; the claims are
    taken per host by ClaimResources).
    """

    default_provides = constants.HOST_CANDIDATES

    def execute(self, instance_uuid, requested_host=None):
        with api.session_scope() as session:
            instance = instances.get_instance(session, instance_uuid)
            return manager.select_destinations(session, {
                "vcpus": instance["vcpus"],
                "memory_mb": instance["memory_mb"],
                "disk_gb": instance["disk_gb"], "host": requested_host})


class SelectDestinations(base.VmflowTask):
    """Pick a destination and alternates for a resize or cold migration
    with the new flavor's resources: never the instance's own host
    (``host_name``), unless this is a resize and ``[DEFAULT]
    allow_resize_to_same_host`` is set (NoValidHost fails it at once).

    Reversion strategy: nothing to undo (it only reads; the claim is taken
    per host by ClaimResourcesOnDestination).
    """

    default_provides = constants.HOST_CANDIDATES

    def execute(self, migration_uuid, host_name, migration_type,
                requested_host=None):
        same_host_allowed = (migration_type == migrations.RESIZE
                             and CONF.allow_resize_to_same_host)
        with api.session_scope() as session:
            migration = migrations.get_migration(session, migration_uuid)
            request = dict(migrations.resources(migration, "new"),
                           host=requested_host)
            if not same_host_allowed:
                request["ignore_hosts"] = [host_name]
            try:
                return manager.select_destinations(session, request)
            except exception.NoValidHost as error:
                if host_name in error.reasons and not same_host_allowed:
                    error.reasons[host_name] = "the server's own host"
                    raise exception.NoValidHost(error.reasons) from None
                raise


def only_caused_by(history, exception_class):
    """True when every failure of the latest attempt is ``exception_class``
    (TaskFlow compares class names, so it works on reloaded failures)."""
    outcomes = list(history.outcomes_iter(index=-1)) if len(history) else []
    return bool(outcomes) and all(failure.check(exception_class)
                                  for _name, failure in outcomes)


class RetryOnNextHost(retry.ParameterizedForEach):
    """Runs its subflow on each candidate host in turn (provides
    ``host_name``, or the store key ``provides``), TaskFlow's ForEach over
    values from the store.

    After a failure it reverts the subflow and tries the next candidate
    only when the failure was host-level (RescheduleableError) and a
    candidate remains; otherwise the whole flow reverts (REVERT_ALL: a
    plain REVERT at the top level would leave the outer tasks, the
    sentinel among them, unreverted).
    """

    def __init__(self, name=None, provides=constants.HOST_NAME, **kwargs):
        super().__init__(name=name or type(self).__name__,
                         provides=provides,
                         rebind={"values": constants.HOST_CANDIDATES},
                         revert_all=True, **kwargs)

    def on_failure(self, values, history, *args, **kwargs):
        if not only_caused_by(history, exception.RescheduleableError):
            return retry.REVERT_ALL
        return super().on_failure(values, history, *args, **kwargs)
