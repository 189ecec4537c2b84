"""What a host has and what is already claimed on it."""
import dataclasses

import sqlalchemy

from vmflow.persistence import models


@dataclasses.dataclass(frozen=True)
class HostState:
    name: str
    enabled: bool
    disabled_reason: str | None
    vcpus: int
    memory_mb: int
    disk_gb: int
    used_vcpus: int = 0
    used_memory_mb: int = 0
    used_disk_gb: int = 0

    def free(self, resource, ratio):
        """Capacity left for ``resource`` with ``ratio`` overcommit."""
        total = getattr(self, resource)
        return int(total * ratio) - getattr(self, "used_" + resource)


def load_host_states(session, names=None):
    """Every host (or those in ``names``) with the sum of its current
    allocations."""
    alloc = models.Allocation
    usage = (sqlalchemy.select(
        alloc.host_id,
        sqlalchemy.func.sum(alloc.vcpus).label("vcpus"),
        sqlalchemy.func.sum(alloc.memory_mb).label("memory_mb"),
        sqlalchemy.func.sum(alloc.disk_gb).label("disk_gb"))
        .group_by(alloc.host_id).subquery())
    query = (sqlalchemy.select(models.Host, usage.c.vcpus, usage.c.memory_mb,
                               usage.c.disk_gb)
             .outerjoin(usage, usage.c.host_id == models.Host.id)
             .order_by(models.Host.name))
    if names is not None:
        query = query.where(models.Host.name.in_(list(names)))
    rows = session.execute(query)
    return [HostState(name=host.name, enabled=host.enabled,
                      disabled_reason=host.disabled_reason,
                      vcpus=host.vcpus, memory_mb=host.memory_mb,
                      disk_gb=host.disk_gb, used_vcpus=int(vcpus or 0),
                      used_memory_mb=int(memory_mb or 0),
                      used_disk_gb=int(disk_gb or 0))
            for host, vcpus, memory_mb, disk_gb in rows]
