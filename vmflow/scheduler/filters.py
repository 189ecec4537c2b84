"""Host filters: each returns None when a host passes, else why it fails."""
from vmflow import conf as vmflow_conf


class EnabledFilter:
    def reject_reason(self, host, request):
        if host.enabled:
            return None
        return "disabled" + (f" ({host.disabled_reason})"
                             if host.disabled_reason else "")


class _CapacityFilter:
    resource = None
    request_key = None
    ratio_option = None
    unit = ""

    def __init__(self, conf=vmflow_conf.CONF):
        self.ratio = getattr(conf.scheduler, self.ratio_option)

    def reject_reason(self, host, request):
        wanted = request[self.request_key]
        free = host.free(self.resource, self.ratio)
        if wanted <= free:
            return None
        return (f"needs {wanted}{self.unit} {self.resource}, "
                f"{max(free, 0)}{self.unit} free at ratio {self.ratio:g}")


class RamFilter(_CapacityFilter):
    resource = request_key = "memory_mb"
    ratio_option = "ram_allocation_ratio"


class CoreFilter(_CapacityFilter):
    resource = request_key = "vcpus"
    ratio_option = "cpu_allocation_ratio"


class DiskFilter(_CapacityFilter):
    resource = request_key = "disk_gb"
    ratio_option = "disk_allocation_ratio"


def default_filters(conf=vmflow_conf.CONF):
    return [EnabledFilter(), RamFilter(conf), CoreFilter(conf),
            DiskFilter(conf)]


def reject_reason(host, request, conf=vmflow_conf.CONF):
    """Why the first failing default filter rejects ``host``, or None."""
    for host_filter in default_filters(conf):
        reason = host_filter.reject_reason(host, request)
        if reason:
            return reason
    return None
