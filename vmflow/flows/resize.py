"""Resize and cold migration (one flow, three phases), confirm and revert.

Store of resize/migrate: ``instance_uuid``, ``request_id``, ``host_name``
(the source: the instance's host at posting), ``migration_uuid`` (chosen
at posting), ``new_flavor`` (a flavor name; the current one for a
migration), ``migration_type`` and optionally ``requested_host``. Confirm
and revert get ``dest_host`` too (from the migration record).

A failure anywhere in resize reverts it step by step: the server ends
where it was (source host, old flavor, original disk, running if it ran),
task_state cleared with a fault, the migration ``error``, and nothing of
it left on the destination::

    resize | migrate
        RestoreInstanceStateOnRevert        (revert-only sentinel)
        resize-prep
            MarkInstanceResizePrep
            CreateMigrationRecord           pre-migrating
            ReserveQuotaDelta
            SelectDestinations              -> host_candidates
            prep-on-host  [RetryOnNextHost over host_candidates -> dest_host]
                ClaimResourcesOnDestination
                CheckDestinationRoom
                RecordMigrationDestination
        resize-execute
            MarkInstanceResizeMigrating, SetMigrationMigrating
            ShutdownGuestAcpi, wait-for-shutdown, PowerOffDomain
            CacheImageOnDestination, CopyDiskToDestination,
            RebaseDiskOnDestination
            SetMigrationPostMigrating, MarkInstanceResizeMigrated
        resize-finish
            MarkInstanceResizeFinish
            GrowDiskOnDestination, ApplyNewFlavor, MoveClaimsToDestination
            GenerateDomainXml, DefineDomainOnDestination,
            StartDomainIfWasActive, wait-for-running
            SetMigrationFinished, MarkInstanceResized

    confirmResize: sentinel (ERROR), MarkInstanceResizeConfirming,
        SetMigrationConfirming, DestroyDomainOnSource,
        UndefineDomainOnSource, RemoveSourceDisks, DropSourceClaim,
        CommitQuotaDelta, SetMigrationConfirmed, MarkInstanceResizeConfirmed
    revertResize: sentinel (ERROR), MarkInstanceResizeReverting,
        SetMigrationReverting, DestroyDomainOnDestination,
        UndefineDomainOnDestination, RemoveDestinationDisks,
        RestoreOldFlavor, MoveClaimsToSource, ReleaseQuotaDelta,
        GenerateDomainXml, RedefineDomain, StartDomainIfWasActive,
        wait-for-running, SetMigrationReverted, MarkInstanceResizeReverted
"""
from taskflow.patterns import linear_flow

from vmflow import instances, migrations, server_actions
from vmflow.flows import constants, pieces
from vmflow.tasks import domain, instance, migration, resize, scheduling

ON_DEST = {constants.HOST_NAME: constants.DEST_HOST}
OTHER_IS_DEST = {"other_host": constants.DEST_HOST}
OTHER_IS_SOURCE = {constants.HOST_NAME: constants.DEST_HOST,
                   "other_host": constants.HOST_NAME}


def _mark(action, task_state, from_task_state):
    return instance.MarkInstanceTaskState(
        action, task_state=task_state, from_task_states=(from_task_state,))


