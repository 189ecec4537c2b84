from oslo_config import cfg

scheduler_group = cfg.OptGroup(
    "scheduler", title="Scheduler",
    help="How a host is chosen for an instance.")

scheduler_opts = [
    cfg.FloatOpt("cpu_allocation_ratio", default=4.0, min=0.0,
                 help="Virtual CPUs that may be allocated per host vCPU."),
    cfg.FloatOpt("ram_allocation_ratio", default=1.0, min=0.0,
                 help="Memory that may be allocated per MiB of host memory."),
    cfg.FloatOpt("disk_allocation_ratio", default=1.0, min=0.0,
                 help="Disk that may be allocated per GiB of host disk."),
    cfg.IntOpt("max_alternates", default=2, min=0,
               help="Alternate hosts returned with the selected host; a "
                    "build that fails on one host moves on to the next."),
]


def register_opts(conf):
    conf.register_group(scheduler_group)
    conf.register_opts(scheduler_opts, group=scheduler_group)


def list_opts():
    return {scheduler_group: scheduler_opts}
