"""``vmflow audit``: check DESIGN.md's five invariants.

Against the database, every host's hypervisor and every instances path:

1. ``claims``: the claims on each host are exactly those of the instances
   placed there (and of migrations in flight), with their resources.
2. ``quota``: the quota holds are exactly those of the live instances.
3. ``domains``: vmflow's domains on each hypervisor belong to live
   instances on that host, and each such instance has its domain.
4. ``disks``: the directories under each instances path belong to live
   instances on that host, and each such instance has its directory.
5. ``task_states``: no instance keeps a task_state once its job ended.

Accounting rules (what the build and delete flows leave behind):

* an instance with a host that is not deleted (active, stopped, paused,
  suspended, resized, ...) holds a claim on its host, a committed quota
  hold, a domain and a disk directory there;
* an instance in ERROR with a host (an operation failed after it was
  placed, e.g. a delete that stopped halfway) may hold any of them: a
  delete removes what is left;
* an instance without a host (a build that failed or never ran) and a
  deleted instance hold nothing;
* an instance with a live lock is in progress and is skipped: what it
  holds is changing. The rule is the posting code's
  (:func:`vmflow.engine.locks.lock_is_live`): a lock is live while a job
  on the board works on its instance, or, without one, while its action is
  unfinished and it is younger than one claim expiry (a posting under
  way). A lock whose job ended, or was never posted, is stale: the next
  operation takes it over, and until then the instance is audited like
  any other.
"""
import dataclasses
import functools

import sqlalchemy

from vmflow import conf as vmflow_conf
from vmflow import drivers, exception, instances, migrations
from vmflow.engine import jobboard, locks, outcome
from vmflow.inventory import as_dict, hosts
from vmflow.persistence import api, models
from vmflow.resources import claims, quota

STASH_SUFFIX = "_resize"
REQUIRED, OPTIONAL, NOTHING = "required", "optional", "nothing"


def holding(instance):
    """What an instance holds on its host: REQUIRED, OPTIONAL or NOTHING."""
    if instance["vm_state"] == instances.DELETED or not instance["host"]:
        return NOTHING
    if instance["vm_state"] == instances.ERROR:
        return OPTIONAL
    return REQUIRED


@dataclasses.dataclass
class Snapshot:
    instances: dict
    busy: set
    holds: list
    allocations: list
    hosts: list
    migrations: dict  # consumer uuid (migration or instance) -> host names
    migration_rows: list = dataclasses.field(default_factory=list)

    @functools.cached_property
    def resizes(self):
        """:func:`check_migrations` of this snapshot, computed once for
        the claims and the quota checks."""
        return check_migrations(self)

    def may_hold(self, uuid, host_name):
        instance = self.instances.get(uuid)
        if host_name in self.migrations.get(uuid, ()):
            return True
        return (instance is not None and holding(instance) != NOTHING
                and instance["host"] == host_name)

    def required(self, host_name=None):
        """Uuids of idle instances that must hold (on ``host_name``)."""
        return {uuid for uuid, instance in self.instances.items()
                if uuid not in self.busy and holding(instance) == REQUIRED
                and host_name in (None, instance["host"])}


def _busy_instances(session, conf=vmflow_conf.CONF):
    """Uuids of the instances whose lock is live (see the module doc)."""
    with jobboard.opened(conf) as board:
        board_jobs = locks.BoardJobs.read(board, outcome.job_info)
        grace = board.claim_expiry
    return set(locks.live_locks(session, board_jobs, grace))


def load_snapshot(session):
    rows = session.scalars(sqlalchemy.select(models.Instance))
    busy = _busy_instances(session)
    allocations = session.execute(
        sqlalchemy.select(models.Allocation, models.Host.name)
        .join(models.Host, models.Host.id == models.Allocation.host_id))
    return Snapshot(
        instances={row.uuid: as_dict(row, instances.COLUMNS)
                   for row in rows},
        busy=busy,
        holds=[as_dict(hold, quota.COLUMNS) for hold in
               session.scalars(sqlalchemy.select(models.QuotaHold))],
        allocations=[dict(as_dict(row, ("consumer_uuid",)
                                  + claims.RESOURCES), host=host)
                     for row, host in allocations],
        hosts=hosts.list_hosts(session),
        migrations=_migrations_in_flight(session),
        migration_rows=migrations.in_flight(session))


