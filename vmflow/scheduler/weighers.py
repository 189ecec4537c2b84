"""Host weighers: higher weight is a better host."""
from vmflow import conf as vmflow_conf


class FreeRamWeigher:
    """Spread instances: prefer the host with the most free memory."""

    def __init__(self, conf=vmflow_conf.CONF):
        self.ratio = conf.scheduler.ram_allocation_ratio

    def weigh(self, host):
        return host.free("memory_mb", self.ratio)


def sort_by_weight(hosts, weigher):
    # Ties go by name so the choice is repeatable.
    return sorted(hosts, key=lambda host: (-weigher.weigh(host), host.name))