def _resize_flow(action):
    prep = linear_flow.Flow(constants.RESIZE_PREP_FLOW).add(
        instance.MarkInstanceTaskState(action),
        migration.CreateMigrationRecord(),
        migration.ReserveQuotaDelta(),
        scheduling.SelectDestinations(),
        pieces.try_on_each_host(
            migration.ClaimResourcesOnDestination(),
            resize.CheckDestinationRoom(),
            migration.RecordMigrationDestination(),
            name=constants.PREP_ON_HOST_FLOW, provides=constants.DEST_HOST))
    execute = linear_flow.Flow(constants.RESIZE_EXECUTE_FLOW).add(
        _mark(action, instances.RESIZE_MIGRATING, instances.RESIZE_PREP),
        migration.SetMigrationStatus(migrations.MIGRATING),
        *pieces.shut_down_cleanly(restart_on_revert=True),
        resize.CacheImageOnDestination(),
        resize.CopyDiskToDestination(),
        resize.RebaseDiskOnDestination(),
        migration.SetMigrationStatus(migrations.POST_MIGRATING),
        _mark(action, instances.RESIZE_MIGRATED, instances.RESIZE_MIGRATING))
    finish = linear_flow.Flow(constants.RESIZE_FINISH_FLOW).add(
        _mark(action, instances.RESIZE_FINISH, instances.RESIZE_MIGRATED),
        resize.GrowDiskOnDestination(),
        migration.ApplyNewFlavor(),
        migration.MoveClaimsToDestination(),
        domain.GenerateDomainXml(rebind=ON_DEST),
        resize.DefineDomainOnDestination(),
        resize.StartDomainIfWasActive(rebind=ON_DEST),
        pieces.wait_until_running(poll=resize.WaitForDomainIfWasActive,
                                  rebind=ON_DEST),
        migration.SetMigrationStatus(migrations.FINISHED),
        migration.MarkInstanceResizeDone(instances.RESIZE_FINISH,
                                         vm_state=instances.RESIZED))
    flow = linear_flow.Flow(action.name)
    return flow.add(
        instance.RestoreInstanceStateOnRevert(
            (None, *instances.RESIZE_TASK_STATES)),
        prep, execute, finish)


def get_resize_flow():
    """Resize to ``new_flavor`` on another host (or the same one, when
    allowed); the server ends RESIZED until confirmed or reverted."""
    return _resize_flow(server_actions.RESIZE)


def get_migrate_flow():
    """Cold migration: the same flavor, always another host."""
    return _resize_flow(server_actions.MIGRATE)


def get_confirm_resize_flow():
    """Keep the resized server: the source's domain, disk, claim go; the
    quota delta is committed; the server is back to its old vm_state."""
    action = server_actions.CONFIRM_RESIZE
    flow = linear_flow.Flow(action.name)
    return flow.add(
        instance.MarkInstanceErrorOnRevert(
            (None, instances.RESIZE_CONFIRMING)),
        instance.MarkInstanceTaskState(action),
        migration.SetMigrationStatus(migrations.CONFIRMING),
        resize.DestroyDomainUnlessSameHost(name="DestroyDomainOnSource",
                                           rebind=OTHER_IS_DEST),
        resize.UndefineDomainUnlessSameHost(name="UndefineDomainOnSource",
                                            rebind=OTHER_IS_DEST),
        resize.RemoveSourceDisks(),
        migration.DropSourceClaim(),
        migration.CommitQuotaDelta(),
        migration.SetMigrationStatus(migrations.CONFIRMED),
        migration.MarkInstanceResizeDone(instances.RESIZE_CONFIRMING,
                                         name="MarkInstanceResizeConfirmed"))


def get_revert_resize_flow():
    """Give the server back on its source with the old flavor and its
    original disk; everything on the destination goes."""
    action = server_actions.REVERT_RESIZE
    flow = linear_flow.Flow(action.name)
    return flow.add(
        instance.MarkInstanceErrorOnRevert(
            (None, instances.RESIZE_REVERTING)),
        instance.MarkInstanceTaskState(action),
        migration.SetMigrationStatus(migrations.REVERTING),
        resize.DestroyDomainOnHost(name="DestroyDomainOnDestination",
                                   rebind=ON_DEST),
        resize.UndefineDomainUnlessSameHost(
            name="UndefineDomainOnDestination", rebind=OTHER_IS_SOURCE),
        resize.RemoveDestinationDisks(),
        migration.RestoreOldFlavor(),
        migration.MoveClaimsToSource(),
        migration.ReleaseQuotaDelta(),
        domain.GenerateDomainXml(),
        domain.RedefineDomain(),
        resize.StartDomainIfWasActive(),
        pieces.wait_until_running(poll=resize.WaitForDomainIfWasActive),
        migration.SetMigrationStatus(migrations.REVERTED),
        migration.MarkInstanceResizeDone(instances.RESIZE_REVERTING,
                                         name="MarkInstanceResizeReverted"))