def _migrations_in_flight(session):
    places = {}
    for migration in migrations.in_flight(session):
        names = {migration["source_host"], migration["dest_host"]} - {None}
        places.setdefault(migration["uuid"], set()).update(names)
        places.setdefault(migration["instance_uuid"], set()).update(names)
    return places


def check_migrations(snap):
    """A migration in flight whose instance is idle has finished (the
    instance is RESIZED, waiting for confirm or revert); any other is
    stuck. Returns (problems, expected claims ``{(consumer, host):
    resources}`` and quota holds ``{consumer: resources}`` of the finished
    ones)."""
    problems, claims_wanted, holds_wanted = [], {}, {}
    for migration in snap.migration_rows:
        instance_uuid = migration["instance_uuid"]
        if instance_uuid in snap.busy:
            continue
        instance = snap.instances.get(instance_uuid) or {}
        if (migration["status"] not in migrations.AWAITING_CONFIRM
                or instance.get("vm_state") != instances.RESIZED):
            problems.append(
                f"migration {migration['uuid']} of {instance_uuid} is "
                f"{migration['status']} but no job runs it (instance is "
                f"{instance.get('vm_state')})")
            continue
        claims_wanted[(instance_uuid, migration["dest_host"])] = (
            migrations.resources(migration, "new"))
        claims_wanted[(migration["uuid"], migration["source_host"])] = (
            migrations.resources(migration, "old"))
        holds_wanted[migration["uuid"]] = dict(quota.resize_delta(
            migrations.resources(migration, "old"),
            migrations.resources(migration, "new")), instances=0)
    return problems, claims_wanted, holds_wanted


# -- 1. claims ---------------------------------------------------------------


def check_claims(snap):
    problems, wanted_by_migrations, _holds = snap.resizes
    problems = list(problems)
    claimed = set()
    for alloc in snap.allocations:
        consumer, host = alloc["consumer_uuid"], alloc["host"]
        claimed.add((consumer, host))
        got = {resource: alloc[resource] for resource in claims.RESOURCES}
        if (consumer, host) in wanted_by_migrations:
            wanted = wanted_by_migrations[(consumer, host)]
            if got != wanted:
                problems.append(f"claim of {consumer} on host {host} is "
                                f"{got}, its resize holds {wanted}")
            continue
        if consumer in snap.busy or consumer in snap.migrations:
            continue
        if not snap.may_hold(consumer, host):
            problems.append(f"claim of {consumer} on host {host} has no "
                            "owner placed there "
                            f"({_describe(snap, consumer)})")
            continue
        wanted = claims.instance_resources(snap.instances[consumer])
        got = {resource: alloc[resource] for resource in claims.RESOURCES}
        if got != wanted:
            problems.append(f"claim of {consumer} on host {host} is {got}, "
                            f"the instance holds {wanted}")
    for uuid in snap.required():
        host = snap.instances[uuid]["host"]
        if (uuid, host) not in claimed:
            problems.append(f"instance {uuid} on host {host} has no claim")
    for consumer, host in set(wanted_by_migrations) - claimed:
        problems.append(f"resize consumer {consumer} has no claim on host "
                        f"{host}")
    return problems


# -- 2. quota ----------------------------------------------------------------


def check_quota(snap):
    problems, held = [], set()
    _problems, _claims, wanted_by_migrations = snap.resizes
    for hold in snap.holds:
        consumer = hold["consumer_uuid"]
        held.add(consumer)
        instance = snap.instances.get(consumer)
        if consumer in wanted_by_migrations:
            wanted = wanted_by_migrations[consumer]
            got = {key: hold[key] for key in wanted}
            if got != wanted:
                problems.append(f"quota hold of resize {consumer} is {got}, "
                                f"its flavor growth is {wanted}")
            continue
        if consumer in snap.busy or consumer in snap.migrations:
            continue
        if instance is None or holding(instance) == NOTHING:
            problems.append(f"quota hold of {consumer} (project "
                            f"{hold['project']}) has no live owner "
                            f"({_describe(snap, consumer)})")
            continue
        problems.extend(_hold_problems(hold, instance))
    for uuid in snap.required() - held:
        problems.append(f"instance {uuid} (project "
                        f"{snap.instances[uuid]['project']}) holds no quota")
    return problems


def _hold_problems(hold, instance):
    wanted = dict(quota.instance_resources(instance),
                  project=instance["project"])
    got = {key: hold[key] for key in wanted}
    problems = []
    if got != wanted:
        problems.append(f"quota hold of {instance['uuid']} is {got}, the "
                        f"instance holds {wanted}")
    if holding(instance) == REQUIRED and hold["state"] != quota.COMMITTED:
        problems.append(f"quota hold of {instance['uuid']} is "
                        f"{hold['state']}, expected {quota.COMMITTED}")
    return problems


# -- 3. and 4. domains and disks ----------------------------------------------


def domain_owners(driver):
    """``[(domain name, instance uuid)]`` of the domains that are vmflow's
    (the driver tells which: those it gives an instance uuid)."""
    return [(domain["name"], domain["instance_uuid"])
            for domain in driver.list_domains() if domain["instance_uuid"]]


def disk_owners(driver):
    """``[(directory, instance uuid)]``: ``<uuid>`` and the ``<uuid>_resize``
    a resize on one host keeps until it is confirmed or reverted."""
    return [(name, name.removesuffix(STASH_SUFFIX))
            for name in driver.list_instance_dirs()]


def check_on_hosts(snap, what, list_owners):
    """Every ``what`` found on a host belongs to an instance that may hold
    it there; every instance that must hold one there has it."""
    problems = []
    for host in snap.hosts:
        name = host["name"]
        try:
            owners = list_owners(drivers.get_driver(host))
        except exception.VmflowError as error:
            problems.append(f"host {name}: cannot list {what}s: {error}")
            continue
        found = set()
        for label, owner in owners:
            found.add(owner)
            if owner not in snap.busy and not snap.may_hold(owner, name):
                problems.append(f"{what} {label} on host {name} belongs to "
                                f"no live instance there "
                                f"({_describe(snap, owner)})")
        for uuid in snap.required(name) - found:
            problems.append(f"instance {uuid} has no {what} on host {name}")
    return problems


# -- 5. task states -----------------------------------------------------------


def check_task_states(snap):
    return [f"instance {uuid} has task_state {instance['task_state']!r} "
            f"but no running job"
            for uuid, instance in snap.instances.items()
            if instance["task_state"] is not None and uuid not in snap.busy]


def _describe(snap, uuid):
    instance = snap.instances.get(uuid)
    if instance is None:
        return "no such instance"
    return (f"instance {instance['name']} is {instance['vm_state']} on "
            f"host {instance['host'] or '(none)'}")


def run_audit(engine=None):
    """Check the five invariants; ``engine`` is an SQLAlchemy engine or a
    session factory (a callable returning a session context manager).

    Returns ``{"ok": bool, "checks": {name: {"ok", "problems"}}}``.
    """
    if engine is None or isinstance(engine, sqlalchemy.engine.Engine):
        session_scope = lambda: api.session_scope(engine)  # noqa: E731
    else:
        session_scope = engine
    with session_scope() as session:
        snap = load_snapshot(session)
    results = {
        "claims": check_claims(snap),
        "quota": check_quota(snap),
        "domains": check_on_hosts(snap, "domain", domain_owners),
        "disks": check_on_hosts(snap, "disk directory", disk_owners),
        "task_states": check_task_states(snap),
    }
    checks = {name: {"ok": not problems, "problems": problems}
              for name, problems in results.items()}
    return {"ok": all(check["ok"] for check in checks.values()),
            "checks": checks}
